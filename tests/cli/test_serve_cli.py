"""``funcpipe serve`` as a real subprocess: port file, health, clean stop on signals,
bounded memory under hostile requests, and a warning when reachable from the network."""

from __future__ import annotations

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

from tests.cli.helpers import CLI, cli_env, run_cli


def wait_for_port(port_file: Path, proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        assert proc.poll() is None, "server exited before listening"
        assert time.monotonic() < deadline, "no port file in time"
        time.sleep(0.02)
    return int(port_file.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_reports_port_answers_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--port-file", str(port_file), "--dim", "32"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        port = wait_for_port(port_file, proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            assert c.get("/health").json() == {"status": "ok"}
            assert len(c.post("/embed", json={"inputs": ["a b"]}).json()[0]) == 32
            # An idle keep-alive connection stays open across the signal.
            proc.send_signal(signum)
            started = time.monotonic()
            out, err = proc.communicate(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "warning" not in err  # loopback: nothing to warn of
    assert out == f"http://127.0.0.1:{port}\n"
    assert port_file.read_text() == f"{port}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["port"]  # no temporary file left
    stats = json.loads(err.strip().splitlines()[-1])["funcpipe_serve_stats"]
    assert stats["requests"] == 2 and stats["inputs"] == 1 and stats["connections_open"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "2"], "fail_rate must be between 0 and 1"),
        (["--corrupt", "zeros"], "corrupt must be one of"),
        (["--port", "70000"], "port must be an integer"),
        (["--port", "abc"], "--port"),
        (["--max-body-mb", "0"], "--max-body-mb must be a positive number"),
        (["--max-inputs", "0"], "max_inputs must be an integer >= 1"),
        (["--header-timeout", "-1"], "header_timeout must be seconds"),
        (["--idle-timeout", "inf"], "idle_timeout must be seconds"),
    ],
)
def test_serve_rejects_bad_flags(args: list[str], message: str) -> None:
    proc = run_cli("serve", *args, timeout=20)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stdout == ""


def test_serve_port_in_use_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), timeout=20)
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def start_serve(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], int]:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--port-file", str(port_file), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        return proc, wait_for_port(port_file, proc)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def stop_serve(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_warns_once_when_reachable_from_the_network(tmp_path: Path) -> None:
    proc, port = start_serve(tmp_path, "--host", "0.0.0.0", "--quiet")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            assert c.get("/health").json() == {"status": "ok"}
    finally:
        out, err = stop_serve(proc)
    assert proc.returncode == 0, err
    assert out == f"http://0.0.0.0:{port}\n"
    (line,) = err.splitlines()
    assert line.startswith("funcpipe: warning: http://0.0.0.0:")
    assert "reachable from the network" in line and "no authentication" in line


def test_limit_flags_reach_the_server(tmp_path: Path) -> None:
    proc, port = start_serve(tmp_path, "--max-inputs", "2", "--max-body-mb", "0.001", "--quiet")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            many = c.post("/embed", json={"inputs": ["a", "b", "c"]})
            big = c.post("/embed", json={"inputs": "x" * 2000})
            ok = c.post("/embed", json={"inputs": ["a", "b"]})
    finally:
        stop_serve(proc)
    assert (many.status_code, big.status_code, ok.status_code) == (413, 413, 200)
    assert "more than 2 inputs" in many.json()["error"]
    assert "over the limit of 1048 bytes" in big.json()["error"]


# --- hostile clients against the real command ------------------------------------------

PEAK_RSS_BOUND_MB = 300  # generous: the server idles near 55 MB


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.fixture
def hostile_target(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], httpx.Client]]:
    """``funcpipe serve`` with its default limits, and a client for it."""
    proc, port = start_serve(tmp_path, "--quiet")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield proc, client
    finally:
        stop_serve(proc)


def post_json(client: httpx.Client, route: str, body: bytes) -> httpx.Response:
    return client.post(route, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.slow
def test_hostile_requests_keep_memory_bounded_and_the_server_serving(
    hostile_target: tuple[subprocess.Popen[str], httpx.Client],
) -> None:
    proc, client = hostile_target
    port = client.base_url.port
    assert port is not None
    million = b",".join([b'"a"'] * 1_000_000)  # a million tiny strings: 4 MB
    answers: dict[str, Any] = {}
    peaks: dict[str, float] = {}

    def attack(name: str, send: Any) -> None:
        answers[name] = send()
        peaks[name] = peak_rss_mb(proc.pid)
        assert peaks[name] < PEAK_RSS_BOUND_MB, f"after {name}: {peaks}"

    attack("million inputs, openai", lambda: post_json(
        client, "/v1/embeddings", b'{"model":"m","input":[' + million + b"]}"
    ))  # fmt: skip
    attack("million inputs, tei", lambda: post_json(
        client, "/embed", b'{"inputs":[' + million + b"]}"
    ))  # fmt: skip
    attack("one 50 MB input", lambda: post_json(
        client, "/v1/embeddings", b'{"model":"m","input":"' + b"a" * 50_000_000 + b'"}'
    ))  # fmt: skip
    attack("a terabyte Content-Length", lambda: raw_post(port, 10**12))
    attack("one 7 MB input", lambda: post_json(
        client, "/api/embed", b'{"model":"m","input":"' + b"a" * 7_000_000 + b'"}'
    ))  # fmt: skip
    attack("6 M characters in 2000 inputs", lambda: client.post(
        "/v1/embeddings", json={"model": "m", "input": ["a" * 3000] * 2000}
    ))  # fmt: skip
    # The most a request may ask: 2048 inputs, 1,198,080 characters.
    attack("the largest allowed request", lambda: client.post(
        "/v1/embeddings", json={"model": "m", "input": ["word " * 117] * 2048}
    ))  # fmt: skip
    attack("a normal request", lambda: client.post(
        "/v1/embeddings", json={"model": "m", "input": ["still serving"]}
    ))  # fmt: skip
    stats = client.get("/stats").json()

    codes = {name: (r if isinstance(r, int) else r.status_code) for name, r in answers.items()}
    assert codes == {
        "million inputs, openai": 400,
        "million inputs, tei": 413,
        "one 50 MB input": 413,
        "a terabyte Content-Length": 413,
        "one 7 MB input": 413,
        "6 M characters in 2000 inputs": 400,
        "the largest allowed request": 200,
        "a normal request": 200,
    }
    assert answers["million inputs, openai"].json()["error"]["code"] == "too_many_inputs"
    assert len(answers["the largest allowed request"].json()["data"]) == 2048
    assert stats["limits"] == {
        "max_body_bytes": 2,
        "max_inputs": 2,
        "max_input_chars": 1,
        "max_total_chars": 1,
        "max_connections": 0,
    }


def raw_post(port: int, length: int) -> int:
    """POST headers declaring ``length`` bytes, send none, and return the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        return int(sock.recv(65536).split()[1])
