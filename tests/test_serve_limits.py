"""funcpipe_rag.serve's limits over real loopback sockets: sizes, deadlines, connections.

Each hostile client here is a raw socket doing what a real one can: trickling bytes,
going silent, never reading, opening one connection too many.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from funcpipe_rag.errors import ConfigError
from funcpipe_rag.serve import LIMIT_KINDS, TIMEOUT_KINDS, EmbeddingServer, ServerLimits

BOUND_S = 10.0  # generous: every deadline under test is well under a second


@pytest.fixture
def small() -> Iterator[EmbeddingServer]:
    limits = ServerLimits(
        max_body_bytes=4096, max_inputs=4, max_input_chars=100, max_total_chars=250
    )
    with EmbeddingServer(dim=16, limits=limits) as srv:
        yield srv


def quick(**limits: Any) -> EmbeddingServer:
    """A server whose deadlines are short, for the timeout tests."""
    return EmbeddingServer(dim=16, limits=ServerLimits(**limits)).start()


def connect(srv: EmbeddingServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=BOUND_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; TimeoutError if it never does."""
    data = b""
    sock.settimeout(BOUND_S)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, headers, body) read by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def read_answer_from(data: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


def counts(srv: EmbeddingServer, key: str) -> dict[str, int]:
    return {k: v for k, v in srv.stats()[key].items() if v}


def wait_until(predicate: Any, timeout: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# --- sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "kind", "openai_code"),
    [
        (["a"] * 5, "max_inputs", "too_many_inputs"),
        (["a", "x" * 101], "max_input_chars", "context_length_exceeded"),
        (["x" * 100, "x" * 100, "x" * 51], "max_total_chars", "max_tokens_per_request"),
    ],
)
def test_size_limits_answer_in_each_route_style_and_keep_the_connection(
    small: EmbeddingServer, texts: list[str], kind: str, openai_code: str
) -> None:
    with httpx.Client(base_url=small.url, timeout=BOUND_S) as c:
        openai = c.post("/v1/embeddings", json={"model": "m", "input": texts})
        ollama = c.post("/api/embed", json={"model": "m", "input": texts})
        tei = c.post("/embed", json={"inputs": texts})
        ok = c.post("/embed", json={"inputs": texts[:1]})  # the same connection still works
    assert openai.status_code == 400
    assert openai.json()["error"]["code"] == openai_code
    assert openai.json()["error"]["type"] == "invalid_request_error"
    assert ollama.status_code == 413 and isinstance(ollama.json()["error"], str)
    assert tei.status_code == 413 and tei.json()["error_type"] == "validation"
    assert ok.status_code == 200 and small.stats()["connections_accepted"] == 1
    assert counts(small, "limits") == {kind: 3}
    log = small.stats()["request_log"]
    assert [(e["outcome"], e["n"]) for e in log] == [(f"limit:{kind}", 0)] * 3 + [("ok", 1)]
    assert small.stats()["inputs"] == 1


def test_at_the_limits_is_allowed(small: EmbeddingServer) -> None:
    texts = ["x" * 100, "x" * 100, "x" * 25, "x" * 25]  # 4 inputs, 250 characters
    with httpx.Client(base_url=small.url, timeout=BOUND_S) as c:
        r = c.post("/v1/embeddings", json={"model": "m", "input": texts})
    assert r.status_code == 200 and len(r.json()["data"]) == 4


def test_an_oversized_body_is_refused_from_content_length_alone(small: EmbeddingServer) -> None:
    with connect(small) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000000\r\n\r\n"  # a terabyte, never sent
        )
        status, headers, body = read_answer(sock)
        assert read_until_closed(sock) == b""  # and the server closes
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert "1000000000000 bytes" in json.loads(body)["error"]["message"]
    assert counts(small, "limits") == {"max_body_bytes": 1}
    assert [e["outcome"] for e in small.stats()["request_log"]] == ["limit:max_body_bytes"]


def test_a_client_sending_an_oversized_body_still_reads_the_413(small: EmbeddingServer) -> None:
    # The server refuses before reading the body, then discards what keeps arriving, so
    # the client can finish sending and read the answer instead of a reset.
    body = b'{"model": "m", "input": "' + b"x" * 5_000_000 + b'"}'
    with httpx.Client(base_url=small.url, timeout=BOUND_S) as c:
        r = c.post("/api/embed", content=body)
        assert r.status_code == 413 and "over the limit of 4096 bytes" in r.json()["error"]
        assert c.get("/health").status_code == 200  # on a new connection
    assert small.stats()["connections_accepted"] == 2


def test_a_refused_body_is_drained_not_reset(small: EmbeddingServer) -> None:
    # Closing a socket with unread bytes sends a reset, which can destroy the 413 on its
    # way; the server reads and discards the rest instead, so the client can send it all.
    body = b"x" * 4_000_000
    with connect(small) as sock:
        sock.sendall(
            f"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        status, headers, _ = read_answer(sock)
        assert status == 413 and headers["connection"] == "close"
        sock.sendall(body)  # no reset, no broken pipe
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == b""


def test_expect_100_continue_gets_the_413_instead(small: EmbeddingServer) -> None:
    with connect(small) as sock:
        sock.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5000\r\n\r\n"
        )
        status, _, body = read_answer(sock)
    assert status == 413 and json.loads(body)["error_type"] == "validation"


@pytest.mark.parametrize("value", ["+5", "1_0", "5, 6", "-1", "٣", "x"])
def test_a_bad_content_length_gets_400(small: EmbeddingServer, value: str) -> None:
    with connect(small) as sock:
        sock.sendall(f"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n".encode())
        status, headers, _ = read_answer(sock)
    assert status == 400 and headers["connection"] == "close"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        # 60 lines of 2 KB: each line and their count are within http.server's own caps
        # (64 KiB a line, 100 lines), only their 120 KB total is over the limit.
        (b"GET /health HTTP/1.1\r\n" + (b"X-Pad: " + b"y" * 2000 + b"\r\n") * 60 + b"\r\n", 431),
        (b"GET /" + b"y" * 100_000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_a_head_over_64_kib_is_refused(small: EmbeddingServer, head: bytes, status: int) -> None:
    with connect(small) as sock:
        sock.sendall(head)
        data = read_until_closed(sock)
    assert data.startswith(f"HTTP/1.1 {status} ".encode())


def test_headers_just_under_64_kib_are_fine(small: EmbeddingServer) -> None:
    with connect(small) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"y" * 60_000 + b"\r\n\r\n"
        )
        assert read_answer(sock)[0] == 200


# --- deadlines -------------------------------------------------------------------------


def test_half_a_request_line_is_cut_at_the_header_timeout() -> None:
    with quick(header_timeout=0.3) as srv, connect(srv) as sock:
        sock.sendall(b"GET /hea")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in data
    assert counts(srv, "timeouts") == {"header": 1}
    wait_until(lambda: srv.stats()["connections_open"] == 0)


def test_a_silent_new_connection_is_closed_without_an_answer() -> None:
    with quick(header_timeout=0.3) as srv, connect(srv) as sock:
        assert read_until_closed(sock) == b""
    assert counts(srv, "timeouts") == {"header": 1}


def test_a_client_trickling_its_headers_is_cut_at_the_deadline() -> None:
    # One byte every 20 ms: every read is quick, so only a deadline for the whole head
    # (not a timeout per read) stops it. The full head would take over 40 s.
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 200 + b"\r\n"
    started = time.monotonic()
    with quick(header_timeout=0.5) as srv, connect(srv) as sock:
        cut = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            if select.select([sock], [], [], 0)[0]:  # an answer (408) or the close
                cut = True
                break
            time.sleep(0.02)
            if time.monotonic() - started > BOUND_S:
                break
        assert cut, "the server kept reading a trickled head"
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < BOUND_S
    assert counts(srv, "timeouts") == {"header": 1}


def test_a_body_that_stops_arriving_is_cut_at_the_body_timeout() -> None:
    with quick(body_timeout=0.3) as srv, connect(srv) as sock:
        sock.sendall(b'POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"inp')
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ") and b"body did not arrive" in data
    assert counts(srv, "timeouts") == {"body": 1}


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    with quick(idle_timeout=0.3) as srv, connect(srv) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200
        assert srv.stats()["connections_open"] == 1
        assert read_until_closed(sock) == b""  # no 408 to a client between requests
        wait_until(lambda: srv.stats()["connections_open"] == 0)
    assert counts(srv, "timeouts") == {"idle": 1}


def test_keep_alive_requests_within_the_idle_timeout_share_a_connection() -> None:
    with quick(idle_timeout=5, header_timeout=0.3) as srv:
        with httpx.Client(base_url=srv.url, timeout=BOUND_S) as c:
            for _ in range(3):
                time.sleep(0.4)  # longer than the header timeout: that one starts per request
                assert c.get("/health").status_code == 200
        assert srv.stats()["connections_accepted"] == 1 and counts(srv, "timeouts") == {}


def test_a_client_that_never_reads_its_answer_is_let_go() -> None:
    # 2048 inputs at dim 384 is a ~16 MB answer: far more than the socket buffers hold.
    limits = ServerLimits(body_timeout=0.5)
    body = json.dumps({"model": "m", "input": ["x"] * 2048}).encode()
    with EmbeddingServer(limits=limits) as srv, socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        head = f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        wait_until(lambda: srv.stats()["timeouts"]["write"] == 1)
        wait_until(lambda: srv.stats()["connections_open"] == 0)


# --- connections -----------------------------------------------------------------------


def test_connections_over_the_cap_get_503_and_a_freed_slot_is_reused() -> None:
    with quick(max_connections=2) as srv:
        first = httpx.Client(base_url=srv.url, timeout=BOUND_S)
        with first, httpx.Client(base_url=srv.url, timeout=BOUND_S) as second:
            assert first.get("/health").status_code == 200  # two kept-alive connections
            assert second.get("/health").status_code == 200
            with connect(srv) as extra:
                data = read_until_closed(extra)  # answered at once, without a request
            status, _, body = read_answer_from(data)
            assert status == 503 and b"Retry-After: 1\r\n" in data
            assert json.loads(body)["error"]["code"] == "server_overloaded"
            assert srv.stats()["connections_open"] == 2
            first.close()
            wait_until(lambda: srv.stats()["connections_open"] == 1)
            with httpx.Client(base_url=srv.url, timeout=BOUND_S) as third:
                assert third.get("/health").status_code == 200
    assert counts(srv, "limits") == {"max_connections": 1}
    assert srv.stats()["connections_accepted"] == 3


def test_stop_is_prompt_with_every_kind_of_slow_client_connected() -> None:
    threads_before = threading.active_count()
    srv = EmbeddingServer(dim=16).start()  # the default, long deadlines
    socks = [connect(srv) for _ in range(4)]
    try:
        half, idle, slow_body, refused = socks
        half.sendall(b"GET /hea")
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(idle)[0] == 200
        slow_body.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        refused.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        assert read_answer(refused)[0] == 413  # the server now lingers, discarding
        wait_until(lambda: srv.stats()["connections_open"] == 4)
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2.0
        for sock in socks:
            assert read_until_closed(sock) == b""  # every one sees the close
    finally:
        for sock in socks:
            sock.close()
    assert threading.active_count() == threads_before
    assert srv.stats()["connections_open"] == 0


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_body_bytes": 0},
        {"max_inputs": -1},
        {"max_input_chars": 1.5},
        {"max_total_chars": True},
        {"max_connections": 0},
        {"header_timeout": 0},
        {"body_timeout": float("inf")},
        {"idle_timeout": float("nan")},
        {"idle_timeout": "5"},
    ],
)
def test_server_limits_reject_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ServerLimits(**kwargs)


def test_stats_count_every_kind_from_zero() -> None:
    with EmbeddingServer(dim=16) as srv:
        stats = srv.stats()
    assert stats["limits"] == dict.fromkeys(LIMIT_KINDS, 0)
    assert stats["timeouts"] == dict.fromkeys(TIMEOUT_KINDS, 0)
    assert srv.limits == ServerLimits()
