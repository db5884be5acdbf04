"""Test doubles shared across the suite: a fake clock and a tracked generator source."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeClock:
    """A clock whose ``sleep`` advances time instantly and records every wait."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Probe:
    """Records what a tracked source did: items pulled and whether its finally ran."""

    started: bool = False
    pulled: int = 0
    closed: bool = False
    events: list[str] = field(default_factory=list)


def tracked(items: Iterable[Any], probe: Probe, *, fail_at: int | None = None) -> Generator[Any]:
    """A generator over ``items`` that reports to ``probe``; raises at index ``fail_at``."""
    probe.started = True
    try:
        for i, x in enumerate(items):
            if fail_at is not None and i == fail_at:
                raise RuntimeError(f"producer failed at {i}")
            probe.pulled += 1
            yield x
    finally:
        probe.closed = True
        probe.events.append("source closed")
