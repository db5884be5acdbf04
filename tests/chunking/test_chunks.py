"""The chunking stage over extracted documents: offsets, sections and hard boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from funcpipe_rag.chunking.chunks import ChunkWithoutEmbedding, iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings, split_text
from funcpipe_rag.readers.base import Document, Extraction, TextPiece
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import SourceFile

SOURCE = SourceFile("doc.md", "doc.md", "id", 0, 0, "/doc.md")
WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "é", "\n", "\n\n", " ", ". ", "x" * 30])
TEXTS = st.lists(WORDS, max_size=60).map("".join)
PIECES = st.lists(
    st.tuples(TEXTS, st.booleans(), st.sampled_from(["", "A", "A > B", "C"])), max_size=8
).map(lambda xs: [TextPiece(t, section=s, boundary=b) for t, b, s in xs])
CHUNKERS = st.builds(
    lambda size, frac: ChunkerSettings(chunk_size=size, overlap=int(size * frac)),
    st.integers(8, 120),
    st.sampled_from([0.0, 0.1, 0.5]),
)


def chunks_of(pieces: list[TextPiece], chunker: ChunkerSettings) -> list[ChunkWithoutEmbedding]:
    doc = Document(SOURCE, "hash", "test/1")
    stage = iter_chunks([Ok(Extraction(doc, iter(pieces)))], chunker, space="s")
    try:
        return [r.value for r in stage if isinstance(r, Ok)]
    finally:
        stage.close()


def sections_of(pieces: list[TextPiece]) -> list[tuple[int, str]]:
    """(offset, text) of each section: a boundary piece starts one unless the section so
    far is empty."""
    out: list[tuple[int, str]] = []
    offset = 0
    current: list[str] = []
    start = 0
    for p in pieces:
        if p.boundary and "".join(current):
            out.append((start, "".join(current)))
            current, start = [], offset
        current.append(p.text)
        offset += len(p.text)
    out.append((start, "".join(current)))
    return out


@settings(max_examples=300, deadline=None)
@given(PIECES, CHUNKERS)
def test_each_section_is_cut_on_its_own_with_offsets_into_the_whole_text(
    pieces: list[TextPiece], chunker: ChunkerSettings
) -> None:
    text = "".join(p.text for p in pieces)
    got = [(c.start, c.end, c.text) for c in chunks_of(pieces, chunker)]
    expected = [
        (base + s, base + e, t)
        for base, section in sections_of(pieces)
        for s, e, t in split_text(section, chunker)
    ]
    assert got == expected
    for start, end, chunk in got:
        assert text[start:end] == chunk


@settings(max_examples=300, deadline=None)
@given(PIECES, CHUNKERS)
def test_no_chunk_straddles_a_boundary(pieces: list[TextPiece], chunker: ChunkerSettings) -> None:
    boundaries = [base for base, _ in sections_of(pieces)][1:]
    for c in chunks_of(pieces, chunker):
        assert not any(c.start < b < c.end for b in boundaries), (c.start, c.end, boundaries)


@settings(max_examples=200, deadline=None)
@given(PIECES, CHUNKERS)
def test_without_boundaries_the_text_is_cut_exactly_as_one_string(
    pieces: list[TextPiece], chunker: ChunkerSettings
) -> None:
    plain = [TextPiece(p.text, section=p.section) for p in pieces]
    text = "".join(p.text for p in plain)
    got = [(c.start, c.end, c.text) for c in chunks_of(plain, chunker)]
    assert got == split_text(text, chunker)


@settings(max_examples=200, deadline=None)
@given(PIECES, CHUNKERS)
def test_a_chunk_names_the_section_of_the_piece_it_starts_in(
    pieces: list[TextPiece], chunker: ChunkerSettings
) -> None:
    spans: list[tuple[int, int, TextPiece]] = []
    offset = 0
    for p in pieces:
        spans.append((offset, offset + len(p.text), p))
        offset += len(p.text)
    for c in chunks_of(pieces, chunker):
        owner = [p for lo, hi, p in spans if lo <= c.start < hi][-1]
        assert c.section == owner.section


def test_a_heading_starts_a_new_chunk_even_when_both_sections_would_fit_in_one() -> None:
    pieces = [
        TextPiece("# Guide\n\nShort intro.\n\n", section="Guide", boundary=True),
        TextPiece("## Install\n\nRun the installer.\n", section="Guide > Install", boundary=True),
    ]
    chunks = chunks_of(pieces, ChunkerSettings(chunk_size=800, overlap=100))
    assert [(c.text, c.section) for c in chunks] == [
        ("# Guide\n\nShort intro.", "Guide"),
        ("## Install\n\nRun the installer.", "Guide > Install"),
    ]
