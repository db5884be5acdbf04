"""The part of a hit worth showing: the window of its text that holds the most query words.

Pure text work, no I/O: the CLI draws the passage and styles the marked words
(:func:`funcpipe_rag.cli.render.print_hits`); ``--json`` keeps the whole chunk text.
Words match the query's words (stopwords left out, as for BM25) after a light suffix
strip, so "retries" marks "retry" and "splitter" marks "split"; this only chooses what
to show and never changes a ranking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .index.ranking import query_terms

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
_SUFFIXES = ("ies", "ing", "es", "ed", "ly", "s")


@dataclass(frozen=True, slots=True)
class Passage:
    """A window of a chunk's text (whitespace runs shown as one space).

    ``marks`` are (start, end) spans in ``text`` of words that match the query.
    ``cut_before`` / ``cut_after`` say the chunk goes on beyond the window.
    """

    text: str
    marks: tuple[tuple[int, int], ...]
    cut_before: bool
    cut_after: bool


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            base = word[: -len(suffix)]
            return base + "y" if suffix == "ies" else base
    return word


def _matches(word: str, stems: set[str]) -> str | None:
    """The query stem ``word`` stands for, if any (equal, or one a 4+ letter prefix)."""
    w = _stem(word)
    if w in stems:
        return w
    for s in stems:
        short, long_ = (w, s) if len(w) <= len(s) else (s, w)
        if len(short) >= 4 and long_.startswith(short):
            return s
    return None


def best_passage(text: str, query: str, width: int = 320) -> Passage:
    """The ``width``-character window of ``text`` with the most distinct query words
    (then the most matches, then the earliest), cut at word boundaries."""
    flat = _SPACE.sub(" ", text).strip()
    stems = {_stem(t) for t in query_terms(query)}
    found = [
        (m.start(), m.end(), stem)
        for m in _WORD.finditer(flat)
        if (stem := _matches(m.group(), stems)) is not None
    ]
    start = 0
    if found and len(flat) > width:
        best: tuple[int, int, int] | None = None
        for first, _, _ in found:
            lead = max(0, first - width // 6)  # a little context before the first word
            inside = [f for f in found if lead <= f[0] and f[1] <= lead + width]
            key = (len({f[2] for f in inside}), len(inside), -lead)
            if best is None or key > best:
                best = key
        assert best is not None
        start = -best[2]
    end = min(len(flat), start + width)
    if start > 0:  # begin at a word, not inside one
        space = flat.find(" ", start, end)
        start = space + 1 if 0 <= space < start + 20 else start
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    marks = tuple((s - start, e - start) for s, e, _ in found if s >= start and e <= end)
    return Passage(flat[start:end], marks, start > 0, end < len(flat))


__all__ = ["Passage", "best_passage"]
