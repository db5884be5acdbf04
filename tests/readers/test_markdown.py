"""The Markdown reader on real files: text, offsets, sections, title — and its heading
scanner checked against markdown-it-py (a CommonMark parser, installed with Rich)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from funcpipe_rag.chunking.chunks import iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import iter_documents
from funcpipe_rag.readers.files import MEMORY_READ_LIMIT
from funcpipe_rag.readers.mdscan import MarkdownScanner, heading_text
from funcpipe_rag.walk import iter_paths
from tests.readers.parsing import document_pieces

GUIDE = """\
---
title: "The Guide: everything"
tags: [docs, demo]
---
Intro text before any heading.

# Guide

Some words about the guide.

## Install

### From source

Run `make` in the checkout.

```sh
# not a heading: a comment in a fence
make install
```

<!--
# not a heading either: inside a comment
-->

    # indented code, not a heading

> # quoted, not a top-level heading

- # in a list item, not top-level

Setext *Section*
----------------

Body of the setext section.

## Install > again ##

Closing hashes are dropped.
"""


def extract(path: Path) -> tuple[object, list[tuple[str, str, bool]]]:
    return document_pieces(path)


def chunks(path: Path, size: int = 800) -> list[tuple[int, int, str, str]]:
    ledger = ResourceLedger()
    stage = iter_chunks(
        iter_documents(iter_paths([path]), ledger),
        ChunkerSettings(chunk_size=size, overlap=size // 8),
        space="s",
    )
    try:
        out = [(c.value.start, c.value.end, c.value.text, c.value.section) for c in stage]
    finally:
        stage.close()
    assert ledger.snapshot().open_total == 0
    return out


def test_a_markdown_file_gives_sections_title_and_text_without_front_matter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE)
    doc, pieces = extract(path)
    assert doc.reader == "markdown/1"
    assert doc.title == "The Guide: everything"
    assert doc.encoding == "utf-8"
    text = "".join(t for t, _, _ in pieces)
    assert text == GUIDE[GUIDE.index("Intro") :]  # the file, less its front matter
    assert [(s, b) for _, s, b in pieces] == [
        ("", False),
        ("Guide", True),
        ("Guide > Install > From source", True),  # a heading with no body joins the next
        ("Guide > Setext Section", True),
        ("Guide > Install > again", True),
    ]
    assert pieces[2][0].startswith("## Install\n\n### From source\n")
    assert "# not a heading" in pieces[2][0] and "# quoted" in pieces[2][0]


def test_chunks_keep_offsets_into_the_extracted_text_and_never_straddle_sections(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE)
    _, pieces = extract(path)
    text = "".join(t for t, _, _ in pieces)
    starts = []
    offset = 0
    for piece_text, _, boundary in pieces:
        if boundary:
            starts.append(offset)
        offset += len(piece_text)
    got = chunks(path, size=120)
    assert got
    for start, end, chunk, _ in got:
        assert text[start:end] == chunk
        assert not any(start < b < end for b in starts)
    assert {s for *_, s in got} >= {"", "Guide", "Guide > Setext Section"}


def test_the_first_h1_is_the_title_without_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "notes.markdown"
    path.write_text("Some preface.\n\n## Not this\n\n# The Real Title\n\ntext\n")
    doc, _ = extract(path)
    assert doc.title == "The Real Title"


def test_a_large_markdown_file_is_streamed_with_its_sections(tmp_path: Path) -> None:
    body = "A paragraph of words that go on for a while, again and again.\n\n" * 2000
    parts = [f"# Part {i}\n\n{body}" for i in range(70)]
    path = tmp_path / "big.md"
    path.write_text("".join(parts))
    assert path.stat().st_size > MEMORY_READ_LIMIT
    doc, pieces = extract(path)
    assert doc.title == "Part 0"
    assert "".join(t for t, _, _ in pieces) == path.read_text()
    boundaries = [s for _, s, b in pieces if b]
    assert boundaries == [f"Part {i}" for i in range(70)]
    assert max(len(t) for t, _, _ in pieces) <= 70_000  # long sections come in parts


# -- the scanner against a CommonMark parser --------------------------------------------

_MD = MarkdownIt("commonmark")


def oracle(text: str) -> list[tuple[int, int, str]]:
    """Top-level headings as markdown-it-py sees them: (line, level, text)."""
    tokens = _MD.parse(text)
    return [
        (t.map[0], int(t.tag[1]), heading_text(tokens[i + 1].content))
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.level == 0 and t.map is not None
    ]


def scanned(text: str) -> list[tuple[int, int, str]]:
    scanner = MarkdownScanner()
    found = []
    for line in text.split("\n"):
        heading = scanner.feed(line)
        if heading is not None:
            found.append((heading.line, heading.level, heading.text))
    return found


LINES = st.sampled_from([
    "# Title", "## Sub ##", "   ### three", "    # code", "####### seven", "#nospace", "#",
    "```", "```py", "~~~", "````", "``` a`b", "Text line", "more text", "===", "---", "- - -",
    "***", "", "> # quoted", "> quote", "- # item", "- item", "1. one", "2. two",
    "  continued", "<!-- c", "-->", "<!-- one line -->", "<div>", "</div>", "<pre>", "</pre>",
    "<span>", "<a href='x'>", "\t# tab", "*", "-", "1.", "+ plus", "Setext *em*",
    "[link](u) title", "  - nested", "<script>", "</script>", "1) paren", "===   ", "    ===",
    "# Title #hash", "## trailing ##   ", "<DIV>", "---- long", "___", "-   spaced",
])  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=12))
def test_the_scanner_finds_the_headings_commonmark_finds(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert scanned(text) == oracle(text)


def test_the_scanner_agrees_on_the_real_markdown_of_this_repository() -> None:
    repo = Path(__file__).resolve().parents[2]
    files = [repo / "README.md", *sorted((repo / "sample_corpus").rglob("*.md"))]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert scanned(text) == oracle(text), path
