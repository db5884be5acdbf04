"""Cut a text that arrives in pieces into overlapping chunks at natural boundaries.

Pure and lazy: no I/O, and :func:`iter_spans` keeps only about ``chunk_size`` characters
buffered (plus the piece being read), so a 100 MB file read in 1 MiB blocks chunks in flat
memory.

The algorithm (version ``v1``, named in :meth:`ChunkerSettings.fingerprint`) is a function
of the whole text alone: how the text is cut into pieces never changes the output.

* A chunk starts at a non-whitespace character and is at most ``chunk_size`` characters.
* While more than ``chunk_size`` characters remain, the chunk ends at the best break in its
  window that still takes it past the previous chunk's end, in this order of preference:

  1. the last paragraph break (``"\\n\\n"`` or ``"\\n\\r\\n"``) in the second half of the
     window;
  2. the last sentence end (``". "``, ``"! "``, ``"? "``, ``".\\n"``, ... or an ideographic
     full stop, full-width exclamation or question mark) in the second half of the window;
  3. the last line break in the second half of the window;
  4. the last whitespace anywhere in the window (ASCII whitespace first, then any other);
  5. a hard cut at ``chunk_size`` characters.

* Trailing whitespace is trimmed from every chunk, and whitespace-only chunks never exist.
* The next chunk starts at the first word start at most ``overlap`` characters before the
  previous end (mid-word at exactly ``overlap`` characters back when that region holds no
  word start), but always after the previous start, and never after the previous end
  except across whitespace. So every non-whitespace character lies in some chunk, starts
  and ends strictly increase, and every chunk makes progress.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from funcpipe_rag.errors import ConfigError

__all__ = ["ChunkerSettings", "iter_spans", "split_text"]

_ALGORITHM = "chars"
_VERSION = "v1"

# Characters past the window that a break decision may look at ("\n\r\n" at the window end).
_LOOKAHEAD = 3

_NON_WS = re.compile(r"\S")
_WS = re.compile(r"\s")
_WORD_START = re.compile(r"\s\S")  # matches just before a word start

_SENTENCE_ENDS = (". ", "! ", "? ", ".\n", "!\n", "?\n", ".\t", ".\r")
_CJK_SENTENCE_ENDS = ("\u3002", "\uff01", "\uff1f")  # ideographic full stop, full-width ! ?
_ASCII_WS = (" ", "\n", "\t", "\r", "\f", "\v")
# _SENTENCE_ENDS by the mark they start with.
_SENTENCE_MARKS = tuple(
    (mark, tuple(sep for sep in _SENTENCE_ENDS if sep[0] == mark)) for mark in ".!?"
)
# For split_text: (mark, the characters that may follow it, its separators) for every
# mark, and the separators of "." that a text without tabs / carriage returns can hold
# (indexed by has_tab + 2 * has_cr), built once here rather than once per text.
_MARK_FOLLOWERS = tuple(
    (mark, "".join(sep[1] for sep in seps), seps) for mark, seps in _SENTENCE_MARKS
)
_DOT_SEPS = tuple(
    tuple(
        sep for sep in _SENTENCE_MARKS[0][1] if (sep[1] != "\t" or tab) and (sep[1] != "\r" or cr)
    )
    for tab, cr in ((False, False), (True, False), (False, True), (True, True))
)


class _MarkSearch:
    """One sentence mark a text holds, while :func:`_whole_spans` splits it.

    ``next``: the mark does not occur from the current window's start (which never
    moves back) up to ``next``, so a window ending before it holds no such mark and
    costs a comparison instead of a search. ``followers``: the characters after which
    the mark ends a sentence; ``seps``: its sentence-end separators this text can hold.
    """

    __slots__ = ("char", "followers", "next", "seps")

    def __init__(self, char: str, followers: str, seps: tuple[str, ...]) -> None:
        self.char = char
        self.followers = followers
        self.seps = seps
        self.next = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkerSettings:
    """How to chunk: sizes in characters, validated when constructed.

    >>> ChunkerSettings()
    ChunkerSettings(chunk_size=800, overlap=100)
    >>> ChunkerSettings(chunk_size=400, overlap=0).fingerprint()
    'chars:400:0:v1'
    >>> ChunkerSettings(chunk_size=100, overlap=100)
    Traceback (most recent call last):
        ...
    funcpipe_rag.errors.ConfigError: overlap must be smaller than chunk_size, got 100 >= 100
    """

    chunk_size: int = 800
    overlap: int = 100

    def __post_init__(self) -> None:
        for name in ("chunk_size", "overlap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an int, got {value!r}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if self.overlap < 0:
            raise ConfigError(f"overlap must not be negative, got {self.overlap}")
        if self.overlap >= self.chunk_size:
            raise ConfigError(
                f"overlap must be smaller than chunk_size, got {self.overlap} >= {self.chunk_size}"
            )

    def fingerprint(self) -> str:
        """A short stable string naming the algorithm, its version and these settings."""
        return f"{_ALGORITHM}:{self.chunk_size}:{self.overlap}:{_VERSION}"


def iter_spans(pieces: Iterable[str], settings: ChunkerSettings) -> Iterator[tuple[int, int, str]]:
    """Lazily yield ``(start, end, text)`` chunks of the concatenation of ``pieces``.

    Offsets are absolute character offsets into the concatenated text and
    ``text == full_text[start:end]``. Pieces may have any size, empty strings included;
    the output does not depend on where the text was cut into pieces. Reads ahead at most
    about ``chunk_size`` characters past the chunk it yields.
    """
    if not isinstance(settings, ChunkerSettings):
        raise ConfigError(f"settings must be ChunkerSettings, got {type(settings).__name__}")
    return _spans(iter(pieces), settings.chunk_size, settings.overlap)


def split_text(text: str, settings: ChunkerSettings) -> list[tuple[int, int, str]]:
    """All chunks of ``text`` at once: ``list(iter_spans([text], settings))``."""
    if not isinstance(settings, ChunkerSettings):
        raise ConfigError(f"settings must be ChunkerSettings, got {type(settings).__name__}")
    return _whole_spans(text, settings.chunk_size, settings.overlap)


class _Buffer:
    """A sliding window over the concatenated pieces: ``text`` starts at offset ``base``."""

    __slots__ = ("_pieces", "base", "eof", "text")

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self.base = 0
        self.text = ""
        self.eof = False

    @property
    def end(self) -> int:
        return self.base + len(self.text)

    def read(self, keep_from: int, min_new: int) -> None:
        """Append at least ``min_new`` characters (fewer only at the end of the pieces).

        Text before the absolute offset ``keep_from`` is dropped, but only when new text
        arrives, so the copy is paid once per block read rather than once per chunk.
        """
        if self.eof:
            return
        new: list[str] = []
        count = 0
        for piece in self._pieces:
            if piece:
                new.append(piece)
                count += len(piece)
                if count >= min_new:
                    break
        else:
            self.eof = True
        if new:
            self.text = self.text[keep_from - self.base :] + "".join(new)
            self.base = keep_from


def _next_non_ws(buf: _Buffer, pos: int, keep_from: int, release_after: int, grow: int) -> int:
    """The offset of the first non-whitespace character at or after ``pos``, or -1.

    Keeps text from ``keep_from`` while reading on, unless the whitespace run passes
    ``release_after``: then nothing before the run's end is needed any more.
    """
    while True:
        found = _NON_WS.search(buf.text, pos - buf.base)
        if found is not None:
            return buf.base + found.start()
        if buf.eof:
            return -1
        pos = buf.end
        if pos > release_after:
            keep_from = pos
        buf.read(keep_from, grow)


def _choose_break(text: str, start: int, limit: int, must_pass: int, half: int) -> int:
    """Where the chunk ``text[start:b]`` ends; relative offsets, ``must_pass < b <= limit``.

    ``must_pass`` is a non-whitespace character the chunk must include, so that it reaches
    past the previous chunk.
    """
    soft_lo = max(start + half, must_pass + 1)
    # Each search after a hit only needs to look past it, so later searches stay short.
    b = text.rfind("\n\n", soft_lo, limit + 2)
    i = text.rfind("\n\r\n", max(b + 1, soft_lo), limit + 3)
    if i >= 0 or b >= 0:
        return i if i > b else b
    lo = soft_lo - 1
    for sep in _SENTENCE_ENDS:
        i = text.rfind(sep, lo, limit + 1)
        if i >= 0:
            b = lo = i
    for sep in _CJK_SENTENCE_ENDS:
        i = text.rfind(sep, lo, limit)
        if i >= 0:
            b = lo = i
    if b >= 0:
        return b + 1
    b = text.rfind("\n", soft_lo, limit + 1)
    if b >= 0:
        return b
    return _last_space(text, must_pass + 1, limit)


def _overlap_start(text: str, lo: int, end: int) -> int:
    """The first word start in ``text[lo:end]`` (relative offsets), else ``lo`` itself.

    ``text[end - 1]`` is not whitespace, and ``lo >= 1``.
    """
    if not text[lo].isspace() and text[lo - 1].isspace():
        return lo
    space = _WS.search(text, lo, end)
    if space is None:
        return lo  # one word covers the whole overlap: start inside it
    word = _NON_WS.search(text, space.end(), end)
    if word is None:  # pragma: no cover - text[end - 1] is not whitespace
        raise AssertionError("chunk ends in whitespace")
    return word.start()


def _spans(pieces: Iterator[str], size: int, overlap: int) -> Iterator[tuple[int, int, str]]:
    buf = _Buffer(pieces)
    half = size // 2
    grow = size + _LOOKAHEAD
    must_pass = _next_non_ws(buf, 0, 0, -1, grow)
    if must_pass < 0:
        return
    start = must_pass
    while True:
        need = start + size + _LOOKAHEAD
        if buf.end < need:
            buf.read(start, need - buf.end)
        text, base = buf.text, buf.base
        rel = start - base
        if buf.end - start <= size:  # the rest of the text fits: only once all is read
            chunk = text[rel:].rstrip()
            yield start, start + len(chunk), chunk
            return
        cut = _choose_break(text, rel, rel + size, must_pass - base, half)
        chunk = text[rel:cut].rstrip()
        end = start + len(chunk)
        yield start, end, chunk

        lo = max(end - overlap, start + 1)
        candidate = _overlap_start(text, lo - base, end - base) + base if lo < end else -1
        keep = candidate if candidate >= 0 else end
        found = _NON_WS.search(text, end - base)  # usually right at or after the end
        if found is not None:
            must_pass = base + found.start()
        else:
            must_pass = _next_non_ws(buf, end, keep, keep + size, grow)
        if must_pass < 0:
            return
        # Start in the overlap only if the window can still reach past the previous end.
        start = candidate if candidate >= 0 and must_pass < candidate + size else must_pass


def _whole_spans(text: str, size: int, overlap: int) -> list[tuple[int, int, str]]:
    """:func:`_spans` over a text held whole: the same chunks, at about twice the speed.

    The same decisions as :func:`_choose_break`, :func:`_overlap_start` and the loop of
    :func:`_spans`, inlined over absolute offsets with no buffer to slide (a test
    compares the two on random texts): a function call and an attribute lookup per
    chunk are a measurable share of the time of a chunk.
    """
    out: list[tuple[int, int, str]] = []
    found = _NON_WS.search(text)
    if found is None:
        return out
    start = must_pass = found.start()
    n = len(text)
    if n - start <= size:  # one chunk: none of the set-up below would pay for itself
        chunk = text[start:].rstrip()
        out.append((start, start + len(chunk), chunk))
        return out
    append = out.append
    rfind = text.rfind
    find = text.find
    non_ws = _NON_WS.search
    word_start = _WORD_START.search
    half = size // 2
    # Separators the text does not hold at all are never searched for (one scan each,
    # instead of one per chunk).
    has_cr = "\r" in text
    # The sentence marks the text holds, with where each next occurs (see _MarkSearch).
    marks: list[_MarkSearch] = []
    for char, followers, seps in _MARK_FOLLOWERS:
        if char in text:
            if char == ".":
                seps = _DOT_SEPS[("\t" in text) + 2 * has_cr]
            marks.append(_MarkSearch(char, followers, seps))
    cjk = () if text.isascii() else tuple(sep for sep in _CJK_SENTENCE_ENDS if sep in text)
    while n - start > size:
        limit = start + size
        soft_lo = start + half
        if soft_lo <= must_pass:
            soft_lo = must_pass + 1
        # 1. a paragraph break in the second half of the window
        cut = rfind("\n\n", soft_lo, limit + 2)
        if has_cr:
            i = rfind("\n\r\n", cut + 1 if cut >= soft_lo else soft_lo, limit + 3)
            if i > cut:
                cut = i
        if cut < 0:
            # 2. a sentence end in the second half: the latest one over all marks. The
            # last mark in the window is one when a right character follows it; if not,
            # only its separators before it can be (one short search each).
            lo = soft_lo - 1
            for mark in marks:
                if mark.next >= limit:
                    continue
                i = rfind(mark.char, lo, limit)
                if i < 0:
                    i = find(mark.char, limit)
                    mark.next = i if i >= 0 else n
                elif i > cut:
                    if text[i + 1] in mark.followers:
                        cut = i
                    else:
                        for sep in mark.seps:
                            j = rfind(sep, cut if cut > lo else lo, i + 1)
                            if j > cut:
                                cut = j
            for sep in cjk:
                i = rfind(sep, cut if cut > lo else lo, limit)
                if i > cut:
                    cut = i
            if cut >= 0:
                cut += 1
            else:
                # 3. a line break in the second half, 4. whitespace anywhere, 5. hard cut
                cut = rfind("\n", soft_lo, limit + 1)
                if cut < 0:
                    cut = _last_space(text, must_pass + 1, limit)
        chunk = text[start:cut].rstrip()
        end = start + len(chunk)
        append((start, end, chunk))

        lo = end - overlap
        if lo <= start:
            lo = start + 1
        candidate = -1
        if lo < end:
            # The first word start in text[lo:end] is the first whitespace followed by
            # non-whitespace from lo - 1 on (lo itself after a whitespace); else lo.
            word = word_start(text, lo - 1, end)
            candidate = lo if word is None else word.start() + 1
        found = non_ws(text, end)
        if found is None:
            return out
        must_pass = found.start()
        start = candidate if candidate >= 0 and must_pass < candidate + size else must_pass
    chunk = text[start:].rstrip()
    append((start, start + len(chunk), chunk))
    return out


def _last_space(text: str, lo: int, limit: int) -> int:
    """Break rules 4 and 5 of :func:`_choose_break`: the last whitespace in
    ``text[lo:limit + 1]`` (ASCII first, then any other), else ``limit``."""
    b = -1
    for sep in _ASCII_WS:
        i = text.rfind(sep, lo, limit + 1)
        if i >= 0:
            b = lo = i
    if b >= 0:
        return b
    for match in _WS.finditer(text, lo, limit + 1):
        b = match.start()
    return b if b >= 0 else limit
