"""Splitters raced on the real corpus's texts: the one timing loop of every splitter row.

Every contender splits every text of a group (``code`` / ``prose``, see
:func:`.corpus.texts_by_kind`) once per round; the contenders alternate within each
round, so a burst of load on the shared machine hits them alike, and each one's time is
its best round. ``clock`` is ``time.process_time`` (CPU seconds of this process: what
load disturbs least) or ``time.perf_counter`` (wall time, for rows measured that way).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corpus import texts_by_kind


@dataclass(frozen=True)
class SplitterTiming:
    """One contender on one group of texts."""

    group: str
    files: int
    mb: float
    name: str
    chunks: int
    rounds_s: tuple[float, ...]  # every round's time, in order

    @property
    def best_s(self) -> float:
        return min(self.rounds_s)

    @property
    def label(self) -> str:
        return f"splitter ({self.group}, {self.files:,} files, {self.mb:.1f} MB): {self.name}"


def race(
    root: Path,
    contenders: Mapping[str, Callable[[str], list[Any]]],
    rounds: int,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, dict[str, SplitterTiming]]:
    """``{group: {contender: timing}}`` over the corpus at ``root``, contenders in order."""
    out: dict[str, dict[str, SplitterTiming]] = {}
    for group, texts in texts_by_kind(root).items():
        mb = sum(len(t) for t in texts) / 1e6
        took: dict[str, list[float]] = {name: [] for name in contenders}
        chunks: dict[str, int] = {}
        for _ in range(rounds):
            for name, split in contenders.items():
                t0 = clock()
                chunks[name] = sum(len(split(t)) for t in texts)
                took[name].append(clock() - t0)
        out[group] = {
            name: SplitterTiming(group, len(texts), mb, name, chunks[name], tuple(took[name]))
            for name in contenders
        }
    return out


def round_ratios(theirs: SplitterTiming, ours: SplitterTiming) -> str:
    """Each round's ``theirs / ours`` time, as a table cell."""
    return ", ".join(f"{t / o:.2f}" for t, o in zip(theirs.rounds_s, ours.rounds_s, strict=True))
