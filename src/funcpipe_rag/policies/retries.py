"""Retry a Result-returning call with exponential backoff, jitter and ``Retry-After``.

Retries here really wait — the reference sketch's never did — but through an
injectable :class:`Clock`, so tests advance a fake clock instead of sleeping.

A failed attempt is retried when ``is_retryable(err)`` says so. The delay before the
next attempt is the server's ``Retry-After`` when the error carries one
(``err.ctx["retry_after"]``, in seconds, capped at ``retry_after_cap``), else
``min(max_delay, base_delay * multiplier ** (attempt - 1))`` scaled by a random factor in
``[1 - jitter, 1]``. Attempts stop at ``max_attempts``, or when the next wait would
pass ``max_elapsed`` seconds since the first attempt; the last ``Err`` is returned with
``ctx["attempts"]`` set.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from ..errors import ConfigError
from ..result import Err, ErrInfo, Ok, Result
from ..streams import Stage, smap

T = TypeVar("T")
U = TypeVar("U")


class Clock(Protocol):
    """Where time comes from and how to wait; swap in a fake one in tests."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``time.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry.

    >>> RetryPolicy()                                   # 5 attempts, 0.5 s doubling
    >>> RetryPolicy(max_attempts=1)                     # never retry
    >>> RetryPolicy(base_delay=0.1, max_elapsed=10.0, retry_after_cap=5.0)
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 20.0
    jitter: float = 0.5
    max_elapsed: float = 60.0
    retry_after_cap: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "max_elapsed", "retry_after_cap"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.multiplier < 1:
            raise ConfigError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay after failed attempt number ``attempt`` (1-based), jitter applied."""
        raw = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        return raw * (1.0 - self.jitter * rng.random())

    def delay_for(self, err: ErrInfo, attempt: int, rng: random.Random) -> float:
        """``Retry-After`` when the error carries one (capped), else the backoff."""
        retry_after = err.ctx.get("retry_after")
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return min(float(retry_after), self.retry_after_cap)
        return self.backoff(attempt, rng)


def _with_attempts(err: ErrInfo, attempts: int, gave_up: str) -> ErrInfo:
    return replace(err, ctx={**err.ctx, "attempts": attempts, "gave_up": gave_up})


def retry_result(
    call: Callable[[], Result[T, ErrInfo]],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[ErrInfo], bool],
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Result[T, ErrInfo]:
    """Call ``call()`` until it returns ``Ok``, a non-retryable ``Err``, or the budget ends.

    Exceptions from ``call`` are not caught: per-item failures must already be ``Err``.
    """
    clock = clock if clock is not None else SystemClock()
    rng = rng if rng is not None else random.Random()
    start = clock.monotonic()
    attempt = 0
    while True:
        attempt += 1
        result = call()
        if isinstance(result, Ok):
            return result
        err = result.error
        if not is_retryable(err):
            return Err(_with_attempts(err, attempt, "not retryable"))
        if attempt >= policy.max_attempts:
            return Err(_with_attempts(err, attempt, "max attempts"))
        delay = policy.delay_for(err, attempt, rng)
        if clock.monotonic() - start + delay > policy.max_elapsed:
            return Err(_with_attempts(err, attempt, "max elapsed"))
        clock.sleep(delay)


def retry_map(
    f: Callable[[T], Result[U, ErrInfo]],
    xs: Iterable[T],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[ErrInfo], bool],
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Stage[Result[U, ErrInfo]]:
    """Apply ``f`` to each item with retries; results keep input order."""
    clock = clock if clock is not None else SystemClock()
    rng = rng if rng is not None else random.Random()

    def one(x: T) -> Result[U, ErrInfo]:
        return retry_result(lambda: f(x), policy, is_retryable=is_retryable, clock=clock, rng=rng)

    return smap(one, xs)
