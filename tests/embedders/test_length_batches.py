"""Length batching: every position once, shortest first, within the limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.embedders.length_batches import by_length


@given(
    lengths=st.lists(st.integers(1, 600), max_size=200),
    max_rows=st.integers(1, 40),
    max_tokens=st.integers(1, 5000),
)
def test_every_position_once_sorted_and_within_limits(
    lengths: list[int], max_rows: int, max_tokens: int
) -> None:
    batches = by_length(lengths, max_rows=max_rows, max_tokens=max_tokens)
    flat = [p for batch in batches for p in batch]
    assert sorted(flat) == list(range(len(lengths)))  # each input position exactly once
    # Shortest first; equal lengths keep their input order (a stable sort).
    assert flat == sorted(range(len(lengths)), key=lambda p: lengths[p])
    for batch in batches:
        assert batch
        longest = max(lengths[p] for p in batch)
        assert len(batch) <= max_rows
        assert len(batch) * longest <= max_tokens or len(batch) == 1


@given(lengths=st.lists(st.integers(1, 50), min_size=1, max_size=100))
def test_batches_are_as_full_as_the_limits_allow(lengths: list[int]) -> None:
    batches = by_length(lengths, max_rows=8, max_tokens=200)
    for batch, following in itertools.pairwise(batches):
        nxt = following[0]
        assert len(batch) == 8 or (len(batch) + 1) * lengths[nxt] > 200


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        by_length([1, 2], max_rows=0, max_tokens=10)
