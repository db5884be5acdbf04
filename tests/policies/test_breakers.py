"""Breaker laws: exact boundary, min_samples, trigger then one BreakInfo, upstream closed
before the BreakInfo is seen, eager argument checks, and a reference model of the rule."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.policies.breakers import (
    BreakInfo,
    circuit_breaker_count_emit,
    circuit_breaker_pred_emit,
    circuit_breaker_rate_emit,
    circuit_breaker_rate_truncate,
    is_break,
    short_circuit_on_err_emit,
    short_circuit_on_err_truncate,
)
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.fakes import Probe, tracked


def stream(flags: list[bool]) -> list[Any]:
    return [Err(ErrInfo("E", f"item {i}")) if f else Ok(i) for i, f in enumerate(flags)]


def reference_rate(
    flags: list[bool], max_rate: float, min_samples: int, window: int | None = None
) -> int | None:
    """Index of the item that trips the rate rule, or None (the model, written plainly)."""
    for i in range(len(flags)):
        seen = flags[: i + 1] if window is None else flags[max(0, i + 1 - window) : i + 1]
        total, n_err = len(seen), sum(seen)
        if total >= min_samples and n_err / total > max_rate:
            return i
    return None


@given(
    flags=st.lists(st.booleans(), max_size=200),
    max_rate=st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 0.9, 1.0]),
    min_samples=st.integers(1, 30),
    use_window=st.booleans(),
    extra=st.integers(0, 20),
)
def test_rate_breaker_matches_the_reference_model(
    flags: list[bool], max_rate: float, min_samples: int, use_window: bool, extra: int
) -> None:
    window = min_samples + extra if use_window else None
    probe = Probe()
    out = list(
        circuit_breaker_rate_emit(
            tracked(stream(flags), probe), max_rate=max_rate, min_samples=min_samples, window=window
        )
    )
    trip = reference_rate(flags, max_rate, min_samples, window)
    items = stream(flags)
    if trip is None:
        assert out == items
    else:
        assert out[:-1] == items[: trip + 1]  # the prefix, trigger included
        assert is_break(out[-1])
        info = out[-1].error
        assert info.code == "BREAK/ERR_RATE"
        assert info.total == (trip + 1 if window is None else min(trip + 1, window))
        assert probe.pulled == trip + 1  # nothing read past the trigger
    assert probe.closed


def test_exact_boundary_rate_equal_does_not_trip_next_error_does() -> None:
    # 100 samples, 20 errors: rate == 0.2 exactly, must not trip.
    flags = [i % 5 == 0 for i in range(100)]
    assert sum(flags) == 20
    out = list(circuit_breaker_rate_emit(stream(flags), max_rate=0.2, min_samples=100))
    assert not any(is_break(r) for r in out)
    # One more error: 21/101 > 0.2 trips on exactly that item.
    out = list(circuit_breaker_rate_emit(stream([*flags, True]), max_rate=0.2, min_samples=100))
    assert len(out) == 102
    assert isinstance(out[100], Err) and out[100].error.msg == "item 100"
    assert out[101].error.n_err == 21 and out[101].error.total == 101


def test_min_samples_is_respected() -> None:
    out = list(circuit_breaker_rate_emit(stream([True] * 9), max_rate=0.0, min_samples=10))
    assert not any(is_break(r) for r in out)
    out = list(circuit_breaker_rate_emit(stream([True] * 10), max_rate=0.0, min_samples=10))
    assert is_break(out[-1]) and len(out) == 11


def test_upstream_finally_has_run_before_the_consumer_sees_the_breakinfo() -> None:
    probe = Probe()
    seen_closed_at_break = None
    for r in circuit_breaker_rate_emit(
        tracked(stream([True] * 5), probe), max_rate=0.5, min_samples=2
    ):
        if is_break(r):
            seen_closed_at_break = probe.closed
    assert seen_closed_at_break is True
    assert probe.pulled == 2


def test_exactly_one_breakinfo_then_end() -> None:
    out = list(circuit_breaker_rate_emit(stream([True] * 50), max_rate=0.1, min_samples=3))
    assert sum(is_break(r) for r in out) == 1
    assert is_break(out[-1])


def test_truncate_twin_ends_silently() -> None:
    probe = Probe()
    out = list(
        circuit_breaker_rate_truncate(
            tracked(stream([True] * 5), probe), max_rate=0.5, min_samples=2
        )
    )
    assert len(out) == 2 and not any(is_break(r) for r in out)
    assert probe.closed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: circuit_breaker_rate_emit([], max_rate=1.5), "max_rate"),
        (lambda: circuit_breaker_rate_emit([], max_rate=-0.1), "max_rate"),
        (lambda: circuit_breaker_rate_emit([], max_rate=0.2, min_samples=0), "min_samples"),
        (lambda: circuit_breaker_rate_emit([], max_rate=0.2, min_samples=10, window=5), "window"),
        (lambda: circuit_breaker_count_emit([], max_errors=-1), "max_errors"),
    ],
)
def test_bad_arguments_raise_when_called_not_at_first_next(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@given(st.lists(st.booleans(), max_size=60), st.integers(0, 5))
def test_count_breaker(flags: list[bool], max_errors: int) -> None:
    out = list(circuit_breaker_count_emit(stream(flags), max_errors=max_errors))
    errors_seen = 0
    trip = None
    for i, f in enumerate(flags):
        errors_seen += f
        if errors_seen > max_errors:
            trip = i
            break
    if trip is None:
        assert out == stream(flags)
    else:
        assert out[:-1] == stream(flags)[: trip + 1] and out[-1].error.code == "BREAK/ERR_COUNT"


@given(st.lists(st.booleans(), max_size=60))
def test_short_circuit_and_predicate(flags: list[bool]) -> None:
    items = stream(flags)
    first = flags.index(True) if True in flags else None
    emitted = list(short_circuit_on_err_emit(iter(items)))
    truncated = list(short_circuit_on_err_truncate(iter(items)))
    if first is None:
        assert emitted == truncated == items
    else:
        assert truncated == items[: first + 1]
        assert emitted[:-1] == truncated and emitted[-1].error.code == "BREAK/FIRST_ERR"
    by_pred = list(circuit_breaker_pred_emit(iter(items), pred=lambda r: isinstance(r, Err)))
    assert [r for r in by_pred if not is_break(r)] == truncated


def test_breakinfo_serialises_with_asdict_and_json() -> None:
    out = list(circuit_breaker_rate_emit(stream([True] * 3), max_rate=0.5, min_samples=2))
    info = out[-1].error
    assert isinstance(info, BreakInfo)
    json.dumps(dataclasses.asdict(info))
    doc = json.loads(json.dumps(info.to_jsonable()))
    assert doc["threshold"] == {"max_rate": 0.5, "min_samples": 2, "window": None}
    assert doc["last_error"]["code"] == "E"
