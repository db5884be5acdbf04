"""The small promises, each through the real command: nothing created for a typo,
quiet pipes, honest exit codes, advice that works, no sidecar files left behind."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import (
    CLI,
    UNDECODABLE,
    cli_env,
    prose,
    read_report,
    run_cli,
    write_tree,
)


def test_a_mistyped_root_creates_nothing_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("hello\n")
    db = tmp_path / "x.db"
    proc = run_cli("ingest", str(tmp_path / "dosc"), str(tmp_path / "docs"), "--index", str(db))
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr and "dosc" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # no index, no lock


def test_search_into_a_closed_pipe_is_quiet_and_exits_141(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 12) for i in range(20)})
    db = tmp_path / "x.db"
    assert run_cli("ingest", str(tree), "--index", str(db), "--quiet").returncode == 0
    with subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL) as reader:  # fmt: skip
        assert reader.stdin is not None
        proc = subprocess.run(
            [*CLI, "search", "stream chunk", "--index", str(db), "-k", "1000", "--json"],
            stdout=reader.stdin, stderr=subprocess.PIPE, text=True, env=cli_env(), timeout=60,
            check=False,
        )  # fmt: skip
        reader.stdin.close()
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_plan_exits_like_the_run_when_files_fail(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"good.md": "fine text\n", "bad.txt": UNDECODABLE})
    db = tmp_path / "x.db"
    plan = run_cli("ingest", str(tree), "--index", str(db), "--plan")
    run = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert plan.returncode == run.returncode == 1
    statuses = {json.loads(line)["status"] for line in plan.stdout.splitlines()}
    assert statuses == {"new", "failed"}


def test_verify_says_why_a_document_is_incomplete(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 12), "b.md": prose(2, 12)})
    db = tmp_path / "x.db"
    # Every input longer than 340 characters fails for good (400): some chunks of each
    # file fail to embed, the rest are stored.
    with EmbeddingServer(faults=FaultConfig(context_limit=340)) as server:
        proc = run_cli("ingest", str(tree), "--index", str(db), "--embedder", "tei",
                       "--url", server.url, "--chunk-size", "400", "--report", "none")  # fmt: skip
    assert proc.returncode == 1
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(DISTINCT doc_id) FROM chunks").fetchone() == (2,)
    finally:
        conn.close()
    verify = run_cli("verify", "--index", str(db), "--json")
    details = [i["detail"] for i in json.loads(verify.stdout)["issues"]]
    assert details and all("failed to embed" in d for d in details), details
    assert not any("interrupted" in d for d in details)


def test_an_interrupted_reembed_names_its_leftover_file_and_the_way_out(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 20) for i in range(10)})
    db = tmp_path / "x.db"
    assert run_cli("ingest", str(tree), "--index", str(db), "--quiet").returncode == 0
    with EmbeddingServer(faults=FaultConfig(latency_ms=50)) as server:
        args = ["ingest", str(tree), "--index", str(db), "--url", server.url, "--embedder",
                "tei", "--reembed", "--batch-size", "4", "--quiet"]  # fmt: skip
        proc = subprocess.Popen(
            [*CLI, *args], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while server.stats()["embed_requests"] < 3:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    leftover = tmp_path / "x.db.reembed"
    assert leftover.exists()

    # A plain run on the live index says the rebuild is there and how to resume or drop it.
    plain = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert plain.returncode == 0
    assert str(leftover) in plain.stderr and "--reembed" in plain.stderr

    # A rebuild with other settings meets the leftover: the advice names it, and works.
    other = run_cli("ingest", str(tree), "--index", str(db), "--reembed", "--chunk-size", "500")
    assert other.returncode == 2
    assert str(leftover) in other.stderr and "delete" in other.stderr
    leftover.unlink()
    again = run_cli("ingest", str(tree), "--index", str(db), "--reembed", "--chunk-size", "500",
                    "--report", "none")  # fmt: skip
    assert again.returncode == 0, again.stderr


def test_no_sidecar_file_is_left_behind(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 6)})
    db = tmp_path / "x.db"
    report = tmp_path / "r.json"
    assert run_cli("ingest", str(tree), "--index", str(db), "--report-file", str(report),
                   "--quiet").returncode == 0  # fmt: skip
    assert read_report(report)["status"] == "ok"
    assert run_cli("search", "stream", "--index", str(db)).returncode == 0
    assert run_cli("verify", "--index", str(db), str(tree)).returncode == 0
    assert run_cli("ingest", str(tree), "--index", str(db), "--plan").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "r.json", "x.db"]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] > 0
    finally:
        conn.close()
