"""Plain text: UTF-8 (a BOM is dropped), decoded strictly.

A file with bytes that are not valid UTF-8 is one failure, ``READ/DECODE``, naming the
byte offset; none of its chunks are stored, because a half-decoded document would be
a lie about what the index holds. A file with a NUL byte in its first 8 KiB is not
text (no reader takes it: ``SKIP/BINARY``).
"""

from __future__ import annotations

import codecs
from collections.abc import Generator

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .files import FileChangedError, VerifiedStream, read_fail


class TextReader:
    """Any file without a NUL byte in its head, as UTF-8 text."""

    name = "text"
    version = 1

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        return b"\0" not in head

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        doc = Document(raw.source, raw.file_hash, reader_id(self), encoding="utf-8")
        if raw.data is not None:
            try:
                # Plain "utf-8" (a BOM is valid UTF-8) so the error offset counts the BOM.
                text = raw.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                cut = exc.reason == "unexpected end of data" and exc.end == len(raw.data)
                what = "truncated UTF-8" if cut else "not valid UTF-8"
                return read_fail("READ/DECODE", f"{what} at byte {exc.start}", raw.source, exc)
            if text.startswith("\ufeff"):
                text = text[1:]
            return Ok(Extraction(doc, iter((TextPiece(text),))))
        stream = VerifiedStream(raw.source, raw.file_hash, ledger)
        bad = _first_decode_error(stream)
        if bad is not None:
            return bad
        return Ok(Extraction(doc, _decoded(stream)))


def _first_decode_error(stream: VerifiedStream) -> Err[ErrInfo] | None:
    """Check a large file is UTF-8 throughout before any of it is chunked."""
    src = stream.source
    # ``exc.start`` counts from the bytes the decoder held back from the previous block
    # (a sequence split across blocks), so subtract them.
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    blocks = stream.blocks()
    try:
        for block in blocks:
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset - held + exc.start
                return read_fail("READ/DECODE", f"not valid UTF-8 at byte {at}", src, exc)
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return read_fail("READ/DECODE", f"truncated UTF-8 at byte {offset}", src, exc)
    except FileChangedError as exc:
        return read_fail("READ/CHANGED", "file changed while it was read", src, exc)
    except OSError as exc:
        return read_fail("READ/IO", "read failed", src, exc)
    finally:
        blocks.close()
    return None


def _decoded(stream: VerifiedStream) -> Generator[TextPiece, None, None]:
    """The text of a large file, block by block; the last block verifies the hash."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    blocks = stream.blocks()
    try:
        for block in blocks:
            yield TextPiece(decoder.decode(block))
        yield TextPiece(decoder.decode(b"", final=True))
    finally:
        blocks.close()
