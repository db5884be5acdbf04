"""When a file may be taken as unchanged without reading it: its stat signature.

git, restic and borg decide "unchanged" from the inode, not the bytes; so does an
incremental run under ``change_check = "stat"``. The signature of a file is
``ino:size:mtime_ns:ctime_ns`` of the ``fstat`` its bytes were read and hashed under,
followed by ``@`` and the run's reader line-up (:func:`lineup`). A later run skips the
read only when the walk's ``lstat`` (``stat`` through a symlink) gives the very same
signature under the same line-up, and the stored document is complete.

Why each part: a write changes mtime *and* ctime, and no user can set ctime (restoring
mtime with ``touch -r`` or ``os.utime`` still moves it); the inode catches a file
replaced by another (an editor's save-by-rename); the line-up catches a reader that was
upgraded, reconfigured or added before another in the sniffing order (the reader
chosen for the same bytes could differ).

Racily clean files (git's name): a write in the same timestamp tick as our read, of
the same size, would leave the signature unchanged. So a signature is *trusted* only
when the file's mtime and ctime are at least :data:`RACY_MARGIN_NS` older than the
clock when the read began; otherwise none is stored and the next run reads and hashes
the file (and stores a trusted signature then, once the file has aged).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

RACY_MARGIN_NS = 2_000_000_000
"""Two seconds: more than the coarsest common timestamp tick (FAT's 2 s)."""


def stat_key(st: os.stat_result) -> str:
    """``ino:size:mtime_ns:ctime_ns`` of a stat result (lstat or fstat alike)."""
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def trusted_key(st: os.stat_result, read_began_ns: int) -> str | None:
    """:func:`stat_key` when the file was last written well before the read began
    (``read_began_ns`` from :func:`time.time_ns`), else None (racy: read it next time)."""
    if max(st.st_mtime_ns, st.st_ctime_ns) > read_began_ns - RACY_MARGIN_NS:
        return None
    return stat_key(st)


def lineup(reader_ids: Iterable[str]) -> str:
    """A short digest of the readers of a run, in their sniffing order."""
    joined = "\n".join(reader_ids).encode()
    return hashlib.blake2b(joined, digest_size=8).hexdigest()


def signature(key: str | None, readers: str) -> str | None:
    """What is stored and compared: the stat key under a reader line-up (None stays None)."""
    return None if key is None else f"{key}@{readers}"


__all__ = ["RACY_MARGIN_NS", "lineup", "signature", "stat_key", "trusted_key"]
