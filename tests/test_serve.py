"""funcpipe_rag.serve against real loopback sockets: routes, keep-alive, faults, lifecycle."""

from __future__ import annotations

import base64
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from funcpipe_rag.embedders.hashing import HashEmbedder
from funcpipe_rag.errors import ConfigError, ResourceClosedError
from funcpipe_rag.serve import CORRUPT_MODES, CorruptMode, EmbeddingServer, FaultConfig

TEXTS = ["circuit breakers stop a run", "sockets are closed on every path", ""]
EXPECTED = HashEmbedder(dim=384).embed_texts(TEXTS)


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as srv:
        yield srv


def serve(**faults: Any) -> EmbeddingServer:
    return EmbeddingServer(dim=16, faults=FaultConfig(**faults)).start()


def client(srv: EmbeddingServer, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=kw.pop("timeout", 5.0), **kw)


def embed(c: httpx.Client, n: int = 1) -> httpx.Response:
    return c.post("/v1/embeddings", json={"model": "m", "input": [f"text {i}" for i in range(n)]})


def outcomes(srv: EmbeddingServer) -> list[str]:
    return [e["outcome"] for e in srv.stats()["request_log"]]


def error_message(r: httpx.Response) -> str:
    """The message of an error answer, checked to be in its route's own style."""
    doc = r.json()
    route = r.request.url.path
    if route == "/api/embed":
        assert set(doc) == {"error"} and isinstance(doc["error"], str)
        return str(doc["error"])
    if route == "/embed":
        assert set(doc) == {"error", "error_type"} and isinstance(doc["error"], str)
        return str(doc["error"])
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    return str(doc["error"]["message"])


def wait_until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# --- protocols -------------------------------------------------------------------------


def test_openai_float_matches_hash_embedder(server: EmbeddingServer) -> None:
    with client(server) as c:
        r = c.post("/v1/embeddings", json={"model": "any-name", "input": TEXTS})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["object"] == "list" and doc["model"] == "any-name"
    assert [d["index"] for d in doc["data"]] == [0, 1, 2]
    assert {d["object"] for d in doc["data"]} == {"embedding"}
    got = np.array([d["embedding"] for d in doc["data"]], dtype=np.float32)
    assert np.array_equal(got, EXPECTED)  # float32 -> JSON -> float32 is exact
    tokens = sum(map(len, TEXTS))
    assert doc["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_openai_base64_is_little_endian_float32(server: EmbeddingServer) -> None:
    body = {"model": "m", "input": "circuit breakers stop a run", "encoding_format": "base64"}
    with client(server) as c:
        doc = c.post("/v1/embeddings", json=body).json()
    raw = base64.b64decode(doc["data"][0]["embedding"])
    assert np.array_equal(np.frombuffer(raw, dtype="<f4"), EXPECTED[0])


def test_ollama_and_tei_routes(server: EmbeddingServer) -> None:
    with client(server) as c:
        ollama = c.post("/api/embed", json={"model": "nomic", "input": TEXTS}).json()
        one = c.post("/api/embed", json={"model": "nomic", "input": TEXTS[0]}).json()
        tei = c.post("/embed", json={"inputs": TEXTS}).json()
        tei_one = c.post("/embed", json={"inputs": TEXTS[1]}).json()
    assert ollama["model"] == "nomic"
    assert np.array_equal(np.array(ollama["embeddings"], dtype=np.float32), EXPECTED)
    assert np.array_equal(np.array(one["embeddings"], dtype=np.float32), EXPECTED[:1])
    assert isinstance(tei, list) and np.array_equal(np.array(tei, dtype=np.float32), EXPECTED)
    assert np.array_equal(np.array(tei_one, dtype=np.float32), EXPECTED[1:2])


def test_dim_is_configurable() -> None:
    with EmbeddingServer(dim=32) as srv, client(srv) as c:
        assert srv.dim == 32
        assert len(c.post("/embed", json={"inputs": "x y"}).json()[0]) == 32


def test_models_list_and_retrieve(server: EmbeddingServer) -> None:
    with client(server) as c:
        listed = c.get("/v1/models").json()
        one = c.get("/v1/models/text-embedding-3-small").json()
        slashed = c.get("/v1/models/BAAI/bge-small-en-v1.5").json()
        escaped = c.get("/v1/models/a%20b").json()
        assert c.post("/v1/models").status_code == 405
        assert c.post("/v1/models/x").headers["allow"] == "GET"
        assert c.get("/v1/models/").status_code == 404
    assert listed["object"] == "list"
    (model,) = listed["data"]
    assert model["id"] == "hash-ngram-v1" and model["object"] == "model"
    assert model["owned_by"] == "funcpipe" and time.time() - 60 < model["created"] <= time.time()
    assert one == {**model, "id": "text-embedding-3-small"}  # any name is served
    assert slashed["id"] == "BAAI/bge-small-en-v1.5" and escaped["id"] == "a b"


def test_health_stats_404_405(server: EmbeddingServer) -> None:
    with client(server) as c:
        assert c.get("/health").json() == {"status": "ok"}
        missing = c.post("/v2/nothing", json={})
        assert missing.status_code == 404 and "no route" in missing.json()["error"]["message"]
        wrong = c.get("/v1/embeddings")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert c.post("/health").status_code == 405
        assert c.get("/health").status_code == 200  # the connection survived the errors
        stats = c.get("/stats").json()
    assert stats["requests"] == 6 and stats["embed_requests"] == 0
    assert stats["connections_accepted"] == 1


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/embeddings", b"{not json", "not valid JSON"),
        ("/v1/embeddings", b"[1, 2]", "must be a JSON object"),
        ("/v1/embeddings", b'{"model": "m"}', "'input' is a required property"),
        ("/v1/embeddings", b'{"model": "m", "input": []}', "must not be an empty list"),
        ("/v1/embeddings", b'{"model": "m", "input": [1, 2]}', "list of strings"),
        ("/v1/embeddings", b'{"input": "x"}', "'model' is required"),
        ("/v1/embeddings", b'{"model": "m", "input": "x", "encoding_format": "int8"}', "int8"),
        ("/api/embed", b'{"model": "m", "input": []}', "must not be an empty list"),
        ("/embed", b'{"input": "x"}', "'inputs' is a required property"),
        ("/embed", b"", "not valid JSON"),
    ],
)
def test_bad_bodies_get_400(path: str, body: bytes, message: str) -> None:
    with EmbeddingServer(dim=16) as srv, client(srv) as c:
        r = c.post(path, content=body)
        assert r.status_code == 400 and message in error_message(r)
        assert c.post("/embed", json={"inputs": "still fine"}).status_code == 200
        assert srv.stats()["connections_accepted"] == 1
    assert outcomes(srv) == ["invalid", "ok"]


def test_chunked_body_gets_411_and_close(server: EmbeddingServer) -> None:
    with client(server) as c:
        r = c.post("/embed", content=iter([b'{"inputs": ', b'"x"}']))
    assert r.status_code == 411 and r.headers["connection"] == "close"


def test_expect_100_continue(server: EmbeddingServer) -> None:
    body = b'{"inputs": "x"}'
    head = (
        "POST /embed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


# --- keep-alive ------------------------------------------------------------------------


def test_keep_alive_serves_50_requests_on_one_connection(server: EmbeddingServer) -> None:
    with client(server) as c:
        for _ in range(50):
            assert embed(c).status_code == 200
        assert server.stats()["connections_open"] == 1
    stats = server.stats()
    assert stats["connections_accepted"] == 1 and stats["embed_requests"] == 50
    wait_until(lambda: server.stats()["connections_open"] == 0)  # the server saw the close


def test_connection_close_is_honoured(server: EmbeddingServer) -> None:
    with client(server) as c:
        r = c.get("/health", headers={"Connection": "close"})
        assert r.headers["connection"] == "close"
        assert c.get("/health").status_code == 200
    assert server.stats()["connections_accepted"] == 2


def test_every_answer_has_content_length(server: EmbeddingServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 2 and all(b"Content-Length: " in a for a in answers)


# --- fault injection -------------------------------------------------------------------


def test_fail_first_sends_retry_after_then_succeeds() -> None:
    with serve(fail_first=1, status=429, retry_after=2) as srv, client(srv) as c:
        first, second = embed(c), embed(c)
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"]["type"] == "injected_fault"
    assert second.status_code == 200 and "retry-after" not in second.headers
    assert outcomes(srv) == ["status:429", "ok"]
    assert srv.stats()["faults"]["status"] == 1


def test_fail_rate_schedule_is_reproducible_by_seed() -> None:
    def schedule(seed: int) -> list[str]:
        with serve(fail_rate=0.3, status=503, seed=seed) as srv, client(srv) as c:
            codes = [embed(c).status_code for _ in range(60)]
        assert outcomes(srv) == ["ok" if code == 200 else "status:503" for code in codes]
        assert srv.stats()["faults"]["status"] == codes.count(503)
        return outcomes(srv)

    a, b, other = schedule(7), schedule(7), schedule(8)
    assert a == b and a != other
    assert 5 < a.count("status:503") < 35


def test_stall_times_out_client_and_stop_stays_prompt() -> None:
    srv = serve(stall_rate=1.0)
    try:
        with (
            client(srv, timeout=httpx.Timeout(5.0, read=0.3)) as c,
            pytest.raises(httpx.ReadTimeout),
        ):
            embed(c)
        # The client closed its connection: the stalled handler notices and lets go.
        wait_until(lambda: srv.stats()["connections_open"] == 0)

        errors: list[BaseException] = []

        def stalled_request() -> None:
            with client(srv, timeout=30.0) as c2:
                try:
                    embed(c2)
                except httpx.TransportError as exc:
                    errors.append(exc)

        thread = threading.Thread(target=stalled_request)
        thread.start()
        wait_until(lambda: srv.stats()["faults"]["stall"] == 2)
    finally:
        started = time.monotonic()
        srv.stop()
        elapsed = time.monotonic() - started
    thread.join(5)
    assert elapsed < 2.0 and not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], httpx.RemoteProtocolError)
    assert outcomes(srv) == ["stall", "stall"]


def test_drop_closes_without_an_answer() -> None:
    with serve(drop_rate=1.0) as srv, client(srv) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            embed(c)
        assert c.get("/health").status_code == 200  # only embed requests are dropped
    assert srv.stats()["faults"]["drop"] == 1 and outcomes(srv) == ["drop"]


def test_max_batch_answers_413() -> None:
    with serve(max_batch=4) as srv, client(srv) as c:
        assert embed(c, 4).status_code == 200
        r = embed(c, 5)
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
    assert outcomes(srv) == ["ok", "status:413"] and srv.stats()["faults"]["max_batch"] == 1


def test_context_limit_answers_openai_style_400() -> None:
    with serve(context_limit=10) as srv, client(srv) as c:
        ok = c.post("/v1/embeddings", json={"model": "m", "input": ["0123456789"]})
        r = c.post("/v1/embeddings", json={"model": "m", "input": ["short", "01234567890"]})
    assert ok.status_code == 200 and r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "context_length_exceeded"
    assert error["message"].startswith("This model's maximum context length is 10 tokens")
    assert "requested 11 tokens (input 1)" in error["message"]
    assert srv.stats()["faults"]["context_limit"] == 1


@pytest.mark.parametrize("mode", CORRUPT_MODES)
def test_corrupt_modes(mode: CorruptMode) -> None:
    with serve(corrupt=mode) as srv, client(srv) as c:
        r = embed(c, 3)
        b64 = c.post(
            "/v1/embeddings", json={"model": "m", "input": ["a", "b"], "encoding_format": "base64"}
        )
    assert r.status_code == 200 and b64.status_code == 200
    assert srv.stats()["faults"]["corrupt"] == 2 and outcomes(srv) == [f"corrupt:{mode}"] * 2
    if mode == "bad-json":
        with pytest.raises(json.JSONDecodeError):
            r.json()
        return
    rows = [d["embedding"] for d in r.json()["data"]]
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in b64.json()["data"]]
    if mode == "wrong-count":
        assert len(rows) == 2 and len(decoded) == 1
    elif mode == "wrong-dim":
        assert {len(v) for v in rows} == {15} and {v.size for v in decoded} == {15}
    else:
        assert b"NaN" in r.content and math.isnan(rows[0][0]) and np.isnan(decoded[0][0])
        assert all(math.isfinite(x) for x in rows[0][1:])


def test_corrupt_rate_hits_a_fraction() -> None:
    with serve(corrupt="wrong-dim", corrupt_rate=0.5, seed=3) as srv, client(srv) as c:
        dims = [len(embed(c).json()["data"][0]["embedding"]) for _ in range(40)]
    assert 5 < dims.count(15) < 35 and dims.count(15) + dims.count(16) == 40
    assert srv.stats()["faults"]["corrupt"] == dims.count(15)


def test_latency_delays_embed_requests_only() -> None:
    with serve(latency_ms=200) as srv, client(srv) as c:
        started = time.monotonic()
        embed(c)
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        c.get("/health")
        assert time.monotonic() - started < 0.15


# --- stats, concurrency, lifecycle -----------------------------------------------------


def test_stats_and_request_log(server: EmbeddingServer) -> None:
    with client(server) as c:
        before = time.monotonic()
        for n in (1, 3, 2):
            embed(c, n)
            time.sleep(0.02)
        c.post("/v1/embeddings", content=b"{")
        stats = c.get("/stats").json()
    log = stats["request_log"]
    assert [(e["n"], e["outcome"]) for e in log] == [
        (1, "ok"),
        (3, "ok"),
        (2, "ok"),
        (0, "invalid"),
    ]
    assert {e["route"] for e in log} == {"/v1/embeddings"}
    times = [e["t"] for e in log]
    assert before <= times[0] and all(b - a >= 0.02 for a, b in itertools.pairwise(times))
    assert stats["inputs"] == 6 and stats["embed_requests"] == 4 and stats["requests"] == 5
    assert stats["faults"] == dict.fromkeys(
        ("status", "stall", "drop", "corrupt", "max_batch", "context_limit"), 0
    )


def test_request_log_keeps_the_last_1000(server: EmbeddingServer) -> None:
    with client(server) as c:
        for i in range(1003):
            c.post("/embed", json={"inputs": ["x"] * (1 + i % 3)})
    log = server.stats()["request_log"]
    assert len(log) == 1000 and log[0]["n"] == 1 + 3 % 3 and server.stats()["inputs"] == 2005


def test_concurrent_requests_from_8_threads(server: EmbeddingServer) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        with client(server) as c:
            for _ in range(10):
                doc = c.post("/v1/embeddings", json={"model": "m", "input": TEXTS}).json()
                ok = np.array_equal(np.array([d["embedding"] for d in doc["data"]], "f4"), EXPECTED)
                with lock:
                    results.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [True] * 80
    stats = server.stats()
    assert stats["embed_requests"] == 80 and stats["connections_accepted"] == 8


def test_stop_is_prompt_idempotent_and_releases_threads() -> None:
    threads_before = threading.active_count()
    srv = EmbeddingServer(dim=16)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = srv.url
    srv.start()
    with pytest.raises(RuntimeError, match="already running"):
        srv.start()
    with client(srv) as c:
        assert embed(c).status_code == 200  # an idle keep-alive connection stays open
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(httpx.TransportError):
            embed(c)
    srv.stop()
    assert threading.active_count() == threads_before
    with pytest.raises(ResourceClosedError):
        srv.start()
    assert srv.stats()["embed_requests"] == 1 and "stopped" in repr(srv)


def test_port_in_use_raises_oserror(server: EmbeddingServer) -> None:
    with pytest.raises(OSError, match="in use"):
        EmbeddingServer(port=server.port).start()


def test_ipv6_loopback() -> None:
    with EmbeddingServer(host="::1", dim=16) as srv, client(srv) as c:
        assert srv.url.startswith("http://[::1]:") and srv.loopback
        assert c.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("127.0.0.2", True), ("0.0.0.0", False)],
)
def test_loopback_tells_whether_other_machines_can_reach_it(host: str, loopback: bool) -> None:
    with EmbeddingServer(host=host, dim=16) as srv:
        assert srv.loopback is loopback
        # Reached over loopback only, whatever the bound address.
        url = f"http://127.0.0.1:{srv.port}" if host == "0.0.0.0" else srv.url
        with httpx.Client(base_url=url, timeout=5) as c:
            assert c.get("/health").status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_rate": 1.5},
        {"stall_rate": -0.1},
        {"fail_rate": 0.6, "drop_rate": 0.6},
        {"status": 200},
        {"status": 600},
        {"fail_first": -1},
        {"max_batch": 0},
        {"context_limit": 0},
        {"latency_ms": -1},
        {"retry_after": float("nan")},
        {"corrupt": "zeros"},
        {"corrupt_rate": 0.5},
        {"fail_rate": float("nan")},
    ],
)
def test_fault_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        FaultConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"port": -1}, {"port": 70000}, {"host": ""}, {"dim": 4}])
def test_server_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        EmbeddingServer(**kwargs)
