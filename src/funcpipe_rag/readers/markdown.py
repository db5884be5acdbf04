"""Markdown: the text as written, cut into sections at its headings.

* **Text**: the decoded file (any encoding, as plain text), without a YAML front-matter
  block; chunk offsets are into that text.
* **Sections**: each top-level heading (found by :mod:`.mdscan`, which knows code
  fences, HTML blocks and containers) starts a piece whose ``section`` is the heading
  path (``"Install > From source"``) and which is a hard ``boundary``: no chunk
  straddles two sections. Headings with nothing but blank lines between them make one
  piece (a chunk of a lone heading would carry no content), named by the deepest.
* **Title**: ``title:`` of the front matter, else the first level-1 heading within the
  first 8 KiB of the file.
* **Front matter**: a first line ``---`` closed by ``---`` or ``...`` within the first
  8 KiB; only ``title:`` is read (a one-line scalar, quoted or not).

Streamed line by line: a file of any size is read in constant memory (a piece is
handed on every :data:`_PIECE_CHARS` characters even inside one long section).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .decoding import AUTO, open_text
from .mdscan import MarkdownScanner
from .text import encoding_option, looks_like_text

EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn", ".mdtext"})
_PIECE_CHARS = 1 << 16
_FRONT = re.compile(r"---[ \t]*\r?\n")
_FRONT_END = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)", re.M)
_TITLE = re.compile(
    r"""^title[ \t]*:[ \t]*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^#\r\n]*?))[ \t]*(?:\#.*)?$""",
    re.M,
)
_LINES = re.compile(r"[^\n]*\n|[^\n]+")


def front_matter(head: str) -> tuple[int, str]:
    """(characters the front-matter block takes at the start of ``head``, its title)."""
    start = _FRONT.match(head)
    if start is None:
        return 0, ""
    end = _FRONT_END.search(head, start.end())
    if end is None:
        return 0, ""
    block = head[start.end() : end.start()]
    m = _TITLE.search(block)
    title = ""
    if m is not None:
        dq, sq, plain = m.groups()
        if dq is not None:
            title = re.sub(r"\\(.)", r"\1", dq)
        elif sq is not None:
            title = sq.replace("''", "'")
        else:
            title = plain
    return end.end(), " ".join(title.split())


def first_h1(text: str) -> str:
    """The text of the first level-1 heading in ``text`` (complete lines only)."""
    scanner = MarkdownScanner()
    complete = text[: text.rfind("\n") + 1]
    for line in complete.split("\n")[:-1]:
        heading = scanner.feed(line.rstrip("\r"))
        if heading is not None and heading.level == 1:
            return heading.text
    return ""


def _lines(texts: Iterator[str]) -> Generator[str, None, None]:
    """Whole lines (with their ``\\n``) of text arriving in blocks of any size; a line
    longer than a piece is handed on in parts (it holds no heading that matters)."""
    pending = ""
    for block in texts:
        if not block:
            continue
        data = pending + block
        cut = data.rfind("\n") + 1
        if cut == 0 and len(data) > _PIECE_CHARS:
            cut = len(data)
        yield from _LINES.findall(data, 0, cut)
        pending = data[cut:]
    if pending:
        yield pending


def sections(
    texts: Iterator[str], skip: int = 0, *, path: list[tuple[int, str]] | None = None
) -> Generator[TextPiece, None, None]:
    """The pieces of a Markdown text (see the module docstring), lazily.

    ``skip`` characters at the start (the front matter) are left out of the text.
    ``path`` is the heading path as (level, text), updated in place: a caller that cuts
    one document into several Markdown texts (a notebook's cells) passes the same list.
    """
    scanner = MarkdownScanner()
    path = [] if path is None else path
    section = " > ".join(t for _, t in path)
    # Invariant: ``buf`` holds the settled lines of the current piece; ``tail`` the lines
    # from ``tail_start`` on of an open paragraph a setext underline may yet make a
    # heading (held back, since they would then start the next piece).
    buf: list[str] = []
    size = 0
    tail: list[str] = []
    tail_start = tail_size = 0
    boundary = False
    only_headings = False  # the current piece holds headings and blank lines only

    def settle(lines: list[str]) -> None:
        nonlocal size, only_headings
        for x in lines:
            buf.append(x)
            size += len(x)
            if only_headings and not x.isspace():
                only_headings = False

    for line in _lines(_skipping(texts, skip)):
        at = scanner.line + 1
        heading = scanner.feed(line.rstrip("\n").rstrip("\r"))
        if heading is not None:
            keep = heading.line - tail_start if tail else 0
            settle(tail[:keep])
            lines, tail = [*tail[keep:], line], []
            while path and path[-1][0] >= heading.level:
                path.pop()
            path.append((heading.level, heading.text))
            if not (only_headings and buf):  # else: a heading with no body joins this one
                if buf:
                    yield TextPiece("".join(buf), section, boundary=boundary)
                buf.clear()
                size, boundary = 0, True
            buf.extend(lines)
            size += sum(len(x) for x in lines)
            section, only_headings = " > ".join(t for _, t in path), True
            continue
        start = scanner.paragraph_start
        if start is None:
            if tail:
                settle(tail)
                tail = []
            buf.append(line)
            size += len(line)
            if only_headings and not line.isspace():
                only_headings = False
        elif start == at:
            settle(tail)
            tail, tail_start, tail_size = [line], at, len(line)
        else:
            tail.append(line)
            tail_size += len(line)
            if tail_size > _PIECE_CHARS:
                scanner.forget_paragraph()
                settle(tail)
                tail = []
        if size >= _PIECE_CHARS:
            yield TextPiece("".join(buf), section, boundary=boundary)
            buf.clear()
            size, boundary = 0, False
    settle(tail)
    if buf:
        yield TextPiece("".join(buf), section, boundary=boundary)


def _skipping(texts: Iterator[str], skip: int) -> Generator[str, None, None]:
    for block in texts:
        if skip:
            cut = min(skip, len(block))
            block, skip = block[cut:], skip - cut
        yield block


class MarkdownReader:
    """Files named ``*.md`` (and the other Markdown extensions) that look like text."""

    name = "markdown"
    version = 1

    def __init__(self, encoding: str = AUTO) -> None:
        self.encoding = encoding
        self.options = encoding_option(encoding)

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        ext = os.path.splitext(src.path)[1].lower()
        return ext in EXTENSIONS and looks_like_text(head, self.encoding)

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        got = open_text(raw, ledger, encoding=self.encoding)
        if isinstance(got, Err):
            return got
        decoded = got.value
        head = decoded.head()
        skip, title = front_matter(head)
        title = title or first_h1(head[skip:])
        doc = Document(
            raw.source, raw.file_hash, reader_id(self), encoding=decoded.encoding, title=title
        )
        return Ok(Extraction(doc, _closing(decoded.texts(), skip)))


def _closing(texts: Generator[str, None, None], skip: int) -> Generator[TextPiece, None, None]:
    """The sections of ``texts``; closing this closes the text (and the file it reads)."""
    try:
        yield from sections(texts, skip)
    finally:
        texts.close()


__all__ = ["EXTENSIONS", "MarkdownReader", "first_h1", "front_matter", "sections"]
