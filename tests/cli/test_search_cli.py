from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import SAMPLE_CORPUS, run_cli


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("idx") / "sample.db"
    proc = run_cli("ingest", str(SAMPLE_CORPUS), "--index", str(db), "--quiet")
    assert proc.returncode == 1  # the sample corpus holds one undecodable file on purpose
    return db


def test_search_finds_the_breaker_page(sample_index: Path) -> None:
    proc = run_cli(
        "search", "how does the circuit breaker stop a run", "--index", str(sample_index), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("circuit-breaker" in h["path"] for h in hits[:3])


def test_search_unrelated_topic_ranks_its_own_document(sample_index: Path) -> None:
    proc = run_cli("search", "red lentil dal", "--index", str(sample_index), "--json", "-k", "1")
    hit = json.loads(proc.stdout)
    assert "lentil-dal" in hit["path"]


def test_search_text_output_and_errors(sample_index: Path, tmp_path: Path) -> None:
    proc = run_cli("search", "sqlite wal", "--index", str(sample_index), "-k", "2")
    assert proc.returncode == 0 and "1." in proc.stdout and "2." in proc.stdout
    missing = run_cli("search", "x", "--index", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "index not found" in missing.stderr
    empty = run_cli("search", "  ", "--index", str(sample_index))
    assert empty.returncode == 2 and "query is empty" in empty.stderr
