"""PDF: the text of each page, with its page number and the outline as sections.

Parsed with pypdfium2 (Google's PDFium, the engine of Chrome's PDF viewer; Apache-2.0 /
BSD): it reads damaged and unusual files the way browsers do and extracts text in C++
at many times the speed of pure-Python pypdf (see the benchmarks); PyMuPDF is as fast
but AGPL-licensed. The ``pdf`` extra installs it.

The run never calls this parser in its own process: PDF is :data:`ISOLATED` and
:mod:`.pool` runs :meth:`PdfReader.extract` in a parser worker with a time and memory
limit, since a hostile PDF can make any parser hang or balloon.

Outcomes: text pieces, one or more per page (``page`` is 1-based); ``READ/ENCRYPTED``
for a file that needs a password to open (a file with only an owner password opens
and is read); ``READ/CORRUPT`` for one PDFium cannot load; ``SKIP/NO_TEXT`` for pages
with no text layer (a scan needs OCR first); ``SKIP/NEEDS_EXTRA`` without pypdfium2.

Sections come from the outline (bookmarks): a page's text is split where the title of
an outline entry pointing at that page appears in it (an entry whose title is not on
the page starts where the previous one ended), and each piece carries the heading path
(``Chapter 2 > Setup``) in effect at its start.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .binary import needs_extra, whole_bytes
from .files import read_fail

MAGIC = b"%PDF-"
# PDF readers accept the header anywhere in the first KiB (some writers put junk first).
MAGIC_WITHIN = 1024
# PDFium's FPDF_ERR_PASSWORD: the file is encrypted and needs a password to open.
_ERR_PASSWORD = 4
_OUTLINE_DEPTH = 15


class PdfReader:
    """Any file with a ``%PDF-`` header in its first KiB, or named ``*.pdf``."""

    name = "pdf"
    version = 1

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        return MAGIC in head[:MAGIC_WITHIN] or src.path.lower().endswith(".pdf")

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        try:
            import pypdfium2 as pdfium  # type: ignore[import-untyped]
        except ImportError as exc:
            return needs_extra("pdf", "a PDF", raw, exc)
        got = whole_bytes(raw, ledger)
        if isinstance(got, Err):
            return got
        try:
            doc = pdfium.PdfDocument(got.value)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) == _ERR_PASSWORD:
                return read_fail(
                    "READ/ENCRYPTED", "encrypted PDF: it needs a password to open", raw.source
                )
            return read_fail("READ/CORRUPT", f"not a readable PDF ({exc})", raw.source)
        try:
            title = _clean(doc.get_metadata_value("Title"))
            pieces = list(_pieces(doc, _outline(doc)))
        except pdfium.PdfiumError as exc:
            return read_fail("READ/CORRUPT", f"damaged PDF ({exc})", raw.source)
        finally:
            doc.close()
        if not any(p.text.strip() for p in pieces):
            pages = max((p.page or 0 for p in pieces), default=0)
            return Err(
                make_errinfo(
                    "SKIP/NO_TEXT",
                    f"no text layer on its {pages} page(s): a scan or images (OCR it first)",
                    stage="read",
                    path=raw.source.path,
                    doc_id=raw.source.doc_id,
                )
            )
        document = Document(raw.source, raw.file_hash, reader_id(self), title=title)
        return Ok(Extraction(document, iter(pieces)))


def _clean(text: str) -> str:
    """PDF text as stored: Unix newlines, no NULs (PDFium pads some strings with them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "").strip("\n")


def _outline(doc: Any) -> dict[int, list[tuple[str, str]]]:
    """Outline entries by 0-based page index: (title, heading path), in outline order."""
    by_page: dict[int, list[tuple[str, str]]] = defaultdict(list)
    path: list[str] = []
    for item in doc.get_toc(max_depth=_OUTLINE_DEPTH):
        title = " ".join(_clean(item.get_title()).split())
        del path[item.level :]
        path.append(title)
        dest = item.get_dest()
        index = dest.get_index() if dest is not None else None
        if index is not None and title:
            by_page[index].append((title, " > ".join(p for p in path if p)))
    return by_page


def _pieces(doc: Any, outline: dict[int, list[tuple[str, str]]]) -> Iterator[TextPiece]:
    """Each page's text (a blank line after it), split where its outline entries start."""
    section = ""
    for index in range(len(doc)):
        page = doc[index]
        try:
            textpage = page.get_textpage()
            try:
                text = _clean(textpage.get_text_range()) + "\n\n"
            finally:
                textpage.close()
        finally:
            page.close()
        cursor = 0
        for title, path in outline.get(index, ()):
            # Where the heading's words start on the page (line breaks may differ); a
            # heading not printed as text starts its section where the last one ended.
            at = _find_words(text, title, cursor)
            if at is not None and at > cursor:
                yield TextPiece(text[cursor:at], section, index + 1)
            section, cursor = path, cursor if at is None else at
        yield TextPiece(text[cursor:], section, index + 1)


def _find_words(text: str, title: str, start: int) -> int | None:
    """The offset of ``title`` in ``text`` at or after ``start``, whitespace-insensitive."""
    words = title.split()
    if not words:
        return None
    found = re.compile(r"\s+".join(re.escape(w) for w in words)).search(text, start)
    return found.start() if found is not None else None


__all__ = ["MAGIC", "PdfReader"]
