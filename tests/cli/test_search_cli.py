from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from funcpipe_rag.index import is_postgres
from funcpipe_rag.serve import EmbeddingServer
from tests.cli.helpers import SAMPLE_CORPUS, run_cli
from tests.conftest import BACKENDS
from tests.embedders.loopback import Reply, Request, drip, endless_chunked, loopback
from tests.pgcluster import PgServer


@pytest.fixture(scope="module", params=BACKENDS)
def sample_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample corpus in an index of each backend (a file; a PostgreSQL database)."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("idx") / "sample.db")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        db = server.create_database()
    proc = run_cli("ingest", str(SAMPLE_CORPUS), "--index", db, "--quiet")
    # Exit 1 only for the corrupt PDF the sample corpus carries on purpose.
    assert proc.returncode == 1 and "READ/CORRUPT x1;" in proc.stderr, proc.stderr
    return db


def test_search_finds_the_breaker_page(sample_index: str) -> None:
    proc = run_cli(
        "search", "how does the circuit breaker stop a run", "--index", str(sample_index), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("circuit-breaker" in h["path"] for h in hits[:3])


def test_search_unrelated_topic_ranks_its_own_document(sample_index: str) -> None:
    proc = run_cli("search", "red lentil dal", "--index", str(sample_index), "--json", "-k", "1")
    hit = json.loads(proc.stdout)
    assert "lentil-dal" in hit["path"]


def test_search_text_output_and_errors(sample_index: str, tmp_path: Path) -> None:
    proc = run_cli("search", "sqlite wal", "--index", str(sample_index), "-k", "2")
    assert proc.returncode == 0 and "1." in proc.stdout and "2." in proc.stdout
    nowhere = [("--index", str(tmp_path / "none.db"))]
    if is_postgres(sample_index):
        nowhere.append(("--collection", "nothing_here"))
    for args in nowhere:
        missing = run_cli("search", "x", "--index", sample_index, *args)
        assert missing.returncode == 2 and "index not found" in missing.stderr, missing.stderr
    empty = run_cli("search", "  ", "--index", str(sample_index))
    assert empty.returncode == 2 and "query is empty" in empty.stderr


# -- the query over HTTP: bounded time and memory, no secret shown ---------------


@pytest.fixture(scope="module")
def http_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index built with --embedder openai, so a search embeds its query over HTTP."""
    db = tmp_path_factory.mktemp("http-idx") / "http.db"
    server = EmbeddingServer().start()
    try:
        proc = run_cli(
            "ingest", str(SAMPLE_CORPUS / "reference"), "--index", str(db), "--quiet",
            "--embedder", "openai", "--model", "test-model", "--url", server.url,
        )  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    return db


def test_a_dripping_server_ends_a_search_within_the_retry_budget(http_index: Path) -> None:
    with loopback(drip(from_status_line=True)) as server:
        t0 = time.monotonic()
        proc = run_cli(
            "search", "breaker", "--index", str(http_index), "--url", server.url,
            FUNCPIPE_RETRY_BUDGET="2", timeout=60,
        )  # fmt: skip
        elapsed = time.monotonic() - t0
    assert elapsed < 15, elapsed
    assert proc.returncode == 1 and proc.stdout == ""
    assert "cannot embed the query" in proc.stderr
    assert "still answering when the retry budget (2 s) ran out" in proc.stderr


def test_an_endless_answer_ends_a_search_at_the_cap(http_index: Path) -> None:
    with loopback(endless_chunked) as server:
        proc = run_cli("search", "breaker", "--index", str(http_index), "--url", server.url)
        sent = server.sent
    assert proc.returncode == 1 and proc.stdout == ""
    assert "cannot embed the query" in proc.stderr and "MiB cap" in proc.stderr
    assert sent < 100 << 20, sent


def test_a_search_url_password_is_not_shown(http_index: Path) -> None:
    auth: list[str] = []

    def fail(request: Request, reply: Reply) -> None:
        auth.append(request.headers.get("authorization", ""))
        reply.json(503, {"error": "down"})

    with loopback(fail) as server:
        url = server.url.replace("http://", "http://user:s3cret@")
        proc = run_cli(
            "search", "breaker", "--index", str(http_index), "--url", url,
            FUNCPIPE_MAX_ATTEMPTS="1",
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"{server.url}/v1/embeddings answered 503" in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr
    assert auth == ["Basic " + base64.b64encode(b"user:s3cret").decode()]
