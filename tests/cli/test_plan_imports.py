"""``funcpipe ingest --plan`` imports only what a plan needs (a structural check, not a
timed one): no numpy (no vector is touched), no HTTP client, no Rich (nothing is drawn
but one plain line), no pydantic (Typer's validators for parameters left unset), no
optional backend or model runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import cli_env, prose, run_cli, write_tree

NEVER_IN_A_PLAN = ("numpy", "httpx", "httpcore", "rich", "pydantic", "onnxruntime", "psycopg")


def _imported(*args: str, cwd: Path) -> set[str]:
    """The top-level packages a ``funcpipe`` process imported (``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "funcpipe_rag", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "funcpipe_rag" in names  # the parsing above read something
    return names


def test_a_plan_of_an_unchanged_tree_imports_no_vector_http_or_drawing_library(
    tmp_path: Path,
) -> None:
    tree = write_tree(tmp_path / "docs", {f"d{i}.md": prose(i) for i in range(3)} | {"a.txt": "x"})
    db = tmp_path / "plan.db"
    assert run_cli("ingest", str(tree), "--index", str(db), "--quiet").returncode == 0
    imported = _imported("ingest", str(tree), "--index", str(db), "--plan", cwd=tmp_path)
    assert sorted(imported & set(NEVER_IN_A_PLAN)) == []


def test_a_plan_of_new_files_does_not_import_them_either(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"new.txt": prose(7)})
    imported = _imported(
        "ingest", str(tree), "--index", str(tmp_path / "none.db"), "--plan", cwd=tmp_path
    )
    assert sorted(imported & set(NEVER_IN_A_PLAN)) == []


def test_the_check_sees_an_import_when_there_is_one(tmp_path: Path) -> None:
    # The same parsing on a command that does draw with Rich and embed with numpy.
    tree = write_tree(tmp_path / "docs", {"a.txt": prose(1)})
    imported = _imported(
        "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report", "text", cwd=tmp_path
    )
    assert {"numpy", "rich"} <= imported


def test_an_http_ingest_does_not_import_httpxs_own_command_line(tmp_path: Path) -> None:
    # httpx's CLI pulls in click, Rich and Pygments: a third of importing httpx, paid in
    # every run over HTTP, for nothing (funcpipe draws with Rich itself, but later and
    # only part of it).
    from funcpipe_rag.serve import EmbeddingServer

    tree = write_tree(tmp_path / "docs", {"a.txt": prose(1)})
    with EmbeddingServer() as server:
        imported = _imported(
            "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--embedder", "openai",
            "--model", "m", "--url", server.url, "--quiet", "--report", "none",
            cwd=tmp_path,
        )  # fmt: skip
    assert "httpx" in imported
    assert sorted(imported & {"click", "pygments"}) == []
