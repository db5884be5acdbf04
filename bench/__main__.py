"""`make bench`: run every benchmark side by side in one process; one table per suite.

Numbers are ratios and rates measured in the same run on a shared, noisy machine; they
are reported, never asserted (speed targets live here, not in timed tests).
Run one suite: ``python -m bench chunking`` (names below).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .bench_chunking import bench_chunking
from .bench_embedding import bench_hash_embedder
from .bench_http import bench_http
from .bench_index_writes import bench_index_writes
from .bench_ingest import bench_ingest
from .bench_light import bench_light, bench_plan, bench_splitter
from .bench_onnx import bench_onnx
from .bench_parsers import bench_parsers
from .bench_policies import bench_policies
from .bench_postgres import bench_postgres
from .bench_readers import bench_readers
from .bench_real import bench_real, bench_real_hash, bench_real_http
from .bench_rerun import bench_rerun
from .bench_retrieval import bench_retrieval
from .bench_search import bench_search

Row = dict[str, Any]

SUITES: dict[str, Callable[[], list[Row]]] = {
    "policies": bench_policies,
    "chunking": bench_chunking,
    "embedding": bench_hash_embedder,
    "ingest": bench_ingest,
    "http": bench_http,
    "rerun": bench_rerun,
    "readers": bench_readers,
    "real": bench_real,
    "light": bench_light,
    "plan": bench_plan,
    "real-hash": bench_real_hash,
    "real-http": bench_real_http,
    "splitter": bench_splitter,
    "postgres": bench_postgres,
    "parsers": bench_parsers,
    "search": bench_search,
    "index-writes": bench_index_writes,
    "onnx": bench_onnx,
    "retrieval": bench_retrieval,
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(rows: list[Row]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    unknown = set(argv) - SUITES.keys()
    if unknown:
        raise SystemExit(f"unknown suite {', '.join(sorted(unknown))}; known: {', '.join(SUITES)}")
    for name, suite in SUITES.items():
        if argv and name not in argv:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        print(f"\n#### {name}\n\n{table(suite())}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
