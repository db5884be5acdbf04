"""Circuit breakers over Result streams: stop early, say why, close the upstream.

Every breaker has two forms. ``*_emit`` yields the input up to and including the item
that trips it, then exactly one ``Err(BreakInfo(...))``. ``*_truncate`` yields the same
prefix and ends silently. In both, the upstream is closed (its ``finally`` has run)
*before* the consumer sees anything after the trigger, and arguments are checked when
the function is called, not at the first ``next()``.

Rate rule (as in the course code): counts are cumulative — or over the last
``window`` items when a window is given — Ok and Err both count, and the breaker trips
when ``total >= min_samples and n_err / total > max_rate`` (strictly greater: a rate
equal to ``max_rate`` does not trip).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..result import Err, Result
from ..streams import Stage, close_quietly

T = TypeVar("T")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class BreakInfo(Generic[E]):
    """Why a breaker stopped the stream.

    ``threshold`` is a plain dict (the sketch's ``MappingProxyType`` broke
    ``dataclasses.asdict`` and JSON); it is excluded from hashing.
    """

    code: str
    reason: str
    last_error: E | None
    n_ok: int
    n_err: int
    total: int
    threshold: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_jsonable(self) -> dict[str, Any]:
        last = self.last_error
        to_json = getattr(last, "to_jsonable", None)
        return {
            "code": self.code,
            "reason": self.reason,
            "last_error": to_json()
            if callable(to_json)
            else (None if last is None else repr(last)),
            "n_ok": self.n_ok,
            "n_err": self.n_err,
            "total": self.total,
            "threshold": dict(self.threshold),
        }


BreakerOut = Result[T, E | BreakInfo[E]]


class _Counts:
    """Cumulative Ok / Err counts of the count and predicate breakers."""

    __slots__ = ("n_err", "n_ok")

    def __init__(self) -> None:
        self.n_ok = 0
        self.n_err = 0


def _breaker(
    xs: Iterable[Result[T, E]],
    should_trip: Callable[[Result[T, E], _Counts], bool],
    make_info: Callable[[_Counts, E | None], BreakInfo[E]],
    *,
    emit: bool,
) -> Stage[Any]:
    def gen() -> Generator[Any, None, None]:
        counts = _Counts()
        last_error: E | None = None
        try:
            for r in xs:
                is_err = isinstance(r, Err)
                if is_err:
                    last_error = r.error  # type: ignore[union-attr]
                    counts.n_err += 1
                else:
                    counts.n_ok += 1
                if should_trip(r, counts):
                    close_quietly(xs)  # upstream released before the consumer sees more
                    yield r
                    if emit:
                        yield Err(make_info(counts, last_error))
                    return
                yield r
        finally:
            close_quietly(xs)

    return Stage(gen(), (xs,))


def _check_window(window: int | None, min_samples: int) -> None:
    if window is not None and window < min_samples:
        raise ValueError(f"window ({window}) must be >= min_samples ({min_samples})")


def _rate(
    xs: Iterable[Result[T, E]], max_rate: float, min_samples: int, window: int | None, emit: bool
) -> Stage[Any]:
    if not 0.0 <= max_rate <= 1.0:
        raise ValueError(f"max_rate must be within [0, 1], got {max_rate!r}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples!r}")
    _check_window(window, min_samples)

    def info(n_ok: int, n_err: int, last: E | None) -> BreakInfo[E]:
        total = n_ok + n_err
        return BreakInfo(
            code="BREAK/ERR_RATE",
            reason=f"error rate {n_err}/{total} = {n_err / total:.3f} > max_rate {max_rate}",
            last_error=last,
            n_ok=n_ok,
            n_err=n_err,
            total=total,
            threshold={"max_rate": max_rate, "min_samples": min_samples, "window": window},
        )

    # The hot loop of every run, so it is written out with plain locals rather than
    # through _breaker's callbacks (about 2x faster per item).
    def gen() -> Generator[Any, None, None]:
        n_ok = n_err = 0
        last: E | None = None
        # Invariant: with a window, recent holds the is-error flags of the last
        # `window` items and n_ok + n_err == len(recent).
        recent: deque[bool] | None = None if window is None else deque(maxlen=window)
        try:
            for r in xs:
                is_err = isinstance(r, Err)
                if recent is not None:
                    if len(recent) == window:
                        if recent[0]:
                            n_err -= 1
                        else:
                            n_ok -= 1
                    recent.append(is_err)
                if is_err:
                    n_err += 1
                    last = r.error  # type: ignore[union-attr]
                else:
                    n_ok += 1
                total = n_ok + n_err
                if total >= min_samples and n_err / total > max_rate:
                    close_quietly(xs)  # upstream released before the consumer sees more
                    yield r
                    if emit:
                        yield Err(info(n_ok, n_err, last))
                    return
                yield r
        finally:
            close_quietly(xs)

    return Stage(gen(), (xs,))


def circuit_breaker_rate_emit(
    xs: Iterable[Result[T, E]],
    *,
    max_rate: float,
    min_samples: int = 100,
    window: int | None = None,
) -> Stage[Result[T, E | BreakInfo[E]]]:
    """Trip when the error rate exceeds ``max_rate``; then one ``Err(BreakInfo)``.

    >>> xs = [Ok(1), Err("a"), Err("b")]
    >>> [type(r).__name__ for r in circuit_breaker_rate_emit(xs, max_rate=0.5, min_samples=2)]
    ['Ok', 'Err', 'Err', 'Err']
    """
    return _rate(xs, max_rate, min_samples, window, emit=True)


def circuit_breaker_rate_truncate(
    xs: Iterable[Result[T, E]],
    *,
    max_rate: float,
    min_samples: int = 100,
    window: int | None = None,
) -> Stage[Result[T, E]]:
    """As :func:`circuit_breaker_rate_emit`, ending silently after the trigger."""
    return _rate(xs, max_rate, min_samples, window, emit=False)


def _count(xs: Iterable[Result[T, E]], max_errors: int, emit: bool) -> Stage[Any]:
    if max_errors < 0:
        raise ValueError(f"max_errors must be >= 0, got {max_errors!r}")

    def info(c: _Counts, last: E | None) -> BreakInfo[E]:
        return BreakInfo(
            code="BREAK/ERR_COUNT",
            reason=f"{c.n_err} errors > max_errors {max_errors}",
            last_error=last,
            n_ok=c.n_ok,
            n_err=c.n_err,
            total=c.n_ok + c.n_err,
            threshold={"max_errors": max_errors},
        )

    return _breaker(xs, lambda _, c: c.n_err > max_errors, info, emit=emit)


def circuit_breaker_count_emit(
    xs: Iterable[Result[T, E]], *, max_errors: int
) -> Stage[Result[T, E | BreakInfo[E]]]:
    """Trip on the error that makes the count exceed ``max_errors``."""
    return _count(xs, max_errors, emit=True)


def circuit_breaker_count_truncate(
    xs: Iterable[Result[T, E]], *, max_errors: int
) -> Stage[Result[T, E]]:
    """As :func:`circuit_breaker_count_emit`, ending silently after the trigger."""
    return _count(xs, max_errors, emit=False)


def _pred(
    xs: Iterable[Result[T, E]], pred: Callable[[Result[T, E]], bool], code: str, emit: bool
) -> Stage[Any]:
    if not callable(pred):
        raise TypeError(f"pred must be callable, got {pred!r}")

    def info(c: _Counts, last: E | None) -> BreakInfo[E]:
        return BreakInfo(
            code=code,
            reason="predicate matched" if code == "BREAK/PREDICATE" else "first error",
            last_error=last,
            n_ok=c.n_ok,
            n_err=c.n_err,
            total=c.n_ok + c.n_err,
            threshold={},
        )

    return _breaker(xs, lambda r, _: pred(r), info, emit=emit)


def circuit_breaker_pred_emit(
    xs: Iterable[Result[T, E]], *, pred: Callable[[Result[T, E]], bool]
) -> Stage[Result[T, E | BreakInfo[E]]]:
    """Trip at the first item for which ``pred(item)`` is true."""
    return _pred(xs, pred, "BREAK/PREDICATE", emit=True)


def circuit_breaker_pred_truncate(
    xs: Iterable[Result[T, E]], *, pred: Callable[[Result[T, E]], bool]
) -> Stage[Result[T, E]]:
    """As :func:`circuit_breaker_pred_emit`, ending silently after the trigger."""
    return _pred(xs, pred, "BREAK/PREDICATE", emit=False)


def _is_err(r: Result[Any, Any]) -> bool:
    return isinstance(r, Err)


def short_circuit_on_err_emit(
    xs: Iterable[Result[T, E]],
) -> Stage[Result[T, E | BreakInfo[E]]]:
    """Stop at the first ``Err``: yield it, then ``Err(BreakInfo(code="BREAK/FIRST_ERR"))``."""
    return _pred(xs, _is_err, "BREAK/FIRST_ERR", emit=True)


def short_circuit_on_err_truncate(xs: Iterable[Result[T, E]]) -> Stage[Result[T, E]]:
    """Stop at the first ``Err``, yielding it last."""
    return _pred(xs, _is_err, "BREAK/FIRST_ERR", emit=False)


def is_break(r: Result[Any, Any]) -> bool:
    """True for the ``Err(BreakInfo)`` an ``*_emit`` breaker appends."""
    return isinstance(r, Err) and isinstance(r.error, BreakInfo)
