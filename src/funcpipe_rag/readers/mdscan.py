"""Find the top-level headings of Markdown text, line by line, in constant memory.

A line scanner rather than a full parser, for two measured reasons: markdown-it-py's
block parser (inline parsing off) reads about 1.2 M characters/s on the real corpus —
slower than everything else in an ingest put together — and it needs the whole text in
one string, while this scanner streams a file of any size. It knows what can hide a
``#`` at the start of a line or turn one into something else, following CommonMark:

* ATX headings (``#`` .. ``######`` then a space or the end, up to 3 spaces indented;
  a closing ``#`` run is dropped) and setext headings (a paragraph underlined with ``=``
  or ``-``; the heading starts at the paragraph's first line);
* fenced code (`````` or ``~~~``, closed only by a fence of the same character at least as
  long; unclosed, it runs to the end) and indented code (4 spaces, not inside a
  paragraph);
* HTML blocks: comments, ``<pre>``/``<script>``/``<style>``/``<textarea>``, processing
  instructions, declarations and CDATA until their end marker; block-level tags (and a
  lone complete tag) until a blank line;
* containers: block quotes (``>``) and list items, whose content — including indented
  continuation lines and lazy paragraph lines — holds no top-level heading.

tests/readers/test_markdown.py checks the headings it finds against markdown-it-py's on
hand-written files and on generated ones built from these constructs. Known
simplification: lines inside a list item are recognised by indentation against the
outermost item only (a fence inside an item that is closed by an outdented line, say,
is read loosely).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATX = re.compile(r"(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE = re.compile(r"(`{3,}|~{3,})(.*)$")
_SETEXT = re.compile(r"(=+|-+)[ \t]*$")
_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"([-+*])([ \t]+|$)")
_ORDERED = re.compile(r"(\d{1,9})([.)])([ \t]+|$)")
_HTML_ENDS = (
    (re.compile(r"<(?:script|pre|style|textarea)(?:[ \t>]|$)", re.I),
     re.compile(r"</(?:script|pre|style|textarea)>", re.I)),
    (re.compile(r"<!--"), re.compile(r"-->")),
    (re.compile(r"<\?"), re.compile(r"\?>")),
    (re.compile(r"<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"<!\[CDATA\["), re.compile(r"\]\]>")),
)  # fmt: skip
_BLOCK_TAGS = (
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|"
    "details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h1|"
    "h2|h3|h4|h5|h6|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|"
    "noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|"
    "thead|title|tr|track|ul"
)
_HTML_BLOCK = re.compile(rf"</?(?:{_BLOCK_TAGS})(?:[ \t/>]|$)", re.I)
_ATTR = r"""[ \t]+[A-Za-z_:][\w.:-]*(?:[ \t]*=[ \t]*(?:[^ \t"'=<>`]+|'[^']*'|"[^"]*"))?"""
_LONE_TAG = re.compile(
    rf"(?:<[A-Za-z][A-Za-z0-9-]*(?:{_ATTR})*[ \t]*/?>|</[A-Za-z][A-Za-z0-9-]*[ \t]*>)[ \t]*$"
)
_INLINE_MARKS = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[`*_]+|\\(?=[!-/:-@\[-`{-~])")
_BLANK = re.compile(r"[ \t]*$")
# What a line must start with to be anything but paragraph text at the top level.
_SPECIAL_FIRST = frozenset(" \t#`~-*_>+<=0123456789")


_UNTIL_BLANK = re.compile(r"\Z\A")  # a marker: the block ends at a blank line


def _html_kind(rest: str, *, in_para: bool) -> re.Pattern[str] | None:
    """How the HTML block starting at ``rest`` ends (its end marker, or
    :data:`_UNTIL_BLANK`), or None when the line starts none. A lone tag (CommonMark's
    type 7) cannot interrupt a paragraph; the others can."""
    for start, end in _HTML_ENDS:
        if start.match(rest):
            return end
    if _HTML_BLOCK.match(rest):
        return _UNTIL_BLANK
    if not in_para and _LONE_TAG.match(rest):
        return _UNTIL_BLANK
    return None


def _fence(rest: str) -> re.Match[str] | None:
    """An opening code fence (a backtick fence's info string holds no backtick)."""
    m = _FENCE.match(rest)
    return None if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)) else m


def heading_text(raw: str) -> str:
    """A heading's plain text: links and images as their text, emphasis and code marks
    and backslash escapes dropped, whitespace collapsed."""
    plain = _INLINE_MARKS.sub(lambda m: m.group(1) or "", raw)
    return " ".join(plain.split())


def _indent(line: str) -> tuple[int, str]:
    """Columns of leading whitespace (a tab to the next multiple of 4) and the rest."""
    col = 0
    for i, ch in enumerate(line):
        if ch == " ":
            col += 1
        elif ch == "\t":
            col += 4 - col % 4
        else:
            return col, line[i:]
    return col, ""


@dataclass(frozen=True, slots=True)
class Heading:
    """A top-level heading: ``line`` is where it starts (a setext heading starts at its
    paragraph's first line), counted from 0."""

    line: int
    level: int
    text: str


class MarkdownScanner:
    """Feed lines (without their line break) in order; :meth:`feed` returns the heading
    that the line completes, if any. Memory is constant apart from the text of an
    open setext candidate, which is capped."""

    _MAX_PARAGRAPH = 4096  # characters of paragraph text kept as a setext candidate

    def __init__(self) -> None:
        self.line = -1
        self._fence: tuple[str, int] | None = None
        self._html_end: re.Pattern[str] | None = None
        self._html_until_blank = False
        self._para: list[str] | None = None  # the open top-level paragraph's lines
        self._para_start = 0
        self._para_size = 0
        self._setext_ok = False  # the open paragraph may still become a setext heading
        self._quote = False
        self._list_indent: int | None = None
        self._lazy = False  # an open paragraph inside a container takes lazy lines
        self._item_empty = False  # the open list item has no content yet
        self._blank_before = True

    @property
    def paragraph_start(self) -> int | None:
        """The first line of the open top-level paragraph while a setext underline may
        still make it a heading, else None."""
        return self._para_start if self._para is not None and self._setext_ok else None

    def forget_paragraph(self) -> None:
        """Give up the open paragraph's chance to become a setext heading (a caller
        that cannot hold its lines any longer): it stays a paragraph."""
        self._setext_ok = False

    def feed(self, line: str) -> Heading | None:
        self.line += 1
        # The common case first: a line of prose outside any code, HTML or container
        # starts or continues a paragraph, whatever else it holds.
        if (
            line
            and line[0] not in _SPECIAL_FIRST
            and self._fence is None
            and self._html_end is None
            and not self._html_until_blank
            and not self._quote
            and self._list_indent is None
        ):
            if self._para is None:
                self._para, self._para_start, self._para_size = [], self.line, 0
                self._setext_ok = True
            if self._para_size <= self._MAX_PARAGRAPH:
                self._extend_para(line)
            self._blank_before = False
            return None
        blank = _BLANK.match(line) is not None
        try:
            return self._line(line, blank)
        finally:
            self._blank_before = blank

    def _line(self, line: str, blank: bool) -> Heading | None:
        if self._fence is not None:
            self._close_fence(line)
            return None
        if self._html_end is not None:
            if self._html_end.search(line):
                self._html_end = None
            return None
        if self._html_until_blank:
            self._html_until_blank = not blank
            return None
        if blank:
            self._para = None
            self._lazy = False
            self._quote = False  # a blank line ends a block quote; a list may go on,
            if self._item_empty:  # but an item can start with one blank line only
                self._list_indent = None
            return None
        indent, rest = _indent(line)
        if self._in_container(indent, rest):
            return None
        if indent >= 4:
            if self._para is not None:
                self._extend_para(rest)
            return None
        return self._block(line, rest)

    def _in_container(self, indent: int, rest: str) -> bool:
        """Whether the line belongs to an open block quote or list item."""
        if self._quote:
            if indent < 4 and rest.startswith(">"):
                self._lazy = self._continues(rest[1:])
                return True
            if self._lazy and not self._blank_before and self._is_lazy(rest, indent):
                return True
            self._quote = self._lazy = False
        if self._list_indent is not None:
            if indent >= self._list_indent:
                self._item_empty = False
                self._lazy = self._continues(" " * (indent - self._list_indent) + rest)
                return True
            if self._lazy and not self._blank_before and self._is_lazy(rest, indent):
                return True
            self._list_indent = None
            self._lazy = False
        return False

    def _continues(self, content: str) -> bool:
        """Whether a container's paragraph is open after a line with this content (the
        line less its container's indentation or ``>``): paragraph text, or a line an
        open paragraph takes as its continuation."""
        col, rest = _indent(content)
        while col < 4 and rest:  # quotes and list items nested in the container
            marker = _BULLET.match(rest) or _ORDERED.match(rest)
            if rest.startswith(">"):
                col, rest = _indent(rest[1:])
            elif marker is not None and not _BREAK.match(rest):
                col, rest = _indent(rest[marker.end() :])
                self._lazy = False
            else:
                break
        if not rest:
            return False
        if col >= 4:
            return self._lazy  # continues an open paragraph; else it is indented code
        if _SETEXT.match(rest):
            # An underline closes the open paragraph (as a heading inside); without one,
            # "===" starts a paragraph and "---" is a thematic break.
            return not self._lazy and not _BREAK.match(rest)
        return self._is_lazy(rest, 0)

    def _is_lazy(self, rest: str, indent: int) -> bool:
        """A line that continues a paragraph rather than starting a block of its own."""
        if indent >= 4:
            return True
        return not (
            _ATX.match(rest)
            or _fence(rest)
            or _BREAK.match(rest)
            or rest.startswith(">")
            or _BULLET.match(rest)
            or _ORDERED.match(rest)
            or _html_kind(rest, in_para=True) is not None
        )

    def _block(self, line: str, rest: str) -> Heading | None:
        para = self._para
        atx = _ATX.match(rest)
        if atx is not None:
            self._para = None
            text = _ATX_CLOSE.sub("", atx.group(2) or "")
            return Heading(self.line, len(atx.group(1)), heading_text(text))
        if para is not None and self._setext_ok:
            setext = _SETEXT.match(rest)
            if setext is not None:
                self._para = None
                level = 1 if setext.group(1)[0] == "=" else 2
                return Heading(self._para_start, level, heading_text(" ".join(para)))
        fence = _fence(rest)
        if fence is not None:
            self._para = None
            self._fence = (fence.group(1)[0], len(fence.group(1)))
            return None
        if _BREAK.match(rest):
            self._para = None
            return None
        if rest.startswith(">"):
            self._para = None
            self._quote = True
            self._lazy = False
            self._lazy = self._continues(rest[1:])
            return None
        if self._list_item(line, rest, para is not None):
            self._para = None
            return None
        html = _html_kind(rest, in_para=para is not None)
        if html is not None:
            self._para = None
            if html is _UNTIL_BLANK:
                self._html_until_blank = True
            elif not html.search(rest, 2):
                self._html_end = html
            return None
        if para is None:
            self._para, self._para_start, self._para_size = [], self.line, 0
            self._setext_ok = True
        self._extend_para(rest)
        return None

    def _extend_para(self, text: str) -> None:
        assert self._para is not None
        self._para_size += len(text)
        if self._para_size <= self._MAX_PARAGRAPH:
            self._para.append(text.strip())

    def _list_item(self, line: str, rest: str, in_para: bool) -> bool:
        bullet = _BULLET.match(rest)
        ordered = None if bullet is not None else _ORDERED.match(rest)
        marker = bullet or ordered
        if marker is None:
            return False
        empty = not rest[marker.end() :].strip()
        # CommonMark: an empty item, or an ordered one not starting at 1, cannot
        # interrupt a paragraph.
        if in_para and (empty or (ordered is not None and ordered.group(1) != "1")):
            return False
        spaces = marker.group(marker.lastindex or 0)
        width = marker.end() - len(spaces)
        gap = _indent(spaces)[0] if not empty else 1
        indent = _indent(line)[0]
        self._list_indent = indent + width + (gap if 1 <= gap <= 4 else 1)
        self._item_empty = empty
        self._lazy = False
        self._lazy = not empty and self._continues(rest[marker.end() :])
        return True

    def _close_fence(self, line: str) -> None:
        assert self._fence is not None
        indent, rest = _indent(line)
        char, length = self._fence
        if indent < 4 and rest.startswith(char * length) and not rest.strip(char + " \t"):
            self._fence = None


__all__ = ["Heading", "MarkdownScanner", "heading_text"]
