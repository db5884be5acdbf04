"""Walk document trees (or read a path list): which files a run looks at.

``iter_paths`` walks each root iteratively (stack-safe at any depth) in sorted,
deterministic order. Hidden entries (and so ``.git``) are skipped unless asked;
``include`` / ``exclude`` globs match the path relative to its root and the bare name.
``.gitignore`` and ``.ignore`` files are honoured with git's semantics (:mod:`.ignores`).
Symlinks are followed only while they stay inside the root; a link to a directory that
is one of its own ancestors (a cycle) is a skip, while a directory reached again through
another link is walked again, its files being distinct documents under their own paths.
FIFOs, sockets and device files are never
opened: they, like oversized files, become counted *skips* (binary and empty files
are the readers' business: :mod:`funcpipe_rag.readers`).

Skips and failures are both ``Err(ErrInfo)`` values; skips have codes starting with
``SKIP/`` (:func:`is_skip`) and are not failures: they never make a run exit 1 and the
breaker never sees them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

from .ignores import IGNORE_FILES, IgnoreRules
from .result import Err, ErrInfo, Ok, Result, make_errinfo
from .signature import stat_key
from .streams import Stage, close_quietly


def display_path(path: str | bytes) -> str:
    """A printable, storable text for a file name that may hold non-UTF-8 bytes."""
    if isinstance(path, str) and path.isascii():
        return path  # what the round trip below gives, without it (most names)
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def is_skip(err: object) -> bool:
    """True for the ``SKIP/...`` outcomes: counted, reported, but not failures."""
    return isinstance(err, ErrInfo) and err.code.startswith("SKIP/")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A regular file found by the walk. ``path`` (as walked) and ``abs_path`` are display
    text; ``fs_path`` opens it; ``doc_id`` hashes the absolute path's bytes.

    ``stat_key`` is the walk's :func:`~funcpipe_rag.signature.stat_key` of the file ("" if
    unknown: never taken as unchanged unread). ``signature`` is set once the file is read:
    the trusted signature of the ``fstat`` its bytes were hashed under, or None (racy).
    """

    path: str
    fs_path: str
    doc_id: str
    size: int
    mtime_ns: int
    abs_path: str
    stat_key: str = ""
    signature: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkOptions:
    """What the walk takes and skips.

    >>> WalkOptions()
    >>> WalkOptions(include=("*.md",), exclude=("drafts",))
    >>> WalkOptions(hidden=True, max_file_bytes=1 << 20, ignore_files=False)
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    max_file_bytes: int = 256 << 20
    ignore_files: bool = True


def _skip(code: str, msg: str, path: str) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="walk", path=display_path(path)))


def _fail(code: str, msg: str, path: str, exc: BaseException | None = None) -> Err[ErrInfo]:
    return Err(make_errinfo(code, msg, stage="walk", path=display_path(path), exc=exc))


def _matches(patterns: tuple[str, ...], rel: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _classify_file(
    path: str, st: os.stat_result, opts: WalkOptions, absolute: str | None = None
) -> Result[SourceFile, ErrInfo]:
    """``absolute`` is ``os.path.abspath(path)`` when the caller knows it already."""
    mode = st.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return _skip("SKIP/SPECIAL", "not a regular file (FIFO, socket or device)", path)
    if not stat.S_ISREG(mode):
        return _skip("SKIP/SPECIAL", "not a regular file", path)
    if st.st_size > opts.max_file_bytes:
        return _skip("SKIP/TOO_LARGE", f"larger than {opts.max_file_bytes} bytes", path)
    if absolute is None:
        absolute = os.path.abspath(path)
    doc_id = hashlib.blake2b(os.fsencode(absolute), digest_size=12).hexdigest()
    return Ok(
        SourceFile(
            display_path(path),
            path,
            doc_id,
            st.st_size,
            st.st_mtime_ns,
            display_path(absolute),
            stat_key(st),
        )
    )


@dataclass(slots=True)
class _Level:
    """One open directory of the walk: its entries not yet visited, its identity (for
    cycle detection) and the ignore rules it adds."""

    entries: Iterator[tuple[str, str, str]]  # (path as walked, relative path, name)
    key: tuple[int, int]
    rules: IgnoreRules
    absolute: str  # the directory's os.path.abspath, "/"-terminated


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
    # Invariant: ``stack`` holds one level per directory on the path from the root to the
    # directory being walked, deepest last; their keys are that path's directories, so a
    # link to any of them is a cycle.
    stack: list[_Level] = []

    def enter(directory: str, rel: str, key: tuple[int, int], absolute: str) -> Err[ErrInfo] | None:
        try:
            with os.scandir(directory) as it:
                names = sorted(entry.name for entry in it)
        except OSError as exc:
            return _fail("WALK/LIST", "cannot list directory", directory, exc)
        # os.path.join by concatenation: a name from scandir holds no "/" (and it is
        # the walk's hottest line); the absolute path likewise, from the folder's.
        prefix = directory if directory.endswith("/") else directory + "/"
        above = rel + "/" if rel else ""
        entries = iter([(prefix + n, above + n, n) for n in names])
        rules = stack[-1].rules if stack else IgnoreRules.NONE
        if opts.ignore_files and any(n in IGNORE_FILES for n in names):
            rules = rules.descend(directory, rel)
        stack.append(_Level(entries, key, rules, absolute))
        return None

    root_abs = os.path.abspath(root)
    first = enter(root, "", (st.st_dev, st.st_ino), root_abs.rstrip("/") + "/")
    if first is not None:
        yield first
        return
    while stack:
        entry = next(stack[-1].entries, None)
        if entry is None:
            stack.pop()
            continue
        path, rel, name = entry
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
        is_dir = stat.S_ISDIR(st.st_mode)
        if stack[-1].rules.ignored(rel, is_dir=is_dir):
            continue
        if is_dir:
            key = (st.st_dev, st.st_ino)
            if any(level.key == key for level in stack):
                yield _skip(
                    "SKIP/SYMLINK_LOOP", "symlink to a folder that contains it (a cycle)", path
                )
                continue
            failed = enter(path, rel, key, stack[-1].absolute + name + "/")
            if failed is not None:
                yield failed
            continue
        if opts.include and not _matches(opts.include, rel, name):
            continue
        yield _classify_file(path, st, opts, stack[-1].absolute + name)


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


@dataclass(frozen=True, slots=True)
class TreeSize:
    """What a walk will meet: results (files, skips and errors alike) and file bytes."""

    entries: int
    bytes: int


def measure_tree(
    roots: Iterable[str], opts: WalkOptions | None = None, *, budget_s: float = 1.0
) -> TreeSize | None:
    """Walk ahead of a run to size it for its progress display; None when the walk
    takes longer than ``budget_s`` (then the display shows counts without a total)."""
    deadline = time.monotonic() + budget_s
    entries = size = 0
    walk = iter_paths(list(roots), opts)
    try:
        for r in walk:
            entries += 1
            if isinstance(r, Ok):
                size += r.value.size
            if entries % 256 == 0 and time.monotonic() > deadline:
                return None
    finally:
        walk.close()
    return TreeSize(entries, size)


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


__all__ = [
    "SourceFile",
    "TreeSize",
    "WalkOptions",
    "display_path",
    "is_skip",
    "iter_paths",
    "measure_tree",
    "read_path_list",
]
