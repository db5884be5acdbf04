"""``funcpipe serve`` as a real subprocess: port file, health, clean stop on signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

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
    assert "Traceback" not in err
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
