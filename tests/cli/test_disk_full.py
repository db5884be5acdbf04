"""A failed index write is never claimed: disk full is an honest error, not a leak.

The file-size limit (``RLIMIT_FSIZE``) of the child process stands in for a full disk:
SQLite's writes past it fail exactly as they do on a full file system (Python ignores
``SIGXFSZ``, so the write returns an error instead of killing the process).
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import CLI, cli_env, prose, read_report, write_tree


def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _stored_chunks(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    finally:
        conn.close()


# Big chunks with tiny vectors make a chunk commit the write that fails; the defaults
# make it a vector write (they are persisted first, as soon as they are paid for).
BIG_CHUNKS = ("--dim", "8", "--chunk-size", "3000", "--overlap", "0")


@pytest.mark.parametrize(
    ("extra", "limit_kb"),
    [((), 300), ((), 1800), (BIG_CHUNKS, 300), (BIG_CHUNKS, 1200)],
    ids=["vectors-early", "vectors-late", "chunks-first-commit", "chunks-later-commit"],
)
def test_disk_full_stores_and_claims_only_committed_rows(
    tmp_path: Path, extra: tuple[str, ...], limit_kb: int
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i:03}.md": prose(i, 30) for i in range(80)})
    db = tmp_path / "x.db"
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [*CLI, "ingest", str(tree), "--index", str(db), "--jsonl", "--report", "text",
         "--report-file", str(report_path), *extra],
        capture_output=True, text=True, timeout=120, env=cli_env(),
        preexec_fn=lambda: _limited(limit_kb * 1024), check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr  # an honest error: not 0, and not a leak (4)
    report = read_report(report_path)
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    in_index = _stored_chunks(db)
    # stdout, the summary and the index agree: nothing rolled back is claimed.
    assert len(printed) == report["chunks"]["stored"] == in_index
    assert report["status"] == "error"
    assert "cannot write index" in report["reason"]
    assert report["resources"]["leak"] is False
    assert "LEAK" not in proc.stderr
    assert "cannot write index" in proc.stderr
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in conn.execute("SELECT chunk_id FROM chunks")}
    finally:
        conn.close()
    assert {r["chunk_id"] for r in printed} == ids

    # With room again, the next run stores the rest and reuses every vector it paid for.
    again = subprocess.run(
        [*CLI, "ingest", str(tree), "--index", str(db), "--report", "none",
         "--report-file", str(report_path), *extra],
        capture_output=True, text=True, timeout=120, env=cli_env(), check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    second = read_report(report_path)
    assert second["chunks"]["stored"] + in_index >= _stored_chunks(db)
