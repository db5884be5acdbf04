"""One writer at a time: an exclusive ``flock`` on ``<index>.lock`` for a whole run.

The lock dies with its process (``kill -9`` included). The lock file is removed when
the lock is released, which is safe because a taker re-checks, once it holds the
lock, that the path still names the inode it locked; a taker that locked a file its
previous holder just unlinked sees the mismatch and tries again. Only a process killed
while holding the lock leaves the (empty, unlocked) file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from ..errors import ConfigError, IndexLockedError
from ..policies.ledger import ResourceLedger


def lock_path(index: Path) -> Path:
    return index.with_name(index.name + ".lock")


class RunLock:
    """Hold ``<index>.lock`` until :meth:`close`; waits up to ``timeout_s`` for it."""

    def __init__(self, index: Path, ledger: ResourceLedger, timeout_s: float) -> None:
        self._ledger = ledger
        self._path = lock_path(index)
        deadline = time.monotonic() + timeout_s
        while True:
            fd = self._open()
            try:
                if self._try_lock(fd) and self._still_named(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            if time.monotonic() >= deadline:
                raise IndexLockedError(
                    f"another funcpipe run is writing {index} (waited {timeout_s:g} s); "
                    "wait for it, or use another --index"
                )
            time.sleep(0.05)
        # Invariant: _fd holds the flock while not None.
        self._fd: int | None = fd
        self._handle = ledger.acquire("index_lock", str(self._path))

    def _open(self) -> int:
        try:
            return os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create the index lock {self._path}: {exc}") from None

    @staticmethod
    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _still_named(self, fd: int) -> bool:
        """The locked inode is still the one the path names (not unlinked by its holder)."""
        try:
            named = os.stat(self._path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        """Remove the lock file, then release the lock; safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # While still holding the lock (see the module doc); a folder that forbids the
            # unlink keeps the empty file, which is harmless.
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        finally:
            try:
                os.close(fd)  # closing the descriptor releases the flock
            finally:
                self._ledger.release(self._handle)
