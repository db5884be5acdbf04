"""Walk document trees (or read a path list) and read files safely.

``iter_paths`` walks each root iteratively (stack-safe at any depth) in sorted,
deterministic order. Hidden entries (and so ``.git``) are skipped unless asked;
``include`` / ``exclude`` globs match the path relative to its root and the bare name.
Symlinks are followed only while they stay inside the root, and a directory reached
twice (a symlink loop) is not walked again. FIFOs, sockets and device files are never
opened: they, like binary, empty and oversized files, become counted *skips*.

Skips and failures are both ``Err(ErrInfo)`` values; skips have codes starting with
``SKIP/`` (:func:`is_skip`) and are not failures: they never make a run exit 1 and the
breaker never sees them.

Text policy: files are UTF-8 (a BOM is dropped). A file with a NUL byte in its first
8 KiB is binary and skipped. A file with bytes that are not valid UTF-8 is one failure,
``READ/DECODE``, naming the byte offset; none of its chunks are stored, because a
half-decoded document would be a lie about what the index holds. Files are read in
1 MiB blocks, never slurped.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import os
import stat
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

from .policies.ledger import ResourceLedger
from .result import Err, ErrInfo, Ok, Result, make_errinfo
from .streams import Stage, close_quietly

BLOCK_SIZE = 1 << 20
SNIFF_SIZE = 8192


def display_path(path: str | bytes) -> str:
    """A printable, storable text for a file name that may hold non-UTF-8 bytes."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def is_skip(err: object) -> bool:
    """True for the ``SKIP/...`` outcomes: counted, reported, but not failures."""
    return isinstance(err, ErrInfo) and err.code.startswith("SKIP/")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A regular file found by the walk. ``path`` (as walked) and ``abs_path`` are display
    text; ``fs_path`` opens it; ``doc_id`` hashes the absolute path's bytes."""

    path: str
    fs_path: str
    doc_id: str
    size: int
    mtime_ns: int
    abs_path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkOptions:
    """What the walk takes and skips.

    >>> WalkOptions()
    >>> WalkOptions(include=("*.md",), exclude=("drafts",))
    >>> WalkOptions(hidden=True, max_file_bytes=1 << 20)
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    max_file_bytes: int = 256 << 20


def _skip(code: str, msg: str, path: str) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="walk", path=display_path(path)))


def _fail(code: str, msg: str, path: str, exc: BaseException | None = None) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="walk", path=display_path(path), exc=exc))


def _matches(patterns: tuple[str, ...], rel: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _classify_file(path: str, st: os.stat_result, opts: WalkOptions) -> Result[SourceFile, ErrInfo]:
    mode = st.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return _skip("SKIP/SPECIAL", "not a regular file (FIFO, socket or device)", path)
    if not stat.S_ISREG(mode):
        return _skip("SKIP/SPECIAL", "not a regular file", path)
    if st.st_size > opts.max_file_bytes:
        return _skip("SKIP/TOO_LARGE", f"larger than {opts.max_file_bytes} bytes", path)
    absolute = os.path.abspath(path)
    doc_id = hashlib.blake2b(os.fsencode(absolute), digest_size=12).hexdigest()
    return Ok(
        SourceFile(
            display_path(path), path, doc_id, st.st_size, st.st_mtime_ns, display_path(absolute)
        )
    )


def _walk_root(root: str, opts: WalkOptions) -> Iterator[Result[SourceFile, ErrInfo]]:
    try:
        st = os.stat(root)
    except FileNotFoundError:
        yield _fail("WALK/NOT_FOUND", "no such file or directory", root)
        return
    except OSError as exc:
        yield _fail("WALK/STAT", "cannot stat", root, exc)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield _classify_file(root, st, opts)
        return
    real_root = os.path.realpath(root)
    visited = {(st.st_dev, st.st_ino)}
    # Invariant: each stack entry is the sorted, not yet visited entries of one open
    # directory level, deepest last; its length is the current depth.
    stack: list[Iterator[tuple[str, str]]] = []

    def listing(directory: str, rel: str) -> Iterator[tuple[str, str]] | Err[ErrInfo]:
        try:
            with os.scandir(directory) as it:
                names = sorted(entry.name for entry in it)
        except OSError as exc:
            return _fail("WALK/LIST", "cannot list directory", directory, exc)
        return iter([(os.path.join(directory, n), f"{rel}/{n}" if rel else n) for n in names])

    first = listing(root, "")
    if isinstance(first, Err):
        yield first
        return
    stack.append(first)
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path, rel = entry
        name = os.path.basename(path)
        if not opts.hidden and name.startswith("."):
            continue
        if opts.exclude and _matches(opts.exclude, rel, name):
            continue
        try:
            lst = os.lstat(path)
        except OSError as exc:
            yield _fail("WALK/STAT", "cannot stat", path, exc)
            continue
        st = lst
        if stat.S_ISLNK(lst.st_mode):
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                yield _skip("SKIP/SYMLINK_OUTSIDE", "symlink leaves the walked root", path)
                continue
            try:
                st = os.stat(path)
            except OSError:
                yield _skip("SKIP/SYMLINK_BROKEN", "broken symlink (or a loop)", path)
                continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in visited:
                yield _skip("SKIP/SYMLINK_LOOP", "directory already walked (symlink loop)", path)
                continue
            visited.add(key)
            sub = listing(path, rel)
            if isinstance(sub, Err):
                yield sub
            else:
                stack.append(sub)
            continue
        if opts.include and not _matches(opts.include, rel, name):
            continue
        yield _classify_file(path, st, opts)


def iter_paths(
    roots: Iterable[str | os.PathLike[str]], opts: WalkOptions | None = None
) -> Stage[Result[SourceFile, ErrInfo]]:
    """Files under each root, in sorted order; roots that are files are taken as is."""
    options = opts if opts is not None else WalkOptions()

    def gen() -> Generator[Result[SourceFile, ErrInfo], None, None]:
        try:
            for root in roots:
                yield from _walk_root(os.fspath(root), options)
        finally:
            close_quietly(roots)

    return Stage(gen(), (roots,))


def read_path_list(stream: Iterable[bytes], *, null_separated: bool) -> Iterator[str]:
    """Paths from a byte stream, one a line (or NUL-separated); blank entries dropped.

    Bytes are decoded with the file-system encoding and ``surrogateescape``, so any name
    the OS accepts round-trips.
    """
    sep = b"\0" if null_separated else b"\n"
    pending = b""
    for block in stream:
        pending += block
        *complete, pending = pending.split(sep)
        for raw in complete:
            raw = raw if null_separated else raw.rstrip(b"\r")
            if raw:
                yield os.fsdecode(raw)
    tail = pending if null_separated else pending.rstrip(b"\r\n")
    if tail:
        yield os.fsdecode(tail)


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A validated text file: UTF-8 throughout, with a hash of its bytes."""

    source: SourceFile
    file_hash: str


def _read_fail(
    code: str, msg: str, src: SourceFile, exc: BaseException | None = None
) -> Err[ErrInfo]:
    # doc_id: the file exists though it failed, so an incremental run keeps its old chunks.
    return Err(make_errinfo(code, msg, stage="read", path=src.path, exc=exc, doc_id=src.doc_id))


def _read_skip(code: str, msg: str, src: SourceFile) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="read", path=src.path))


class _OpenText:
    """An open, regular, readable file registered in the ledger while it is open.

    Opened with ``O_NONBLOCK`` and checked with ``fstat``, so a path swapped for a FIFO
    after the walk cannot hang the run.
    """

    def __init__(self, src: SourceFile, ledger: ResourceLedger) -> None:
        self._ledger = ledger
        fd = os.open(src.fs_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(f"not a regular file: {src.path}")
            os.set_blocking(fd, True)
            self.file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        self._handle = ledger.acquire("file", src.path)

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self._ledger.release(self._handle)


def open_source(src: SourceFile, ledger: ResourceLedger) -> _OpenText:
    return _OpenText(src, ledger)


def validate_document(src: SourceFile, ledger: ResourceLedger) -> Result[Document, ErrInfo]:
    """First pass over a file: sniff binary, check UTF-8 throughout, hash the bytes."""
    try:
        opened = open_source(src, ledger)
    except PermissionError as exc:
        return _read_fail("READ/PERMISSION", "permission denied", src, exc)
    except OSError as exc:
        return _read_fail("READ/OPEN", "cannot open", src, exc)
    try:
        digest = hashlib.blake2b(digest_size=16)
        # Plain "utf-8" to validate (a BOM is valid UTF-8): with "utf-8-sig" a dropped BOM
        # would shift ``exc.start`` by 3. ``exc.start`` counts from the bytes the decoder
        # held back from the previous block (a sequence split across blocks), so subtract them.
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        offset = 0
        first = True
        while block := opened.file.read(BLOCK_SIZE):
            if first and b"\0" in block[:SNIFF_SIZE]:
                return _read_skip("SKIP/BINARY", "binary file (NUL byte in the first 8 KiB)", src)
            first = False
            digest.update(block)
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset - held + exc.start
                return _read_fail("READ/DECODE", f"not valid UTF-8 at byte {at}", src, exc)
            offset += len(block)
        if first:
            return _read_skip("SKIP/EMPTY", "empty file", src)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return _read_fail("READ/DECODE", f"truncated UTF-8 at byte {offset}", src, exc)
        return Ok(Document(src, digest.hexdigest()))
    except OSError as exc:
        return _read_fail("READ/IO", "read failed", src, exc)
    finally:
        opened.close()


def iter_text_pieces(opened: _OpenText) -> Iterator[str]:
    """The decoded text of an open file, block by block."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    while block := opened.file.read(BLOCK_SIZE):
        yield decoder.decode(block)
    yield decoder.decode(b"", final=True)


def iter_documents(
    files: Iterable[Result[SourceFile, ErrInfo]], ledger: ResourceLedger
) -> Stage[Result[Document, ErrInfo]]:
    """Validate each file (see the module's text policy); errors pass through."""

    def gen() -> Generator[Result[Document, ErrInfo], None, None]:
        try:
            for r in files:
                yield validate_document(r.value, ledger) if isinstance(r, Ok) else r
        finally:
            close_quietly(files)

    return Stage(gen(), (files,))


__all__ = [
    "Document",
    "SourceFile",
    "WalkOptions",
    "display_path",
    "is_skip",
    "iter_documents",
    "iter_paths",
    "iter_text_pieces",
    "open_source",
    "read_path_list",
    "validate_document",
]
