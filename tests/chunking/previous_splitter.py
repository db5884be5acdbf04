"""``split_text`` of commit 8e2595a, kept verbatim as the reference its faster successors
must match chunk for chunk (text and offsets) on every input.

Only the whole-text path is copied (with the constants it reads); do not edit it to
follow the current splitter: a change of output is a change of the chunker's version.
"""

from __future__ import annotations

import re

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


def split_text(text: str, size: int, overlap: int) -> list[tuple[int, int, str]]:
    """``split_text`` as it was at 8e2595a (its ``split_text``)."""
    out: list[tuple[int, int, str]] = []
    append = out.append
    rfind = text.rfind
    non_ws = _NON_WS.search
    word_start = _WORD_START.search
    n = len(text)
    half = size // 2
    found = non_ws(text)
    if found is None:
        return out
    start = must_pass = found.start()
    # Separators the text does not hold at all are never searched for (one scan each,
    # instead of one per chunk).
    has_cr = "\r" in text
    marks = tuple(
        (mark, tuple(sep for sep in seps if sep[1] in text))
        for mark, seps in _SENTENCE_MARKS
        if mark in text
    )
    cjk = tuple(sep for sep in _CJK_SENTENCE_ENDS if sep in text)
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
            # 2. a sentence end in the second half
            # The last of them is the latest hit over all of them, so a sentence mark
            # absent from the window (one fast single-character search) rules out
            # every separator it starts.
            lo = soft_lo - 1
            for mark, seps in marks:
                if rfind(mark, lo, limit) >= 0:
                    for sep in seps:
                        i = rfind(sep, lo, limit + 1)
                        if i >= 0:
                            cut = lo = i
            for sep in cjk:
                i = rfind(sep, lo, limit)
                if i >= 0:
                    cut = lo = i
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
