"""HTML: the visible text, in sections at its headings, streamed in bounded memory.

* **Text**: what a browser shows as text — no tags, comments, ``<script>``, ``<style>``,
  ``<template>``, ``<noscript>``, ``<svg>`` or elements marked ``hidden`` (on elements
  whose end tag is required; one left open by an optional end tag would hide the rest);
  entities decoded; whitespace collapsed outside ``<pre>``; block elements give line and
  paragraph breaks, table cells a tab.
* **Sections**: ``<h1>``..``<h6>`` start pieces with the heading path as ``section`` and
  a hard ``boundary`` (as Markdown headings do).
* **Title**: ``<title>`` within the first 8 KiB, else the first ``<h1>`` there. The title
  is not part of the text.
* **Encoding**: the decoding rule (:mod:`.decoding`) with the charset a ``<meta>`` in the
  first 1024 bytes declares as its step 3 (WHATWG labels: ``iso-8859-1`` and ``ascii``
  mean windows-1252, a declared UTF-16 means UTF-8).

Parsed by the standard library's :class:`html.parser.HTMLParser`, fed incrementally:
it holds only what it has not yet understood, so memory stays flat however long the
file or its lines (lxml's feed parser, measured, is 5x faster but its memory grows with
the input: 65 MB peak for a 50 MB single-line page, 11 MB here; bench_readers). What
the parser holds back is capped: an unterminated comment, tag or ``<script>`` is
trimmed to its ends (all of it invisible), and plain text it waits on is passed on, so
a hostile file costs linear time too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from html import unescape
from html.parser import HTMLParser

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, ReadError, TextPiece, reader_id
from .decoding import AUTO, open_text, sniff_text
from .text import encoding_option, looks_like_text

EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml"})
_SNIFF = re.compile(r"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_META_CHARSET = re.compile(
    rb"""<meta\s[^>]*?(?:charset\s*=\s*["']?\s*([-\w.:]+)|content\s*=\s*["'][^"']*charset=([-\w.:]+))""",
    re.I,
)
_WHATWG = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "l1": "cp1252",
    "ascii": "cp1252", "us-ascii": "cp1252", "windows-1252": "cp1252",
    "utf-16": "utf-8", "utf-16le": "utf-8", "utf-16be": "utf-8", "x-user-defined": "cp1252",
}  # fmt: skip
_HIDING = frozenset({"script", "style", "template", "noscript", "svg", "math", "iframe", "object"})
_OPTIONAL_END = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "option",
        "optgroup",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rp",
        "rt",
        "html",
        "head",
        "body",
    ]
)
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_PARAGRAPH = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "dl",
        "table",
        "form",
        "fieldset",
        "figure",
        "figcaption",
        "address",
        "details",
        "summary",
        "hr",
        "body",
    ]
)
_LINE = frozenset(["br", "li", "tr", "dt", "dd", "option", "caption"])
_CELL = frozenset({"td", "th"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Only what must change: a run of ASCII whitespace, or one that is not a space (prose
# is mostly single spaces, left alone). NBSP and other Unicode spaces are text in HTML.
_WS = re.compile(r"[ \t\n\r\f\v]{2,}|[\t\n\r\f\v]")
_GAPS = ("", " ", "\t", "\n", "\n\n")  # weakest first
_FEED_CHARS = 1 << 16
_PIECE_CHARS = 1 << 16
_STUCK_CHARS = 1 << 20  # what the parser may hold back before it is trimmed
_KEEP_CHARS = 256


def declared_charset(head: bytes) -> str | None:
    """The charset a ``<meta>`` in the first 1024 bytes declares, as a Python codec."""
    m = _META_CHARSET.search(head[:1024])
    if m is None:
        return None
    label = (m.group(1) or m.group(2)).decode("ascii", "replace").strip().lower()
    return _WHATWG.get(label, label)


class _VisibleText(HTMLParser):
    """Collects the visible text in pieces (``ready``) as it is fed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ready: list[TextPiece] = []
        self.title = ""
        self.first_h1 = ""
        self._out: list[str] = []
        self._size = 0
        self._gap = ""  # whitespace owed before the next visible text
        self._any = False  # visible text was emitted (no gap is owed before the first)
        self._section = ""
        self._boundary = False
        self._only_headings = False
        self._path: list[tuple[int, str]] = []
        # Invariant: ``_hidden`` is empty, or holds the hiding element that opened it
        # first and every element opened inside it since (so its end tag is found).
        self._hidden: list[str] = []
        self._pre = 0
        self._heading: tuple[int, list[str]] | None = None
        self._in_title: list[str] | None = None

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """``<![keyword[ ... ]]>``: the standard parser raises on a keyword it does not
        know (``<![bogus[``), where a browser skips a bogus comment; so does this."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1

    # -- the parser's events --

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden:
            if tag not in _VOID:
                self._hidden.append(tag)
            return
        if tag in _HIDING or (
            tag not in _OPTIONAL_END and tag not in _VOID and any(k == "hidden" for k, _ in attrs)
        ):
            self._hidden.append(tag)
            return
        if tag == "title":
            self._in_title = []
        elif tag in _HEADINGS:
            self._start_heading(_HEADINGS[tag])
        elif tag == "pre":
            self._pre += 1
        self._block(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._hidden:
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            if tag in self._hidden:
                while self._hidden.pop() != tag:
                    pass
            return
        if tag == "title" and self._in_title is not None:
            self.title = self.title or " ".join("".join(self._in_title).split())
            self._in_title = None
        elif tag in _HEADINGS and self._heading is not None:
            self._end_heading()
        elif tag == "pre" and self._pre:
            self._pre -= 1
        self._block(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._in_title is not None:
            self._in_title.append(data)
            return
        if self._pre:
            self._emit(data)
            return
        text = _WS.sub(" ", data)
        if text.startswith(" "):
            self._owe(" ")
        core = text.strip(" ")
        if core:
            self._emit(core)
            if text.endswith(" "):
                self._owe(" ")

    # -- text and pieces --

    def _owe(self, gap: str) -> None:
        if _GAPS.index(gap) > _GAPS.index(self._gap):
            self._gap = gap

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPH or tag in _HEADINGS:
            self._owe("\n\n")
        elif tag in _LINE:
            self._owe("\n")
        elif tag in _CELL:
            self._owe("\t")

    def _emit(self, text: str) -> None:
        if self._gap and self._any:
            text = self._gap + text
        self._gap, self._any = "", True
        self._out.append(text)
        self._size += len(text)
        if self._heading is not None:
            self._heading[1].append(text)
        else:
            self._only_headings = False
        if self._size >= _PIECE_CHARS and self._heading is None:
            self._flush(boundary_next=False)

    def _flush(self, *, boundary_next: bool) -> None:
        if self._out:
            self.ready.append(TextPiece("".join(self._out), self._section, boundary=self._boundary))
        self._out, self._size = [], 0
        self._boundary = boundary_next

    def _start_heading(self, level: int) -> None:
        if self._heading is not None:
            self._end_heading()
        if not (self._only_headings and self._out):  # else: headings with no body join
            self._flush(boundary_next=True)
        self._heading = (level, [])

    def _end_heading(self) -> None:
        assert self._heading is not None
        level, parts = self._heading
        self._heading = None
        text = " ".join("".join(parts).split())
        if level == 1 and not self.first_h1:
            self.first_h1 = text
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        self._section = " > ".join(t for _, t in self._path)
        self._only_headings = True

    def take(self) -> list[TextPiece]:
        ready, self.ready = self.ready, []
        return ready

    def finish(self) -> list[TextPiece]:
        self.close()
        if self._heading is not None:
            self._end_heading()
        self._flush(boundary_next=False)
        return self.take()

    def unstick(self) -> None:
        """Cap what the parser holds back (see the module docstring)."""
        raw = self.rawdata
        if len(raw) <= _STUCK_CHARS:
            return
        if raw.startswith("<"):
            # Inside an unterminated tag, comment or declaration: all invisible. Keep its
            # start and end; the space cannot complete an end marker.
            self.rawdata = raw[:_KEEP_CHARS] + " " + raw[-_KEEP_CHARS:]
        else:
            # Text (or <script> content) the parser waits on for a cut entity.
            self.rawdata = raw[-_KEEP_CHARS:]
            body = raw[:-_KEEP_CHARS]
            self.handle_data(body if self.cdata_elem else unescape(body))


def _feeds(block: str) -> Generator[str, None, None]:
    for i in range(0, len(block), _FEED_CHARS):
        yield block[i : i + _FEED_CHARS]


def html_pieces(texts: Generator[str, None, None]) -> Generator[TextPiece, None, None]:
    """The visible text of an HTML document arriving in blocks, as pieces; closing this
    closes ``texts``. A parser failure is a :class:`~.base.ReadError` (``READ/CORRUPT``)."""
    parser = _VisibleText()
    try:
        for block in texts:
            for part in _feeds(block):
                parser.feed(part)
                parser.unstick()
                yield from parser.take()
        yield from parser.finish()
    except (AssertionError, ValueError, IndexError) as exc:  # the parser's own failures
        raise ReadError("READ/CORRUPT", f"HTML the parser cannot read: {exc}") from exc
    finally:
        texts.close()


def head_title(head: str) -> str:
    """``<title>``, else the first ``<h1>``, in ``head`` (the first 8 KiB)."""
    parser = _VisibleText()
    try:
        parser.feed(head)
        parser.finish()
    except (AssertionError, ValueError, IndexError):
        pass
    return parser.title or parser.first_h1


class HtmlReader:
    """HTML by its content (a doctype or ``<html>`` first), else by its extension."""

    name = "html"
    version = 1

    def __init__(self, encoding: str = AUTO) -> None:
        self.encoding = encoding
        self.options = encoding_option(encoding)

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        if not looks_like_text(head, self.encoding):
            return False
        if _SNIFF.match(sniff_text(head[:1024])):
            return True
        return os.path.splitext(src.path)[1].lower() in EXTENSIONS

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        got = open_text(raw, ledger, encoding=self.encoding, declared=declared_charset(raw.head))
        if isinstance(got, Err):
            return got
        decoded = got.value
        doc = Document(
            raw.source,
            raw.file_hash,
            reader_id(self),
            encoding=decoded.encoding,
            title=head_title(decoded.head()),
        )
        return Ok(Extraction(doc, html_pieces(decoded.texts())))


__all__ = ["EXTENSIONS", "HtmlReader", "declared_charset", "head_title", "html_pieces"]
