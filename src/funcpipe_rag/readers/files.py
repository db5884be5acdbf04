"""Read a file's bytes safely, once, and hash exactly what was read.

A file is opened with ``O_NONBLOCK`` and checked with ``fstat`` (a path swapped for a
FIFO after the walk cannot hang the run) and counted in the ledger while open.

Files up to :data:`MEMORY_READ_LIMIT` are read into memory in one pass; ``fstat``
before and after tells whether a writer was busy with the file meanwhile (inode, size,
mtime or ctime moved, or fewer bytes came than it claimed): then the read is tried once more,
and a file still changing is ``READ/CHANGED``. Larger files are hashed in a streaming
pass; a reader that streams them again reads through :class:`VerifiedStream`, which
checks at the end that the bytes hash the same.

The ``fstat`` after a good read is the file's stat signature (:mod:`funcpipe_rag.signature`)
for the bytes hashed; a large file's too, as its streamed reader stores a document only if
its bytes hash the same again.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from collections.abc import Callable, Generator
from typing import BinaryIO

from ..policies.interrupts import deferred_interrupts, uninterruptible
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..signature import stat_key, trusted_key
from ..walk import SourceFile

BLOCK_SIZE = 1 << 20
SNIFF_SIZE = 8192
MEMORY_READ_LIMIT = 8 << 20

# A test seam: called with the source after its bytes were read and before the
# post-read ``fstat``, so a test can change the file at exactly that moment.
AfterRead = Callable[[SourceFile], None]


def new_hasher() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


def read_fail(
    code: str, msg: str, src: SourceFile, exc: BaseException | None = None
) -> Err[ErrInfo]:
    """A per-file failure. ``doc_id`` marks the file as still existing, so an
    incremental run keeps its old chunks."""
    return Err(make_errinfo(code, msg, stage="read", path=src.path, exc=exc, doc_id=src.doc_id))


def read_skip(code: str, msg: str, src: SourceFile) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="read", path=src.path))


class OpenFile:
    """An open, regular, readable file, registered in the ledger while it is open.

    Create it inside :func:`~funcpipe_rag.policies.interrupts.deferred_interrupts`, bound
    to a name the caller's ``try`` closes: an interrupt raised between ``os.open``
    returning and that name would leave the descriptor with no owner.
    """

    def __init__(self, src: SourceFile, ledger: ResourceLedger) -> None:
        self._ledger = ledger
        fd = os.open(src.fs_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(f"not a regular file: {src.path}")
            os.set_blocking(fd, True)
            # The descriptor stays ours to close, exactly once (closefd=False): a file
            # object owning it would close it if dropped by an exception here, and the
            # os.close below would then fail with EBADF (or close a descriptor another
            # thread had just been given the number of), replacing that exception.
            self.file: BinaryIO = io.FileIO(fd, "rb", closefd=False)
            self._fd = fd
            self._handle = ledger.acquire("file", src.path)
        except BaseException:
            os.close(fd)
            raise

    def stamp(self) -> os.stat_result:
        return os.fstat(self._fd)

    @uninterruptible  # once begun, the descriptor is closed and the ledger told
    def close(self) -> None:
        """Close the file and its descriptor; a second call does nothing."""
        fd, self._fd = self._fd, -1
        try:
            self.file.close()  # the object only: it does not own the descriptor
        finally:
            try:
                if fd >= 0:
                    os.close(fd)
            finally:
                self._ledger.release(self._handle)


def open_file(src: SourceFile, ledger: ResourceLedger) -> Result[OpenFile, ErrInfo]:
    """``src`` opened, or its ``READ/...`` failure; call it inside ``deferred_interrupts``."""
    try:
        return Ok(OpenFile(src, ledger))
    except PermissionError as exc:
        return read_fail("READ/PERMISSION", "permission denied", src, exc)
    except OSError as exc:
        return read_fail("READ/OPEN", "cannot open", src, exc)


def _read_all(opened: OpenFile, size: int) -> bytes:
    """Everything up to the end of the file, which ``fstat`` said holds ``size`` bytes.

    One ``read`` asks for a byte more than that: exactly ``size`` bytes back mean the
    file ended there when it was read (a writer appending later moves the ``fstat``
    taken after, and the read is tried again), so the usual file costs one system call
    rather than two. Any other count reads on to the end, as a file that is changing
    must be read.
    """
    first = opened.file.read(size + 1)
    if first is None or len(first) == size:
        return first or b""
    parts = [first]
    while block := opened.file.read(BLOCK_SIZE):
        parts.append(block)
    return b"".join(parts)


class FileBytes:
    """What one read of a file gave: its hash, size, head and (if small) its bytes, and
    the trusted :func:`~funcpipe_rag.signature.stat_key` of the ``fstat`` they were read
    under (None when the file was written too recently to trust it: racy)."""

    __slots__ = ("data", "file_hash", "head", "size", "stat_key")

    def __init__(
        self, file_hash: str, size: int, head: bytes, data: bytes | None, key: str | None
    ) -> None:
        self.file_hash = file_hash
        self.size = size
        self.head = head
        self.data = data
        self.stat_key = key


def read_bytes(
    src: SourceFile, ledger: ResourceLedger, *, after_read: AfterRead | None = None
) -> Result[FileBytes, ErrInfo]:
    """Read ``src`` once (twice if a writer was busy with it), hashing what was read."""
    for attempt in (1, 2):
        f: OpenFile | None = None
        try:
            with deferred_interrupts():  # until `f` holds the file, which finally closes
                opened = open_file(src, ledger)
                if isinstance(opened, Err):
                    return opened
                f = opened.value
            began_ns = time.time_ns()  # before the first byte: see signature.trusted_key
            before = f.stamp()
            if before.st_size <= MEMORY_READ_LIMIT:
                data: bytes | None = _read_all(f, before.st_size)
                assert data is not None
                digest = new_hasher()
                digest.update(data)
                size, head = len(data), data[:SNIFF_SIZE]
            else:
                data, digest, size, head = None, new_hasher(), 0, b""
                while block := f.file.read(BLOCK_SIZE):
                    if not head:
                        head = block[:SNIFF_SIZE]
                    digest.update(block)
                    size += len(block)
            if after_read is not None:
                after_read(src)
            after = f.stamp()
        except OSError as exc:
            return read_fail("READ/IO", "read failed", src, exc)
        finally:
            if f is not None:
                f.close()
        key = stat_key(after)
        if stat_key(before) == key and size == after.st_size:
            trusted = trusted_key(after, began_ns)
            return Ok(FileBytes(digest.hexdigest(), size, head, data, trusted))
        if attempt == 2:
            return read_fail(
                "READ/CHANGED",
                "file changed while it was read (twice); it will be read again next run",
                src,
            )
    raise AssertionError("unreachable")  # pragma: no cover


class VerifiedStream:
    """The blocks of a large file, read again; raises :class:`FileChangedError` at the
    end if they do not hash to ``expected`` (the file changed since it was hashed)."""

    def __init__(self, src: SourceFile, expected: str, ledger: ResourceLedger) -> None:
        self.source = src
        self._expected = expected
        self._ledger = ledger

    def blocks(self) -> Generator[bytes, None, None]:
        opened: OpenFile | None = None
        try:
            with deferred_interrupts():
                opened = OpenFile(self.source, self._ledger)
            digest = new_hasher()
            while block := opened.file.read(BLOCK_SIZE):
                digest.update(block)
                yield block
            if digest.hexdigest() != self._expected:
                raise FileChangedError(self.source.path)
        finally:
            if opened is not None:
                opened.close()


class FileChangedError(OSError):
    """A streamed file's bytes no longer hash to what was hashed before."""


__all__ = [
    "BLOCK_SIZE",
    "MEMORY_READ_LIMIT",
    "SNIFF_SIZE",
    "FileBytes",
    "FileChangedError",
    "OpenFile",
    "VerifiedStream",
    "open_file",
    "read_bytes",
    "read_fail",
    "read_skip",
]
