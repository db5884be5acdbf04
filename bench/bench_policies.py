"""Per-item overhead of the policy wrappers, measured side by side in one run.

ns/item over N items for: a bare generator loop; the same through ``managed_stream``;
through the rate breaker; through the whole policy stack (managed stream, a closing
``smap`` stage, the rate breaker, and the incremental error report). Best of 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from funcpipe_rag.policies.breakers import circuit_breaker_rate_emit
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.policies.reports import ErrReportBuilder
from funcpipe_rag.policies.resources import managed_stream
from funcpipe_rag.result import Ok
from funcpipe_rag.streams import smap


def _source(n: int) -> Iterator[Ok[int]]:
    item = Ok(1)
    for _ in range(n):
        yield item


def _bare(n: int) -> None:
    for _ in _source(n):
        pass


def _managed(n: int) -> None:
    with managed_stream(lambda: _source(n), ledger=ResourceLedger()) as s:
        for _ in s:
            pass


def _breaker(n: int) -> None:
    for _ in circuit_breaker_rate_emit(_source(n), max_rate=0.2, min_samples=100):
        pass


def _stack(n: int) -> None:
    report = ErrReportBuilder()
    add = report.add
    with managed_stream(lambda: _source(n), ledger=ResourceLedger()) as s:
        stage = circuit_breaker_rate_emit(smap(lambda r: r, s), max_rate=0.2, min_samples=100)
        try:
            for r in stage:
                add(r)
        finally:
            stage.close()


def _best_ns_per_item(fn: Callable[[int], None], n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def bench_policies(n: int = 1_000_000) -> list[dict[str, Any]]:
    bare = _best_ns_per_item(_bare, n)
    rows = [{"name": "policies: bare generator loop", "items": n, "ns_per_item": bare}]
    for name, fn in [
        ("policies: managed_stream", _managed),
        ("policies: rate breaker", _breaker),
        ("policies: whole stack (managed+smap+breaker+report)", _stack),
    ]:
        ns = _best_ns_per_item(fn, n)
        rows.append({"name": name, "items": n, "ns_per_item": ns, "added_ns": ns - bare})
    return rows


if __name__ == "__main__":
    for row in bench_policies():
        print(row)
