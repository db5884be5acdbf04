"""Fusion, query terms and path globs: the ranking pieces every backend shares, checked
on small rankings worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.errors import ConfigError
from funcpipe_rag.index import Query
from funcpipe_rag.index.ranking import (
    DOCUMENT_WEIGHT,
    Candidate,
    TextQuery,
    fuse,
    lexical,
    path_matcher,
    path_tail_matches,
    query_pairs,
    query_terms,
    single,
)

VECTOR = [Candidate("A", 0.8), Candidate("B", 0.4)]
LEXICAL = [Candidate("B", 10.0), Candidate("C", 5.0)]


def test_combsum_by_hand() -> None:
    # best cosine 0.8, best BM25 10; a ranking that did not nominate a content adds 0.
    fused = fuse(VECTOR, LEXICAL)
    got = {f.key: f.score for f in fused}
    assert [f.key for f in fused] == ["B", "A", "C"]
    assert got["B"] == pytest.approx(0.5 * 0.4 / 0.8 + 0.5 * 10 / 10)  # 0.75
    assert got["A"] == pytest.approx(0.5 * 0.8 / 0.8)  # 0.5
    assert got["C"] == pytest.approx(0.5 * 5 / 10)  # 0.25
    b = {c.mode: c for c in fused[0].contributions}
    assert (b["vector"].rank, b["vector"].score, b["vector"].share) == (2, 0.4, 0.25)
    assert (b["lexical"].rank, b["lexical"].score, b["lexical"].share) == (1, 10.0, 0.5)
    c = {x.mode: x for x in fused[2].contributions}
    assert (c["vector"].rank, c["vector"].score, c["vector"].share) == (None, None, 0.0)


def test_rrf_by_hand() -> None:
    fused = fuse(VECTOR, LEXICAL, method="rrf")
    got = {f.key: f.score for f in fused}
    top = 2 / 61  # first in both, with k = 60
    assert [f.key for f in fused] == ["B", "A", "C"]
    assert got["B"] == pytest.approx((1 / 62 + 1 / 61) / top)
    assert got["A"] == pytest.approx((1 / 61) / top)
    assert got["C"] == pytest.approx((1 / 62) / top)


def test_first_in_both_scores_one_and_negative_cosines_add_nothing() -> None:
    fused = fuse([Candidate("A", 0.3)], [Candidate("A", 2.0)])
    assert fused[0].score == pytest.approx(1.0)
    fused = fuse([Candidate("X", -0.4)], [Candidate("Y", 1.0)])
    assert [(f.key, f.score) for f in fused] == [("Y", 0.5), ("X", 0.0)]


def test_ties_go_to_the_better_rank_then_the_key() -> None:
    # Same fused score (each first in one ranking); the keys decide, deterministically.
    fused = fuse([Candidate("Z", 1.0)], [Candidate("Y", 1.0)])
    assert [f.key for f in fused] == ["Y", "Z"]
    assert fused[0].score == fused[1].score == pytest.approx(0.5)


def test_a_content_listed_twice_keeps_its_first_place() -> None:
    assert [(f.key, f.score) for f in single([*LEXICAL, Candidate("B", 1.0)], "lexical")] == [
        ("B", 10.0),
        ("C", 5.0),
    ]
    fused = fuse([Candidate("A", 0.5), Candidate("A", 0.1)], [])
    assert len(fused) == 1 and fused[0].contributions[0].rank == 1


@given(
    st.lists(st.tuples(st.sampled_from("ABCDEFG"), st.floats(0.01, 1)), max_size=7),
    st.lists(st.tuples(st.sampled_from("ABCDEFG"), st.floats(0.01, 30)), max_size=7),
    st.sampled_from(["combsum", "rrf"]),
)
def test_fused_scores_are_ordered_in_0_1_and_cover_both_rankings(
    vec: list[tuple[str, float]], lex: list[tuple[str, float]], method: str
) -> None:
    vector = [Candidate(k, s) for k, s in sorted(vec, key=lambda x: -x[1])]
    lexical = [Candidate(k, s) for k, s in sorted(lex, key=lambda x: -x[1])]
    fused = fuse(vector, lexical, method=method)
    assert {f.key for f in fused} == {k for k, _ in vec} | {k for k, _ in lex}
    scores = [f.score for f in fused]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 + 1e-9 for s in scores)
    for f in fused:
        assert math.isclose(f.score, sum(c.share for c in f.contributions), abs_tol=1e-12)


def test_query_terms() -> None:
    assert query_terms("How does the circuit-breaker stop a run?") == (
        "circuit",
        "breaker",
        "stop",
        "run",
    )
    assert query_terms("max_rate MAX_RATE") == ("max", "rate")
    assert query_terms("the who") == ("the", "who")  # only stopwords: keep them
    assert query_terms("…!?") == ()
    assert len(query_terms(" ".join(f"w{i}" for i in range(100)))) == 32


def test_query_pairs_are_adjacent_words_that_are_both_terms() -> None:
    text = "the signal tests keep failing on the mac build machines"
    assert query_pairs(text) == (
        ("signal", "tests"),
        ("tests", "keep"),
        ("keep", "failing"),
        ("mac", "build"),
        ("build", "machines"),
    )  # "failing on the mac": a stopword between, so not side by side
    assert query_pairs("tomato soup, tomato soup") == (("tomato", "soup"), ("soup", "tomato"))
    assert query_pairs("soup") == query_pairs("the soup") == ()
    assert TextQuery.of("How do I stop a run?") == TextQuery(("stop", "run"), ())


def test_lexical_adds_the_document_evidence_by_hand() -> None:
    assert DOCUMENT_WEIGHT == 0.25
    rows = [Candidate("A", 8.0, "d1"), Candidate("B", 6.0, "d2"), Candidate("C", 4.0, "d3")]
    # Best chunk BM25 8, best document 2: a row gains 0.25 * 8 * doc / 2 = doc.
    ranked = lexical(rows, {"d2": 2.0, "d3": 1.0, "d9": 5.0 / 2})  # d9: no row, no effect
    assert [(c.key, c.score, c.doc) for c in ranked] == [
        ("A", 8.0, "d1"),
        ("B", pytest.approx(6.0 + 0.25 * 8 * 2.0 / 2.5), "d2"),  # 7.6
        ("C", pytest.approx(4.0 + 0.25 * 8 * 1.0 / 2.5), "d3"),  # 4.8
    ]
    ranked = lexical(rows, {"d3": 3.0})  # the best document: C gains 2.0 and passes no one
    assert [(c.key, c.score) for c in ranked] == [("A", 8.0), ("B", 6.0), ("C", 6.0)]
    ranked = lexical(rows, {"d3": 30.0, "d1": 0.0})  # a row tied with another keeps its place
    assert [c.key for c in ranked] == ["A", "B", "C"]
    ranked = lexical([Candidate("A", 1.0, "d1"), Candidate("B", 0.9, "d2")], {"d2": 1.0})
    assert [(c.key, c.score) for c in ranked] == [("B", pytest.approx(1.15)), ("A", 1.0)]
    assert lexical(rows, {}) == rows
    assert lexical([], {"d1": 1.0}) == []


def test_path_globs_match_the_path_a_tail_of_it_or_the_absolute_path() -> None:
    path, abs_path = (
        "sample_corpus/kitchen/recipes/dal.md",
        "/home/u/sample_corpus/kitchen/recipes/dal.md",
    )
    assert path_matcher(["recipes/*.md"])(path, abs_path)
    assert path_matcher(["*.md"])(path, abs_path)
    assert path_matcher(["kitchen/*"])(path, abs_path)  # '*' crosses '/'
    assert path_matcher(["/home/u/*"])(path, abs_path)
    assert path_matcher(["ops/*", "*/dal.md"])(path, abs_path)  # any one may match
    assert not path_matcher(["kitchen"])(path, abs_path)
    assert not path_matcher(["*.txt"])(path, abs_path)
    assert not path_matcher(["Recipes/*"])(path, abs_path)  # case counts
    assert path_matcher([])(path, abs_path)
    assert path_tail_matches("recipes/dal.md", path)
    assert path_tail_matches("/kitchen/recipes/dal.md", path)
    assert not path_tail_matches("es/dal.md", path)  # a tail starts at a folder


def test_a_query_is_checked_when_built() -> None:
    v = np.ones(4, dtype=np.float32) / 2
    for kwargs, message in (
        ({"text": "x", "vector": v, "mode": "fuzzy"}, "mode must be one of"),
        ({"text": "x", "vector": v, "k": 0}, "k must be >= 1"),
        ({"text": "  ", "vector": v}, "query is empty"),
        ({"text": "x"}, "needs the query's vector"),
        ({"text": "x", "vector": v, "min_score": float("nan")}, "finite"),
        ({"text": "x", "vector": v, "fusion": "max"}, "fusion must be"),
    ):
        with pytest.raises(ConfigError, match=message):
            Query(**kwargs)  # type: ignore[arg-type]
    assert Query(text="x", mode="lexical").vector is None
