"""Fold a Result stream into an error report that serialises to JSON.

The report counts Ok and Err values, groups errors by code, stage and path, keeps the
first few errors as samples, and carries the ``BreakInfo`` of a breaker trip when the
stream had one. :class:`ErrReportBuilder` does the same incrementally, so a pipeline
can fold while it streams instead of collecting a list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..result import Err, ErrInfo
from ..streams import close_quietly
from .breakers import BreakInfo

MAX_SAMPLES = 20


@dataclass(frozen=True, slots=True)
class ErrReport:
    """Counts of a finished stream, errors grouped three ways, and a breaker trip."""

    n_ok: int
    n_err: int
    by_code: dict[str, int]
    by_stage: dict[str, int]
    by_path: dict[str, int]
    samples: tuple[ErrInfo, ...]
    breaker: BreakInfo[Any] | None = None


@dataclass(slots=True)
class ErrReportBuilder:
    """Accumulates an :class:`ErrReport` one result at a time."""

    n_ok: int = 0
    n_err: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    samples: list[ErrInfo] = field(default_factory=list)
    breaker: BreakInfo[Any] | None = None

    def add(self, r: object) -> None:
        if not isinstance(r, Err):
            self.n_ok += 1
            return
        err = r.error
        if isinstance(err, BreakInfo):
            self.breaker = err  # a trip is reported apart, not counted as an item error
            return
        self.add_error(err)

    def add_error(self, err: object) -> None:
        self.n_err += 1
        if isinstance(err, ErrInfo):
            self.by_code[err.code] += 1
            self.by_stage[err.stage or "?"] += 1
            if err.path is not None:
                self.by_path[err.path] += 1
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(err)
        else:
            self.by_code[type(err).__name__] += 1

    def build(self) -> ErrReport:
        return ErrReport(
            n_ok=self.n_ok,
            n_err=self.n_err,
            by_code=dict(self.by_code.most_common()),
            by_stage=dict(self.by_stage.most_common()),
            by_path=dict(self.by_path.most_common()),
            samples=tuple(self.samples),
            breaker=self.breaker,
        )


def fold_error_report(stream: Iterable[object]) -> ErrReport:
    """Consume ``stream`` (closing it on every path) into an :class:`ErrReport`."""
    builder = ErrReportBuilder()
    try:
        for r in stream:
            builder.add(r)
    finally:
        close_quietly(stream)
    return builder.build()


def report_to_jsonable(report: ErrReport) -> dict[str, Any]:
    """A JSON-ready dict of ``report``, ``BreakInfo`` included."""
    return {
        "n_ok": report.n_ok,
        "n_err": report.n_err,
        "by_code": dict(report.by_code),
        "by_stage": dict(report.by_stage),
        "by_path": dict(report.by_path),
        "samples": [e.to_jsonable() for e in report.samples],
        "breaker": None if report.breaker is None else report.breaker.to_jsonable(),
    }
