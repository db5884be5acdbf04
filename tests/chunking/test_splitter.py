"""Properties of the pure chunker: piece invariance, offsets, coverage, overlap, laziness."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcpipe_rag.chunking.splitter import ChunkerSettings, iter_spans, split_text
from funcpipe_rag.errors import ConfigError
from tests.chunking.previous_splitter import split_text as previous_split_text

Span = tuple[int, int, str]

TOKENS = [
    " ",
    "  ",
    "\n",
    "\n\n",
    "\n\r\n",
    "\t",
    ". ",
    "! ",
    "? ",
    ".\n",
    "。",
    "\u3000",
    "a",
    "b",
    "word",
    "Lorem",
    "é",
    "漢",
    "字",
    "x" * 13,
]

texts = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)
no_space_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    max_size=150,
).filter(lambda t: not any(c.isspace() for c in t))


@st.composite
def chunker_settings(draw: st.DrawFn) -> ChunkerSettings:
    chunk_size = draw(st.integers(min_value=1, max_value=60))
    overlap = draw(st.integers(min_value=0, max_value=chunk_size - 1))
    return ChunkerSettings(chunk_size=chunk_size, overlap=overlap)


@st.composite
def cut_into_pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=20)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def check_spans(full: str, spans: list[Span], cfg: ChunkerSettings) -> None:
    """Offsets, size, monotonicity, overlap bound and coverage: laws (b), (c), (d)."""
    for start, end, chunk in spans:
        assert chunk == full[start:end]
        assert 0 < end - start <= cfg.chunk_size
        assert chunk.strip() == chunk  # trimmed, hence never whitespace-only
    for (s0, e0, _), (s1, e1, _) in itertools.pairwise(spans):
        assert s0 < s1
        assert e0 < e1
        assert s1 >= e0 - cfg.overlap
        assert s1 <= e0 or full[e0:s1].isspace()
    covered = bytearray(len(full))
    for start, end, _ in spans:
        covered[start:end] = b"\x01" * (end - start)
    missed = [i for i, c in enumerate(full) if not covered[i] and not c.isspace()]
    assert missed == []


def reference_spans(full: str, cfg: ChunkerSettings) -> list[Span]:
    """The documented algorithm, written naively over the whole text, position by position."""
    size, n = cfg.chunk_size, len(full)

    def first_non_ws(pos: int) -> int:
        while pos < n and full[pos].isspace():
            pos += 1
        return pos if pos < n else -1

    def at(b: int) -> str:
        return full[b] if b < n else ""

    spans: list[Span] = []
    must_pass = start = first_non_ws(0)
    while must_pass >= 0:
        if n - start <= size:
            chunk = full[start:].rstrip()
            spans.append((start, start + len(chunk), chunk))
            break
        limit, soft = start + size, max(start + size // 2, must_pass + 1)
        paragraph = [b for b in range(soft, limit + 1) if full[b : b + 2] == "\n\n"]
        paragraph += [b for b in range(soft, limit + 1) if full[b : b + 3] == "\n\r\n"]
        sentence = [
            b
            for b in range(soft, limit + 1)
            if (full[b - 1] in ".!?" and at(b) in (" ", "\n"))
            or (full[b - 1] == "." and at(b) in ("\t", "\r"))
            or full[b - 1] in "\u3002\uff01\uff1f"
        ]
        line = [b for b in range(soft, limit + 1) if at(b) == "\n"]
        ascii_ws = [b for b in range(must_pass + 1, limit + 1) if at(b) in tuple(" \n\t\r\f\v")]
        any_ws = [b for b in range(must_pass + 1, limit + 1) if at(b).isspace()]
        cut = next((max(c) for c in (paragraph, sentence, line, ascii_ws, any_ws) if c), limit)
        chunk = full[start:cut].rstrip()
        end = start + len(chunk)
        spans.append((start, end, chunk))
        candidate = -1
        lo = max(end - cfg.overlap, start + 1)
        if lo < end:
            candidate = lo
            if full[lo].isspace() or not full[lo - 1].isspace():
                spaces = [i for i in range(lo, end) if full[i].isspace()]
                if spaces:
                    candidate = first_non_ws(spaces[0])
        must_pass = first_non_ws(end)
        start = must_pass if candidate < 0 or must_pass >= candidate + size else candidate
    return spans


@given(full=texts, cfg=chunker_settings())
def test_matches_a_naive_reference_of_the_documented_algorithm(
    full: str, cfg: ChunkerSettings
) -> None:
    assert split_text(full, cfg) == reference_spans(full, cfg)


# (a) the crucial law: output is a function of the text, not of how it was cut.
@given(data=st.data(), full=texts, cfg=chunker_settings())
def test_output_does_not_depend_on_how_the_text_is_cut(
    data: st.DataObject, full: str, cfg: ChunkerSettings
) -> None:
    pieces = data.draw(cut_into_pieces(full))
    assert "".join(pieces) == full
    assert list(iter_spans(pieces, cfg)) == split_text(full, cfg)


def test_single_character_and_empty_pieces_give_the_same_output() -> None:
    full = ("Some sentence here. Another one!\n\nA new paragraph\nwith lines. " * 40).strip()
    cfg = ChunkerSettings(chunk_size=70, overlap=15)
    one_by_one = itertools.chain.from_iterable(("", c) for c in full)
    assert list(iter_spans(one_by_one, cfg)) == split_text(full, cfg)


# (b), (c), (d)
@given(full=texts, cfg=chunker_settings())
def test_spans_are_exact_bounded_ordered_overlapping_and_cover_the_text(
    full: str, cfg: ChunkerSettings
) -> None:
    check_spans(full, split_text(full, cfg), cfg)


@given(full=no_space_texts, cfg=chunker_settings())
def test_laws_hold_without_any_whitespace(full: str, cfg: ChunkerSettings) -> None:
    check_spans(full, split_text(full, cfg), cfg)


@given(full=texts)
def test_default_settings_keep_short_texts_whole(full: str) -> None:
    spans = split_text(full, ChunkerSettings())
    if full.strip():
        start = len(full) - len(full.lstrip())
        assert spans == [(start, start + len(full.strip()), full.strip())]
    else:
        assert spans == []


@given(full=texts, cfg=chunker_settings())
def test_reads_ahead_at_most_about_one_window(full: str, cfg: ChunkerSettings) -> None:
    read = 0

    def pieces() -> Iterator[str]:
        nonlocal read
        for c in full:
            read += 1
            yield c

    for _start, end, _chunk in iter_spans(pieces(), cfg):
        # A whitespace run may be read through before the chunk is decided.
        assert read - end <= 2 * cfg.chunk_size + 3 + len(full[end:]) - len(full[end:].lstrip())


# (e) break preferences, on known examples.
def test_prefers_a_paragraph_break_over_later_sentence_ends() -> None:
    first = "Alpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu nu."
    second = "Xi omicron. Pi rho. Sigma tau. Upsilon phi chi psi omega and so on."
    full = first + "\n\n" + second
    cfg = ChunkerSettings(chunk_size=100, overlap=0)
    spans = split_text(full, cfg)
    assert spans[0] == (0, len(first), first)
    assert spans[1][2].startswith("Xi omicron.")


def test_ignores_a_paragraph_break_in_the_first_half_of_the_window() -> None:
    full = "Short.\n\nThen a long sentence runs on and on. Another sentence ends here. Tail words"
    spans = split_text(full, ChunkerSettings(chunk_size=80, overlap=0))
    assert (
        spans[0][2] == "Short.\n\nThen a long sentence runs on and on. Another sentence ends here."
    )


def test_prefers_a_sentence_end_over_a_line_break_over_a_space() -> None:
    cfg = ChunkerSettings(chunk_size=40, overlap=0)
    sentence = split_text("one two three four five six. seven\neight nine ten eleven", cfg)
    assert sentence[0][2] == "one two three four five six."
    line = split_text("one two three four five six seven\neight nine ten eleven", cfg)
    assert line[0][2] == "one two three four five six seven"
    space = split_text("one two three four five six seven eight nine ten eleven", cfg)
    assert space[0][2] == "one two three four five six seven eight"


def test_cuts_hard_when_there_is_no_whitespace() -> None:
    spans = split_text("x" * 25, ChunkerSettings(chunk_size=10, overlap=0))
    assert [(s, e) for s, e, _ in spans] == [(0, 10), (10, 20), (20, 25)]


def test_overlap_starts_at_a_word_boundary() -> None:
    cfg = ChunkerSettings(chunk_size=30, overlap=8)
    spans = split_text("aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj", cfg)
    assert spans[0] == (0, 29, "aaaa bbbb cccc dddd eeee ffff")
    assert spans[1][0] == 25  # "ffff", 4 back: the first word start at most 8 back


# (f)
@pytest.mark.parametrize(
    ("chunk_size", "overlap"),
    [(0, 0), (-5, 0), (10, -1), (10, 10), (10, 11), (1, 1), (True, 0), (10, 2.5)],
)
def test_bad_settings_raise_config_error_at_construction(chunk_size: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        ChunkerSettings(chunk_size=chunk_size, overlap=overlap)


def test_config_error_is_a_value_error_and_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkerSettings(chunk_size=5, overlap=5)
    cfg = ChunkerSettings()
    with pytest.raises(AttributeError):
        cfg.chunk_size = 3  # type: ignore[misc]


def test_fingerprint_names_algorithm_sizes_and_version() -> None:
    assert ChunkerSettings().fingerprint() == "chars:800:100:v1"
    assert ChunkerSettings(chunk_size=300, overlap=0).fingerprint() == "chars:300:0:v1"


# (g)
def test_is_lazy_over_an_infinite_stream_of_pieces() -> None:
    consumed = 0

    def endless() -> Iterator[str]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield f"Sentence number {i} is here. "

    cfg = ChunkerSettings(chunk_size=200, overlap=20)
    first_three = list(itertools.islice(iter_spans(endless(), cfg), 3))
    assert len(first_three) == 3
    assert all(len(chunk) <= 200 for _, _, chunk in first_three)
    assert consumed < 40  # about three windows of ~30-character pieces


# (h)
def test_progress_with_maximal_overlap_and_no_whitespace() -> None:
    cfg = ChunkerSettings(chunk_size=10, overlap=9)
    spans = split_text("x" * 200, cfg)
    assert [s for s, _, _ in spans] == list(range(191))
    assert all(e - s == 10 for s, e, _ in spans)


@settings(max_examples=50)
@given(full=no_space_texts, chunk_size=st.integers(min_value=1, max_value=30))
def test_progress_with_maximal_overlap_on_any_whitespace_free_text(
    full: str, chunk_size: int
) -> None:
    cfg = ChunkerSettings(chunk_size=chunk_size, overlap=chunk_size - 1)
    spans = split_text(full, cfg)
    assert len(spans) <= max(1, len(full))
    check_spans(full, spans, cfg)


def test_whitespace_only_and_empty_inputs_yield_nothing() -> None:
    cfg = ChunkerSettings(chunk_size=5, overlap=1)
    assert split_text("", cfg) == []
    assert split_text(" \n\n\t\u3000 " * 50, cfg) == []
    assert list(iter_spans(iter(["", "", "   "]), cfg)) == []


def test_no_overlap_across_a_whitespace_run_longer_than_a_window() -> None:
    full = "alp bet" + " " * 5000 + "gam del"
    cfg = ChunkerSettings(chunk_size=8, overlap=4)
    spans = split_text(full, cfg)
    assert spans == [(0, 7, "alp bet"), (5007, 5014, "gam del")]
    assert list(iter_spans(iter(full), cfg)) == spans


def test_overlap_starts_inside_a_word_longer_than_the_overlap() -> None:
    cfg = ChunkerSettings(chunk_size=8, overlap=3)
    spans = split_text("alpha beta", cfg)
    assert spans == [(0, 5, "alpha"), (2, 10, "pha beta")]
    cjk = split_text("漢字" * 10, ChunkerSettings(chunk_size=8, overlap=2))
    assert [s for s, _, _ in cjk] == [0, 6, 12]


def test_settings_must_be_chunker_settings() -> None:
    with pytest.raises(ConfigError):
        iter_spans(["text"], {"chunk_size": 5})  # type: ignore[arg-type]


# The whole-text fast path (split_text) against the streaming algorithm (iter_spans), on
# texts of words between separators — every separator and near-misses of them: marks
# not followed by a space, tabs and carriage returns only in some texts (the fast path
# never searches for a separator the text lacks), non-ASCII whitespace and CJK stops.
WORDS = ["a", "bb", "word", "Lorem", "é", "漢字", "x" * 13, "os.path", "v1.2"]
SEPARATORS = [
    " ", "  ", "\n", "\n\n", "\n\r\n", "\r\n", "\r", "\t", "\f", "\v", "\u2003", "\u3000",
    ". ", "! ", "? ", ".\n", "!\n", "?\n", ".\t", ".\r", ".", "!", "?", "。", "\uff01", "\uff1f",
]  # fmt: skip
fast_texts = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=80
).map(lambda pairs: "".join(w + s for w, s in pairs))


@settings(max_examples=400)
@given(full=fast_texts, cfg=chunker_settings())
def test_the_whole_text_fast_path_cuts_as_the_streaming_algorithm(
    full: str, cfg: ChunkerSettings
) -> None:
    assert split_text(full, cfg) == list(iter_spans(iter([full]), cfg))


# split_text against its own previous version (tests/chunking/previous_splitter.py, the
# code of 8e2595a kept verbatim): every speed-up must leave every chunk as it was. Texts
# mix every separator with near-misses (marks not followed by whitespace, version
# numbers, ellipses), CRLF, non-ASCII whitespace, CJK stops, words longer than a chunk,
# and sentence marks that occur in a few windows only (the splitter remembers where a
# rare mark occurs next; a stale memory would miss one).
PREVIOUS_TOKENS = [
    *WORDS, *SEPARATORS,
    "\r\n", "\r\n\r\n", "\n\r\n", "...", "v1.2.3", "e.g.", "!?", "?!", "Done!", "Why?",
    "\x85", "\xa0", "\u2028", "\x1c", "\t\t", "ß", "Ωmega", "😀", "漢字。", "x" * 90,
]  # fmt: skip


@st.composite
def previous_texts(draw: st.DrawFn) -> str:
    """Text over a few tokens drawn first, so that each separator is in turn the only,
    the last or a rare one in the windows (a soup of all of them hides most paths)."""
    alphabet = draw(st.lists(st.sampled_from(PREVIOUS_TOKENS), min_size=1, max_size=6))
    return "".join(draw(st.lists(st.sampled_from(alphabet), max_size=150)))


@st.composite
def sized_like_real(draw: st.DrawFn) -> ChunkerSettings:
    """Small sizes for short texts, and sizes whose windows hold many separators."""
    chunk_size = draw(st.one_of(st.integers(1, 60), st.integers(61, 400)))
    overlap = draw(st.integers(min_value=0, max_value=chunk_size - 1))
    return ChunkerSettings(chunk_size=chunk_size, overlap=overlap)


@settings(max_examples=500)
@given(full=previous_texts(), cfg=sized_like_real())
def test_split_text_cuts_exactly_as_its_previous_version(full: str, cfg: ChunkerSettings) -> None:
    assert split_text(full, cfg) == previous_split_text(full, cfg.chunk_size, cfg.overlap)


@settings(max_examples=60)
@given(
    words=st.lists(st.sampled_from(PREVIOUS_TOKENS), min_size=200, max_size=900),
    rare=st.lists(st.sampled_from(["! ", "? ", ". ", "。", "!\n"]), max_size=4),
    where=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_split_text_matches_its_previous_version_on_long_texts_with_rare_marks(
    words: list[str], rare: list[str], where: list[float]
) -> None:
    # Long texts of words without sentence marks, with a few marks dropped in: most
    # windows hold none of them, a few hold one.
    plain = [w for w in words if not any(c in w for c in ".!?\u3002\uff01\uff1f")]
    for mark, at in zip(rare, where, strict=False):
        plain.insert(int(at * len(plain)), mark)
    full = " ".join(plain)
    for size, overlap in ((800, 100), (120, 30), (50, 0)):
        cfg = ChunkerSettings(chunk_size=size, overlap=overlap)
        assert split_text(full, cfg) == previous_split_text(full, size, overlap)


@pytest.mark.parametrize("mark", ["! ", "?\n", ". ", ".\t", ".\r", "。", "!", "v1.2"])
def test_split_text_matches_its_previous_version_with_a_mark_at_every_position(
    mark: str,
) -> None:
    # Every position of one mark among plain words, and among words holding dots that
    # are no sentence end (the last dot of a window then hides an earlier one).
    for words in (["alpha", "be", "gamma", "d"] * 15, ["os.path", "x", "v2.0", "yy"] * 15):
        for at in range(len(words) + 1):
            full = " ".join([*words[:at], mark, *words[at:]])
            for size, overlap in ((20, 0), (37, 9), (50, 20), (64, 5)):
                expected = previous_split_text(full, size, overlap)
                cfg = ChunkerSettings(chunk_size=size, overlap=overlap)
                assert split_text(full, cfg) == expected, (full, size, overlap)
