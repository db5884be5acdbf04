"""Orderly shutdown of the real `funcpipe ingest` process under real signals."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import CLI, assert_clean, cli_env, prose, read_report, write_tree
from tests.indexes import count


def wait_for(server: EmbeddingServer, n: int) -> None:
    deadline = time.monotonic() + 30
    while server.stats()["embed_requests"] < n:
        assert time.monotonic() < deadline, "the run never reached the server"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signals", "code"),
    [
        ([signal.SIGINT], 130),
        ([signal.SIGTERM], 143),
        ([signal.SIGINT, signal.SIGINT], 130),  # a second Ctrl-C waits for cleanup
        ([signal.SIGTERM, signal.SIGINT], 143),
    ],
)
def test_signals_stop_the_run_in_order_and_keep_what_was_stored(
    tmp_path: Path, signals: list[signal.Signals], code: int, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 10) for i in range(20)})
    report = tmp_path / "r.json"
    with EmbeddingServer(faults=FaultConfig(latency_ms=100)) as server:
        proc = subprocess.Popen(
            [*CLI, "ingest", str(tree), "--index", index_target, "--url", server.url,
             "--embedder", "tei", "--batch-size", "4", "--concurrency", "2",
             "--report", "none", "--report-file", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=cli_env(FUNCPIPE_COMMIT_EVERY="4"),
        )  # fmt: skip
        wait_for(server, 6)
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.01)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert doc["status"] == "interrupted"
    assert doc["chunks"]["stored"] == count(index_target) > 0
    assert_clean(doc)
    assert "interrupted" in stderr


def test_ctrl_c_during_hash_writes_joins_the_writer_and_claims_only_stored_chunks(
    tmp_path: Path,
) -> None:
    """The hash embedder's run: chunk writes (and their vectors) on the index writer
    thread. Ctrl-C once the first batch is printed: the run still stores what it had,
    prints and counts exactly that, and the writer thread is gone."""
    tree = write_tree(tmp_path / "docs", {f"f{i:03}.md": prose(i, 40) for i in range(300)})
    db, report, err = tmp_path / "x.db", tmp_path / "r.json", tmp_path / "stderr.txt"
    with err.open("w") as err_file:  # a file, not a pipe: nothing the child says can block it
        proc = subprocess.Popen(
            [*CLI, "ingest", str(tree), "--index", str(db), "--jsonl", "--report", "none",
             "--report-file", str(report)],
            stdout=subprocess.PIPE, stderr=err_file, text=True,
            env=cli_env(FUNCPIPE_COMMIT_EVERY="16"),
        )  # fmt: skip
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first
        proc.send_signal(signal.SIGINT)
        # Read through the same buffer (communicate() would skip what readline() read ahead).
        printed = [first, *proc.stdout.read().splitlines()]
        proc.wait(timeout=60)
        proc.stdout.close()
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert doc["status"] == "interrupted"
    # What it stored is exactly what it printed and counted (a batch still being written
    # when the signal came is reported once stored); the run stopped early.
    assert doc["chunks"]["stored"] == len(printed) == count(str(db)) <= doc["chunks"]["seen"]
    assert 0 < doc["files"]["ingested"] < 300
    assert doc["resources"]["by_kind"]["worker_pool"]["acquired"] == 1
    assert_clean(doc)
