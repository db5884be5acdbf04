"""What the readers of binary formats (PDF, DOCX) share: their whole bytes, verified,
and the one-line skip when the library a format needs is not installed.

A parser needs the whole file. A small file's bytes are the very buffer that was
hashed (:attr:`RawFile.data`); a large one is read again here and must hash the same,
else the file changed since it was hashed (``READ/CHANGED``) and nothing of it is parsed.
"""

from __future__ import annotations

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from .base import RawFile
from .files import FileChangedError, VerifiedStream, read_fail


def whole_bytes(raw: RawFile, ledger: ResourceLedger) -> Result[bytes, ErrInfo]:
    """The file's bytes, exactly the ones hashed into ``raw.file_hash``."""
    if raw.data is not None:
        return Ok(raw.data)
    blocks = VerifiedStream(raw.source, raw.file_hash, ledger).blocks()
    try:
        return Ok(b"".join(blocks))
    except FileChangedError as exc:
        return read_fail("READ/CHANGED", "file changed while it was read", raw.source, exc)
    except OSError as exc:
        return read_fail("READ/IO", "read failed", raw.source, exc)
    finally:
        blocks.close()


def needs_extra(extra: str, what: str, raw: RawFile, exc: BaseException) -> Err[ErrInfo]:
    """``SKIP/NEEDS_EXTRA``: counted and reported, not a failure (exit 0).

    It carries no ``doc_id``, so a run keeps whatever the index already holds for the
    file: not being able to read a file says nothing about its content.
    """
    return Err(
        make_errinfo(
            "SKIP/NEEDS_EXTRA",
            f"{what} needs the {extra} extra: pip install 'funcpipe[{extra}]'",
            stage="read",
            path=raw.source.path,
            exc=exc,
        )
    )


__all__ = ["needs_extra", "whole_bytes"]
