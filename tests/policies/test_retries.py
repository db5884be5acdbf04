"""Retries wait for real through an injectable clock; no test here sleeps."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.errors import ConfigError
from funcpipe_rag.policies.retries import RetryPolicy, retry_map, retry_result
from funcpipe_rag.result import Err, ErrInfo, Ok, Result
from tests.fakes import FakeClock


def failing(n_failures: int, err: ErrInfo) -> tuple[list[float], object]:
    calls: list[float] = []

    def call(clock: FakeClock) -> Result[str, ErrInfo]:
        calls.append(clock.now)
        return Err(err) if len(calls) <= n_failures else Ok("done")

    return calls, call


def transient(retry_after: float | None = None) -> ErrInfo:
    ctx = {} if retry_after is None else {"retry_after": retry_after}
    return ErrInfo("EMBED/HTTP_503", "unavailable", ctx=ctx)


@given(
    n_failures=st.integers(0, 20),
    max_attempts=st.integers(1, 8),
    max_elapsed=st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_attempts_and_total_time_are_bounded(
    n_failures: int, max_attempts: int, max_elapsed: float, seed: int
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=0.5, max_elapsed=max_elapsed)
    calls, call = failing(n_failures, transient())
    result = retry_result(
        lambda: call(clock),  # type: ignore[operator]
        policy,
        is_retryable=lambda e: True,
        clock=clock,
        rng=random.Random(seed),
    )
    assert len(calls) <= max_attempts
    assert clock.now <= max_elapsed
    if isinstance(result, Ok):
        assert len(calls) == n_failures + 1
    else:
        assert result.error.ctx["attempts"] == len(calls)
        assert result.error.ctx["gave_up"] in {"max attempts", "max elapsed"}


def test_backoff_grows_exponentially_with_jitter_inside_bounds() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=6, base_delay=1.0, multiplier=2.0, max_delay=8.0, jitter=0.5)
    _, call = failing(10, transient())
    retry_result(lambda: call(clock), policy, is_retryable=lambda e: True, clock=clock)  # type: ignore[operator]
    assert len(clock.sleeps) == 5
    for i, slept in enumerate(clock.sleeps):
        ceiling = min(8.0, 2.0**i)
        assert ceiling * 0.5 <= slept <= ceiling


def test_retry_after_is_honoured_and_capped() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=3, retry_after_cap=5.0)
    _, call = failing(1, transient(retry_after=2.0))
    assert retry_result(
        lambda: call(clock), policy, is_retryable=lambda e: True, clock=clock
    ) == Ok(  # type: ignore[operator]
        "done"
    )
    assert clock.sleeps == [2.0]

    clock = FakeClock()
    _, call = failing(1, transient(retry_after=3600.0))
    retry_result(lambda: call(clock), policy, is_retryable=lambda e: True, clock=clock)  # type: ignore[operator]
    assert clock.sleeps == [5.0]


def test_not_retryable_returns_at_once() -> None:
    clock = FakeClock()
    calls, call = failing(5, ErrInfo("EMBED/HTTP_401", "unauthorised"))
    result = retry_result(
        lambda: call(clock),
        RetryPolicy(),
        is_retryable=lambda e: e.code.endswith("503"),
        clock=clock,  # type: ignore[operator]
    )
    assert isinstance(result, Err) and result.error.ctx["gave_up"] == "not retryable"
    assert len(calls) == 1 and clock.sleeps == []


def test_retry_map_keeps_input_order() -> None:
    clock = FakeClock()
    attempts: dict[int, int] = {}

    def flaky(x: int) -> Result[int, ErrInfo]:
        attempts[x] = attempts.get(x, 0) + 1
        return Ok(x * 10) if attempts[x] > x % 3 else Err(transient())

    out = list(
        retry_map(flaky, iter(range(10)), RetryPolicy(), is_retryable=lambda e: True, clock=clock)
    )
    assert out == [Ok(x * 10) for x in range(10)]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"multiplier": 0.5}, {"jitter": 2}],
)
def test_bad_policy_is_a_config_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
