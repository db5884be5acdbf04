"""Settings declared once: flags, environment, TOML, configs/default.toml and the README
all follow from the declaration; the index remembers how it was built."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from funcpipe_rag.cli.app import app
from funcpipe_rag.config import SETTINGS, Setting, default_toml, markdown_table
from funcpipe_rag.embedders.registry import KINDS
from funcpipe_rag.index import index_name, is_postgres
from funcpipe_rag.serve import EmbeddingServer
from tests.cli.helpers import (
    CLI,
    REPO,
    UNDECODABLE,
    cli_env,
    prose,
    read_report,
    run_cli,
    write_tree,
)
from tests.indexes import rows


def help_text(command: str) -> str:
    proc = run_cli(command, "--help", COLUMNS="250")
    assert proc.returncode == 0
    return proc.stdout


def test_every_setting_is_a_flag_with_its_default_and_allowed_values() -> None:
    pages = {c: help_text(c) for c in ("ingest", "search", "eval", "verify", "config")}
    for s in SETTINGS:
        for command, page in pages.items():
            flag = re.compile(rf"^│ {s.flag}(?![-\w])")  # an option row, not prose
            line = next((x for x in page.splitlines() if flag.search(x)), None)
            if command not in s.meta.commands:
                assert line is None, (command, s.flag)
                continue
            assert line is not None, (command, s.flag)
            assert f"[default: {s.describe_default()}]" in line, line
            if s.meta.choices:
                assert "|".join(s.meta.choices) in line, line


RUNNER = CliRunner()


def test_each_setting_is_reached_by_its_flag_env_and_toml_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no funcpipe.db of the working folder leaks in

    def other_value(s: Setting) -> str:
        """A valid value that differs from the default."""
        if s.meta.choices:
            return next(c for c in reversed(s.meta.choices) if c != s.default)
        if s.kind is int:
            return str(s.default + 1)
        if s.kind is float:
            return str(s.default / 2)
        if s.kind is bool:
            return "true"
        if s.kind is list:
            return "*.md"
        if s.name == "encoding":
            return "cp1252"
        return "http://127.0.0.1:9" if s.name == "url" else "x.db"

    for s in SETTINGS:
        raw = other_value(s)
        toml_value = raw if s.kind in (int, float) else (
            "true" if s.kind is bool else f'["{raw}"]' if s.kind is list else f'"{raw}"'
        )  # fmt: skip
        cfg = tmp_path / f"{s.name}.toml"
        cfg.write_text(f"[{s.section}]\n{s.name} = {toml_value}\n")
        extra: dict[str, str] = {}  # what the other embedder needs besides itself
        if s.name == "embedder":
            kind = KINDS[raw]
            extra.update({"url": "http://127.0.0.1:9"} if kind.needs_url else {})
            extra.update({"model": "m"} if kind.needs_model else {})
        extra_flags = [arg for name, value in extra.items() for arg in (f"--{name}", value)]
        extra_env = {f"FUNCPIPE_{name.upper()}": value for name, value in extra.items()}
        flag_args = [s.flag] if s.kind is bool else [s.flag, raw]
        for how, args, env in (
            ("flag", flag_args + extra_flags, {}),
            ("env", [], {s.env: raw, **extra_env}),
            ("file", ["--config", str(cfg), *extra_flags], {}),
        ):
            clean = {k: None for k in os.environ if k.startswith("FUNCPIPE_")}
            result = RUNNER.invoke(app, ["config", "--json", *args], env={**clean, **env})
            assert result.exit_code == 0, (s.name, how, result.output)
            got = json.loads(result.stdout)[s.name]
            assert got["origin"].startswith(how), (s.name, got)


def test_default_toml_and_readme_table_are_the_declarations_own() -> None:
    assert (REPO / "configs" / "default.toml").read_text() == default_toml()
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- settings:begin -->\n")[1].split("<!-- settings:end -->")[0]
    assert block == markdown_table()


@pytest.fixture
def http_index(tmp_path: Path, index_target: str) -> Iterator[tuple[Path, str, EmbeddingServer]]:
    with EmbeddingServer(dim=96) as server:
        yield _build_http_index(tmp_path, server, index_target)


def _build_http_index(
    tmp_path: Path, server: EmbeddingServer, db: str
) -> tuple[Path, str, EmbeddingServer]:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 8) for i in range(6)})
    proc = run_cli("ingest", str(tree), "--index", db, "--embedder", "openai",
                   "--url", server.url, "--model", "m1", "--chunk-size", "500",
                   "--overlap", "50", "--report", "none")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return tree, db, server


def test_a_plain_command_uses_what_the_index_remembers(
    http_index: tuple[Path, str, EmbeddingServer], tmp_path: Path
) -> None:
    tree, db, server = http_index
    (tree / "f0.md").write_text(prose(40, 8))
    report = tmp_path / "r.json"
    plain = run_cli("ingest", str(tree), "--index", str(db), "--report", "none",
                    "--report-file", str(report))  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert read_report(report)["chunks"]["embedded"] > 0  # through the same server
    search = run_cli("search", "stream chunk", "--index", str(db), "--json")
    assert search.returncode == 0, search.stderr
    assert search.stdout.strip()
    assert run_cli("verify", "--index", str(db), str(tree)).returncode == 0
    shown = json.loads(run_cli("config", "--json", "--index", str(db)).stdout)
    for name, value in (("embedder", "openai"), ("model", "m1"), ("chunk_size", 500),
                        ("overlap", 50), ("url", server.url)):  # fmt: skip
        assert shown[name] == {"value": value, "origin": f"index {index_name(db)}"}, name
    # FUNCPIPE_INDEX reaches search and verify too.
    env_search = run_cli("search", "stream chunk", "--json", FUNCPIPE_INDEX=str(db))
    assert env_search.stdout == search.stdout
    assert run_cli("verify", str(tree), FUNCPIPE_INDEX=str(db)).returncode == 0


def test_a_conflicting_setting_is_refused_with_both_values_and_the_way_out(
    http_index: tuple[Path, str, EmbeddingServer],
) -> None:
    tree, db, _ = http_index
    for args, env in (
        (("--chunk-size", "600"), {}),
        ((), {"FUNCPIPE_CHUNK_SIZE": "600"}),
        (("--model", "m2"), {}),
    ):
        proc = run_cli("ingest", str(tree), "--index", str(db), *args, **env)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "--reembed" in lines[0]
        assert ("600" in lines[0] and "500" in lines[0]) or ("m2" in lines[0])
    rebuilt = run_cli("ingest", str(tree), "--index", str(db), "--chunk-size", "600",
                      "--reembed", "--report", "none")  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr  # the server came from the index
    shown = json.loads(run_cli("config", "--json", "--index", str(db)).stdout)
    assert shown["chunk_size"]["value"] == 600 and shown["embedder"]["value"] == "openai"


def test_the_url_is_remembered_without_its_credentials(tmp_path: Path, index_target: str) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 4)})
    db = index_target
    with EmbeddingServer() as server:
        url = server.url.replace("http://", "http://user:s3cret@")
        proc = run_cli("ingest", str(tree), "--index", str(db), "--embedder", "tei",
                       "--url", url, "--report", "none")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    if is_postgres(db):
        assert "s3cret" not in repr(rows(db, "SELECT key, value FROM meta"))
    else:
        assert b"s3cret" not in Path(db).read_bytes()
    shown = json.loads(run_cli("config", "--json", "--index", str(db)).stdout)
    assert shown["url"]["value"] == server.url


def test_report_json_writes_only_the_json_document(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 4), "bad.txt": UNDECODABLE})
    proc = run_cli("ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report", "json")
    assert proc.returncode == 1
    assert json.loads(proc.stderr)["status"] == "partial"  # nothing but the document


def test_no_index_runs_say_written_not_stored(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 4), "bad.txt": UNDECODABLE})
    proc = run_cli("ingest", str(tree), "--no-index", "--jsonl")
    assert proc.returncode == 1
    assert "stored" not in proc.stderr and "written" in proc.stderr


def test_python_dash_m_and_version_name_the_key_dependencies() -> None:
    proc = subprocess.run([sys.executable, "-m", "funcpipe_rag", "--version"],
                          capture_output=True, text=True, env=cli_env(), check=False)  # fmt: skip
    assert proc.returncode == 0
    for name in ("funcpipe", "python", "typer", "rich", "httpx", "numpy"):
        assert name in proc.stdout


def test_a_report_in_a_log_is_not_wrapped(tmp_path: Path) -> None:
    write_tree(tmp_path / "deeply" / "nested" / "folder" / "with" / "long" / "names",
                      {"a-file-with-a-long-name-too.txt": b"caf\xe9 " * 3000})  # fmt: skip
    env = {k: v for k, v in cli_env().items() if k != "COLUMNS"}
    proc = subprocess.run([*CLI, "ingest", str(tmp_path / "deeply"), "--index",
                           str(tmp_path / "x.db"), "--encoding", "utf-8"], capture_output=True,
                          text=True, env=env, check=False)  # fmt: skip
    assert proc.returncode == 1
    (line,) = [x for x in proc.stderr.splitlines() if "READ/DECODE" in x and "byte" in x]
    assert line.rstrip().endswith("at byte 3")  # one line, however long
