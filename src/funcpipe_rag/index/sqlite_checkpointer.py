"""Write-ahead-log checkpoints of a writing SQLite index, on a thread of their own.

Why: a checkpoint copies the log's pages into the database file and syncs both files
(two ``fdatasync`` calls, 0.1-0.2 s each on this machine's disk). SQLite runs it inside
the ``COMMIT`` that crosses the ``wal_autocheckpoint`` mark, so the committing thread
waits for the disk while it holds the index's write lock. On the real corpus (hash
embedder, 3,597 files) the index writer's thread spent 7.9 s of a 38 s run in
``fdatasync`` (strace), and the run waits for that thread: it is the one that cannot
keep up. Here a second connection runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
:data:`PERIOD_S` seconds instead; a passive checkpoint takes no lock a writer needs (it
copies the pages committed so far, beside new commits), so commits stop waiting for the
disk, and the log is still copied back as often as before.

Nothing a commit promises changes: with ``synchronous=NORMAL`` a commit is durable once
it is in the log, whoever copies it on; the log is still synced before the database
file is written, by the same SQLite code. The writing connection keeps an automatic
checkpoint at :data:`BACKSTOP_PAGES` in case this thread falls behind or stops.

A checkpoint that fails (a disk error) stops this thread and is kept in ``error``; the
writer's own backstop checkpoints take over, and the writer meets the same disk.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final

from ..policies.ledger import Handle, ResourceLedger

PERIOD_S: Final = 0.25
# 4 KiB pages: 256 MiB of log (on disk, never in memory) before a commit checkpoints
# by itself; the checkpointer copies the log every PERIOD_S, far below this.
BACKSTOP_PAGES: Final = 65536


class Checkpointer:
    """A thread checkpointing the log of the index at ``path`` every ``period_s``
    seconds until :meth:`close`; counted in ``ledger`` until it is joined."""

    def __init__(self, path: Path, ledger: ResourceLedger, *, period_s: float = PERIOD_S) -> None:
        self._period_s = period_s
        self._stop = threading.Event()
        self.error: BaseException | None = None
        # Opened here, so a file that cannot be opened fails the index's open at once.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._ledger = ledger
        self._handle: Handle | None = ledger.acquire("worker_thread", "index checkpointer")
        self._thread = threading.Thread(target=self._run, name="funcpipe-checkpoint", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self._conn.close()
            ledger.release(self._handle)
            raise

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._period_s):
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            self.error = exc

    def close(self) -> None:
        """Stop after the checkpoint running now (if any), join, close; idempotent.
        A signal while joining is raised after the join."""
        if self._handle is None:
            return
        self._stop.set()
        interrupted: BaseException | None = None
        while True:
            try:
                self._thread.join()
                break
            except BaseException as exc:  # Ctrl-C / SIGTERM while joining: join anyway
                interrupted = interrupted or exc
        self._conn.close()
        self._ledger.release(self._handle)
        self._handle = None
        if interrupted is not None:
            raise interrupted
