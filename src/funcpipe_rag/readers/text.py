"""Plain text, in whatever encoding :mod:`.decoding` decides (UTF-8 first).

The text is the decoded file, one piece (or one per block of a large file, streamed).
A file with a NUL byte in its first 8 KiB is not text — unless it starts with a UTF-16
or UTF-32 byte-order mark, or the encoding setting forces one of those — so no reader
takes it (``SKIP/BINARY``). A file that cannot be decoded is one ``READ/DECODE``; none
of its chunks are stored, because a half-decoded document would be a lie about what the
index holds.
"""

from __future__ import annotations

from collections.abc import Generator

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .decoding import AUTO, bom_codec, canonical, check_encoding, is_unicode_family, open_text


def looks_like_text(head: bytes, encoding: str = AUTO) -> bool:
    """No NUL byte in the head, or a Unicode encoding that has them (by BOM or forced)."""
    if b"\0" not in head or bom_codec(head) is not None:
        return True
    return encoding != AUTO and is_unicode_family(encoding)


def encoding_option(encoding: str) -> str:
    """What a forced encoding adds to a reader's identity ("" for ``auto``): a file read
    with another codec is another reading, so it is re-read, never kept as unchanged."""
    check_encoding(encoding)
    return "" if encoding == AUTO else f"encoding={canonical(encoding)}"


class TextReader:
    """Any file that looks like text (:func:`looks_like_text`), decoded."""

    name = "text"
    version = 1

    def __init__(self, encoding: str = AUTO) -> None:
        self.encoding = encoding
        self.options = encoding_option(encoding)

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        return looks_like_text(head, self.encoding)

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        got = open_text(raw, ledger, encoding=self.encoding)
        if isinstance(got, Err):
            return got
        decoded = got.value
        doc = Document(raw.source, raw.file_hash, reader_id(self), encoding=decoded.encoding)
        return Ok(Extraction(doc, _pieces(decoded.texts())))


def _pieces(texts: Generator[str, None, None]) -> Generator[TextPiece, None, None]:
    try:
        for text in texts:
            yield TextPiece(text)
    finally:
        texts.close()  # explicitly: the file a streamed text holds open
