"""The passage shown for a hit: the window with the most query words, marked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.passages import best_passage

FILLER = "Nothing to see in this sentence about gardens and weather. " * 12


def marked(text: str, marks: tuple[tuple[int, int], ...]) -> list[str]:
    return [text[s:e] for s, e in marks]


def test_the_window_with_the_most_query_words_is_chosen_and_marked() -> None:
    text = FILLER + "The retry policy waits with jitter between retries. " + FILLER
    p = best_passage(text, "how long do retries wait", width=120)
    assert "retry policy waits" in p.text
    assert marked(p.text, p.marks) == ["retry", "waits", "retries"]
    assert p.cut_before and p.cut_after


def test_a_short_chunk_is_shown_whole_with_its_whitespace_folded() -> None:
    p = best_passage("A tomato\n\n  soup   recipe.", "tomato soup")
    assert p.text == "A tomato soup recipe."
    assert marked(p.text, p.marks) == ["tomato", "soup"]
    assert not p.cut_before and not p.cut_after


def test_no_match_shows_the_start() -> None:
    p = best_passage(FILLER, "zebra", width=80)
    assert FILLER.startswith(p.text) and p.marks == () and p.cut_after


@given(st.text(max_size=2000), st.text(max_size=60), st.integers(20, 400))
def test_a_passage_is_a_window_of_the_folded_text(text: str, query: str, width: int) -> None:
    p = best_passage(text, query, width=width)
    folded = " ".join(text.split())
    assert p.text in folded
    assert len(p.text) <= width
    assert all(0 <= s < e <= len(p.text) for s, e in p.marks)
