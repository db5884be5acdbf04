"""Run the real ``funcpipe`` command in a subprocess and read what it wrote."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Bytes no encoding setting reads: a UTF-16 byte-order mark, text, then a lone low
# surrogate. Invalid UTF-8 no longer fails (``auto`` falls back), so a test that needs a
# file failing to decode (READ/DECODE) writes these.
UNDECODABLE = b"\xff\xfe" + "undecodable text ".encode("utf-16-le") + b"\x00\xdc"
SAMPLE_CORPUS = REPO / "sample_corpus"
CLI = [sys.executable, "-m", "funcpipe_rag.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}
    env.update({"NO_COLOR": "1", "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(
    *args: str, stdin: bytes | None = None, timeout: float = 60, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*CLI, *args],
        input=stdin.decode("utf-8", "surrogateescape") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
        cwd=cwd,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def read_report(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["schema"] == "funcpipe.run/1"
    return doc


def count_rows(db: Path, table: str = "chunks") -> int:
    conn = sqlite3.connect(db)
    try:
        n: int = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return n
    finally:
        conn.close()


def assert_clean(report: dict[str, Any]) -> None:
    """Nothing left open: the ledger and the operating system agree."""
    res = report["resources"]
    assert res["open_total"] == 0, res
    assert res["leak"] is False, res
    assert res["cleanup_failures"] == []
    for kind, counts in res["by_kind"].items():
        assert counts["acquired"] == counts["released"], kind
    os_ = res["os"]
    assert os_["fds_after"] <= os_["fds_before"]
    assert os_["sockets_after"] <= os_["sockets_before"]
    assert os_["threads_after"] <= os_["threads_before"]
    assert os_["children_after"] <= os_["children_before"]


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def prose(seed: int, paragraphs: int = 6) -> str:
    """Deterministic text with paragraphs and sentences, unique per seed."""
    words = ["stream", "chunk", "index", "vector", "breaker", "socket", "retry", "commit",
             "garden", "recipe", "ledger", "closing", "pipeline", "server", "window"]  # fmt: skip
    out = []
    for p in range(paragraphs):
        sentences = []
        for s in range(5):
            n = 8 + (seed + p + s) % 7
            body = " ".join(words[(seed * 7 + p * 3 + s + i) % len(words)] for i in range(n))
            sentences.append(f"Item {seed}-{p}-{s}: {body}.")
        out.append(" ".join(sentences))
    return "\n\n".join(out) + "\n"
