"""`funcpipe ingest` against real embedding servers on loopback sockets.

The server (`funcpipe serve`'s library, or the command itself in a subprocess when it
must be killed) runs beside the test; the ingest runs as the real CLI in a subprocess,
so its leak report counts only its own descriptors, sockets and threads.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import (
    CLI,
    assert_clean,
    cli_env,
    count_rows,
    prose,
    read_report,
    run_cli,
    write_tree,
)
from tests.embedders.loopback import (
    Reply,
    Request,
    drip,
    endless_chunked,
    loopback,
    openai_answer,
)

PROTOCOL_ARGS = {
    "openai": ["--embedder", "openai", "--model", "test-model"],
    "ollama": ["--embedder", "ollama", "--model", "test-model"],
    "tei": ["--embedder", "tei"],
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "docs", {f"d{i % 3}/f{i}.md": prose(i) for i in range(15)})


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[EmbeddingServer] = []

    def start(**faults: Any) -> EmbeddingServer:
        server = EmbeddingServer(faults=FaultConfig(**faults)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ingest_http(
    tree: Path,
    tmp_path: Path,
    url: str,
    *extra: str,
    protocol: str = "openai",
    timeout: float = 90,
    **env: str,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "report.json"
    proc = run_cli(
        "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report-file", str(report),
        "--url", url, *PROTOCOL_ARGS[protocol], *extra, timeout=timeout, **env,
    )  # fmt: skip
    return proc, read_report(report)


def embeds(server: EmbeddingServer) -> list[dict[str, Any]]:
    return [e for e in server.stats()["request_log"] if e["route"] != "/health"]


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_ARGS))
def test_each_protocol_end_to_end(protocol: str, tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve()
    proc, report = ingest_http(
        tree, tmp_path, server.url, "--jsonl", "--with-vectors", protocol=protocol
    )
    assert proc.returncode == 0, proc.stderr
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db") > 15
    assert server.stats()["inputs"] == report["chunks"]["embedded"]
    res = report["resources"]["by_kind"]
    assert res["http_client"] == {"acquired": 1, "released": 1, "open": 0}
    assert 1 <= res["http_connection"]["acquired"] <= 4
    assert res["worker_pool"]["open"] == 0
    assert_clean(report)
    # The vectors that crossed the wire are the in-process hash embedder's own.
    local = run_cli("ingest", str(tree), "--no-index", "--jsonl", "--with-vectors", "--quiet")
    remote = {r["text"]: r["embedding"] for r in map(json.loads, proc.stdout.splitlines())}
    for record in map(json.loads, local.stdout.splitlines()):
        assert remote[record["text"]] == pytest.approx(record["embedding"], abs=1e-6)


def test_keep_alive_10000_chunks_at_concurrency_4_use_at_most_4_connections(
    tmp_path: Path, serve: Any
) -> None:
    big = write_tree(tmp_path / "big", {f"f{i}.md": prose(i, 120) for i in range(33)})
    server = serve()
    proc, report = ingest_http(
        big, tmp_path, server.url, "--chunk-size", "200", "--overlap", "0", "--concurrency", "4",
        "--report", "none", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert report["chunks"]["stored"] >= 10_000
    stats = server.stats()
    assert stats["connections_accepted"] <= 4
    assert stats["embed_requests"] >= 10_000 // 64
    assert report["resources"]["by_kind"]["http_connection"]["acquired"] <= 4
    assert_clean(report)


def test_429_retry_after_is_honoured_measured_on_the_server(
    tree: Path, tmp_path: Path, serve: Any
) -> None:
    server = serve(fail_first=1, status=429, retry_after=2)
    proc, report = ingest_http(tree, tmp_path, server.url, "--concurrency", "1")
    assert proc.returncode == 0, proc.stderr
    log = embeds(server)
    assert log[0]["outcome"] == "status:429"
    assert log[1]["t"] - log[0]["t"] >= 2.0
    assert_clean(report)


def test_a_500_storm_trips_the_breaker(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve(fail_rate=1.0, status=500)
    proc, report = ingest_http(
        tree, tmp_path, server.url, "--min-samples", "10", "--batch-size", "8",
        FUNCPIPE_MAX_ATTEMPTS="2",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert report["breaker"]["code"] == "BREAK/ERR_RATE"
    assert "EMBED/HTTP_500" in report["errors"]["by_code"]
    assert report["chunks"]["stored"] == 0
    assert_clean(report)
    assert "stopped by the circuit breaker" in proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_server_ends_the_run_within_seconds_with_defaults(
    tree: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc, report = ingest_http(tree, tmp_path, url, "--quiet")
    elapsed = time.monotonic() - t0
    assert elapsed < 15
    assert proc.returncode in (1, 3)
    assert report["errors"]["by_code"].keys() == {"EMBED/CONNECT"}
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the embedding server" in lines[0], proc.stderr
    assert_clean(report)


@pytest.mark.slow
def test_a_frozen_server_ends_the_run_within_a_minute_with_defaults(
    tmp_path: Path, serve: Any
) -> None:
    # More than min_samples chunks, so the breaker has enough to trip on.
    big = write_tree(tmp_path / "big", {f"f{i}.md": prose(i, 12) for i in range(20)})
    server = serve(stall_rate=1.0)
    t0 = time.monotonic()
    proc, report = ingest_http(big, tmp_path, server.url, "--quiet", timeout=120)
    elapsed = time.monotonic() - t0
    assert elapsed < 60, elapsed
    assert proc.returncode == 3, proc.stderr
    assert report["errors"]["by_code"].keys() == {"EMBED/TIMEOUT"}
    assert "did not answer in time" in proc.stderr
    assert_clean(report)
    assert server.stats()["faults"]["stall"] >= 1


def test_a_stalled_server_times_out_per_the_settings(
    tree: Path, tmp_path: Path, serve: Any
) -> None:
    server = serve(stall_rate=1.0)
    t0 = time.monotonic()
    proc, report = ingest_http(
        tree, tmp_path, server.url, "--report", "none",
        FUNCPIPE_TIMEOUT="0.5", FUNCPIPE_RETRY_BUDGET="1.5",
    )  # fmt: skip
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 1
    assert report["errors"]["by_code"].keys() == {"EMBED/TIMEOUT"}
    assert_clean(report)


def test_dropped_connections_are_retried(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve(drop_rate=0.3, seed=7)
    proc, report = ingest_http(tree, tmp_path, server.url, "--batch-size", "4", "--report", "none")
    assert server.stats()["faults"]["drop"] > 0
    assert proc.returncode == 0, report["errors"]
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db")
    assert_clean(report)


def test_413_with_a_batch_limit_splits_and_succeeds(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve(max_batch=5)
    proc, report = ingest_http(tree, tmp_path, server.url, "--batch-size", "32")
    assert proc.returncode == 0, proc.stderr
    assert server.stats()["faults"]["max_batch"] > 0
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db") > 15
    assert_clean(report)


def test_context_length_error_fails_only_the_long_chunk(tmp_path: Path, serve: Any) -> None:
    files: dict[str, str | bytes] = {f"ok{i}.md": "Short note about streams.\n" for i in range(6)}
    files["long.md"] = "x" * 700 + "\n"
    tree = write_tree(tmp_path / "docs", files)
    server = serve(context_limit=300)
    proc, report = ingest_http(tree, tmp_path, server.url, "--batch-size", "16")
    assert proc.returncode == 1
    assert report["errors"]["by_code"] == {"EMBED/CONTEXT_LENGTH": 1}
    assert report["chunks"]["stored"] == 6 == count_rows(tmp_path / "x.db")
    assert_clean(report)


@pytest.mark.parametrize(
    ("corrupt", "code"),
    [
        ("bad-json", "EMBED/BAD_JSON"),
        ("wrong-count", "EMBED/BAD_COUNT"),
        ("wrong-dim", "EMBED/BAD_DIM"),
    ],
)
def test_malformed_answers_end_with_the_documented_code(
    corrupt: str, code: str, tree: Path, tmp_path: Path, serve: Any
) -> None:
    server = serve(corrupt=corrupt, corrupt_rate=0.5, seed=3)
    proc, report = ingest_http(
        tree, tmp_path, server.url, "--batch-size", "4", "--min-samples", "1000"
    )
    assert proc.returncode == 1, proc.stderr
    assert report["errors"]["by_code"].keys() == {code}
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db") > 0
    assert_clean(report)


def test_the_server_killed_mid_run(tmp_path: Path) -> None:
    big = write_tree(tmp_path / "big", {f"f{i}.md": prose(i, 10) for i in range(30)})
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--port-file", str(port_file), "--latency-ms", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        report = tmp_path / "r.json"
        ingest = subprocess.Popen(
            [*CLI, "ingest", str(big), "--index", str(tmp_path / "x.db"), "--url", url,
             "--embedder", "tei", "--batch-size", "4", "--concurrency", "2",
             "--report", "none", "--report-file", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=cli_env(FUNCPIPE_COMMIT_EVERY="8"),
        )  # fmt: skip
        # Kill the server once the run is well under way (some batches answered and
        # stored), not after a fixed sleep: a loaded machine starts the CLI slowly.
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/stats", timeout=5).json()["embed_requests"] < 12:
            assert time.monotonic() < deadline and ingest.poll() is None
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        _, stderr = ingest.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert ingest.returncode in (1, 3), stderr
    assert doc["chunks"]["stored"] == count_rows(tmp_path / "x.db") > 0
    assert doc["chunks"]["failed"] > 0
    assert_clean(doc)


def test_search_an_index_built_over_http(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve()
    proc, _ = ingest_http(tree, tmp_path, server.url, "--quiet", protocol="ollama")
    assert proc.returncode == 0, proc.stderr
    db = str(tmp_path / "x.db")
    hits = run_cli("search", "breaker socket retry", "--index", db, "--url", server.url, "--json")
    assert hits.returncode == 0, hits.stderr
    found = [json.loads(line) for line in hits.stdout.splitlines()]
    assert len(found) == 5 and 0 < found[0]["score"] <= 1.0001
    remembered = run_cli("search", "breaker socket retry", "--index", db, "--json")
    assert remembered.stdout == hits.stdout  # the index remembers its server
    server.stop()
    dead = run_cli("search", "breaker", "--index", db, "--url", server.url)
    assert dead.returncode == 1 and "cannot embed the query" in dead.stderr


# -- hostile servers: bounded time and memory, no secret shown --------------------


def test_a_dripping_server_ends_the_run_within_the_retry_budget(tree: Path, tmp_path: Path) -> None:
    with loopback(drip(from_status_line=False)) as server:
        t0 = time.monotonic()
        proc, report = ingest_http(
            tree, tmp_path, server.url, "--quiet", "--batch-size", "256",
            FUNCPIPE_RETRY_BUDGET="2", timeout=60,
        )  # fmt: skip
        elapsed = time.monotonic() - t0
    # The budget (2 s) plus the CLI's own start and finish; a byte every 0.2 s never
    # trips the 30 s read timeout, so without a total deadline this took minutes.
    assert elapsed < 15, elapsed
    assert proc.returncode == 1, proc.stderr
    assert report["errors"]["by_code"].keys() == {"EMBED/DEADLINE"}
    assert "still answering when the retry budget" in report["errors"]["samples"][0]["msg"]
    assert "the embedding server answers too slowly" in proc.stderr
    assert report["chunks"]["stored"] == 0
    assert_clean(report)


def test_an_endless_answer_ends_the_run_in_bounded_memory(tree: Path, tmp_path: Path) -> None:
    with loopback(endless_chunked) as server:
        proc, report = ingest_http(tree, tmp_path, server.url, "--quiet", timeout=60)
        sent = server.sent
    assert proc.returncode == 1, proc.stderr
    assert report["errors"]["by_code"].keys() == {"EMBED/TOO_BIG_ANSWER"}
    assert "answers more than it may" in proc.stderr
    assert report["peak_rss_mb"] < 200, report["peak_rss_mb"]
    assert sent < 100 << 20, sent
    assert_clean(report)


@pytest.mark.parametrize("api_key", ["sk-env-key", ""], ids=["key-set", "no-key"])
def test_a_password_in_the_url_is_shown_nowhere(api_key: str, tree: Path, tmp_path: Path) -> None:
    auth: list[str] = []

    def fail(request: Request, reply: Reply) -> None:
        auth.append(request.headers.get("authorization", ""))
        reply.json(500, {"error": {"message": "boom"}})

    with loopback(fail) as server:
        url = server.url.replace("http://", "http://user:s3cret@")
        proc, report = ingest_http(
            tree, tmp_path, url, "--jsonl", "--batch-size", "8",
            FUNCPIPE_MAX_ATTEMPTS="1", FUNCPIPE_API_KEY=api_key,
        )  # fmt: skip
    assert proc.returncode in (1, 3), proc.stderr
    assert report["errors"]["by_code"].keys() == {"EMBED/HTTP_500"}
    report_text = (tmp_path / "report.json").read_text()
    basic = base64.b64encode(b"user:s3cret").decode()
    for text in (proc.stdout, proc.stderr, report_text):
        assert "s3cret" not in text and basic not in text
    assert "http://127.0.0.1" in proc.stderr  # the URL is shown, without its user-info
    credential = report["errors"]["samples"][0]["ctx"]["credential"]
    if api_key:
        assert set(auth) == {"Bearer sk-env-key"}
        assert "sk-env-key" not in proc.stderr + report_text
        assert credential.endswith("the user-info in --url was not sent")
    else:
        assert set(auth) == {f"Basic {basic}"}
        assert credential == "basic auth from the user-info in --url"
    assert_clean(report)


def test_the_v1_base_url_form_works(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve()
    proc, report = ingest_http(tree, tmp_path, f"{server.url}/v1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert {e["route"] for e in embeds(server)} == {"/v1/embeddings"}
    assert_clean(report)


def test_a_wrong_base_url_says_which_url_was_tried(tree: Path, tmp_path: Path, serve: Any) -> None:
    server = serve()
    proc, report = ingest_http(tree, tmp_path, f"{server.url}/v2", "--min-samples", "1000")
    assert proc.returncode == 1
    assert report["errors"]["by_code"].keys() == {"EMBED/HTTP_404"}
    assert f"{server.url}/v2/v1/embeddings answered 404" in proc.stderr
    assert "posts to <--url>/v1/embeddings" in report["errors"]["samples"][0]["msg"]
    assert_clean(report)


@pytest.mark.parametrize("flag", [[], ["--encoding-format", "float"]], ids=["default", "float"])
def test_a_server_refusing_base64_is_asked_for_floats(
    flag: list[str], tree: Path, tmp_path: Path
) -> None:
    def strict(request: Request, reply: Reply) -> None:
        if request.json()["encoding_format"] != "float":
            reply.json(422, {"detail": "encoding_format: Input should be 'float'"})
        else:
            reply.json(200, openai_answer(request))

    with loopback(strict) as server:
        proc, report = ingest_http(
            tree, tmp_path, server.url, "--quiet", "--batch-size", "8", "--concurrency", "1",
            *flag,
        )  # fmt: skip
        formats = [r.json()["encoding_format"] for r in server.requests]
    assert proc.returncode == 0, proc.stderr
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db") > 8
    assert formats.count("base64") == (0 if flag else 1)
    assert formats.count("float") == len(formats) - (0 if flag else 1) > 1
    assert_clean(report)
