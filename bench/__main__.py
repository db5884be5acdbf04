"""`make bench`: run every benchmark side by side in one process and print one table.

Numbers are ratios and rates measured in the same run on a shared, noisy machine; they
are reported, never asserted (speed targets live here, not in timed tests).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _suites() -> list[tuple[str, Callable[[], list[Row]]]]:
    from .bench_policies import bench_policies

    suites: list[tuple[str, Callable[[], list[Row]]]] = [("policies", bench_policies)]
    try:
        from .bench_chunking import bench_chunking

        suites.append(("chunking", bench_chunking))
    except ImportError:
        pass
    try:
        from .bench_embedding import bench_hash_embedder

        suites.append(("embedding", bench_hash_embedder))
    except ImportError:
        pass
    try:
        from .bench_ingest import bench_ingest

        suites.append(("ingest", bench_ingest))
    except ImportError:
        pass
    try:
        from .bench_http import bench_http

        suites.append(("http", bench_http))
    except ImportError:
        pass
    return suites


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(argv: list[str]) -> None:
    only = set(argv)
    rows: list[Row] = []
    for name, suite in _suites():
        if only and name not in only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(suite())
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
