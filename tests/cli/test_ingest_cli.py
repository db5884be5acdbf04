"""`funcpipe ingest` through the real command: exit codes, the leak report, the JSON
summary against the index, pipelines, determinism and clear usage errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from funcpipe_rag.cli.app import app
from tests.cli.helpers import (
    CLI,
    SAMPLE_CORPUS,
    UNDECODABLE,
    assert_clean,
    cli_env,
    count_rows,
    prose,
    read_report,
    run_cli,
    write_tree,
)
from tests.indexes import count


@pytest.fixture
def clean_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "docs", {f"d{i // 4}/f{i}.md": prose(i) for i in range(12)})


def ingest(
    tree: Path, tmp_path: Path, *extra: str, index: str = ""
) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "report.json"
    proc = run_cli(
        "ingest", str(tree), "--index", index or str(tmp_path / "x.db"),
        "--report-file", str(report), *extra,
    )  # fmt: skip
    return proc, read_report(report)


def test_exit_0_everything_stored_and_summary_matches_index(
    clean_tree: Path, tmp_path: Path, index_target: str
) -> None:
    proc, report = ingest(clean_tree, tmp_path, index=index_target)
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok" and report["exit_code"] == 0
    assert report["files"]["seen"] == report["files"]["ingested"] == 12
    assert report["chunks"]["stored"] == count(index_target) > 12
    assert report["chunks"]["embedded"] == report["chunks"]["stored"]
    assert_clean(report)
    # The text report is on stderr: the leak table and the verdict.
    assert "Resources (leak report)" in proc.stderr
    assert "no leaks" in proc.stderr
    assert proc.stdout == ""  # stdout carries data only


def test_exit_1_some_items_failed(clean_tree: Path, tmp_path: Path) -> None:
    (clean_tree / "bad.txt").write_bytes(UNDECODABLE)
    proc, report = ingest(clean_tree, tmp_path)
    assert proc.returncode == 1
    assert report["status"] == "partial"
    assert report["errors"]["by_code"] == {"READ/DECODE": 1}
    assert report["files"]["failed"] == 1 and report["files"]["ingested"] == 12
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db")
    assert_clean(report)
    assert "READ/DECODE" in proc.stderr


def test_the_sample_corpus_ingests_with_skips_reported(tmp_path: Path) -> None:
    proc, report = ingest(SAMPLE_CORPUS, tmp_path)
    # Its Latin-1 file is read (and recorded); its corrupt PDF fails on purpose, alone.
    assert proc.returncode == 1, proc.stderr
    assert report["errors"]["by_code"] == {"READ/CORRUPT": 1}
    assert [Path(s["path"]).name for s in report["errors"]["samples"]] == ["corrupt.pdf"]
    assert report["skipped"]["by_code"] == {"SKIP/EMPTY": 1, "SKIP/BINARY": 1}
    assert report["files"]["ingested"] >= 40
    assert report["chunks"]["stored"] == count_rows(tmp_path / "x.db") >= 300
    assert_clean(report)
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        encodings = dict(conn.execute("SELECT path, encoding FROM documents").fetchall())
    finally:
        conn.close()
    by_name = {Path(p).name: e for p, e in encodings.items()}
    assert by_name["latin1-notes.txt"] == "cp1252"
    assert by_name["glossaire-ancien.htm"] == "cp1252"  # its <meta> says ISO-8859-1
    assert set(report["files"]["by_reader"]) == {
        "docx",
        "html",
        "markdown",
        "notebook",
        "pdf",
        "text",
    }


def test_exit_3_breaker_trips_and_keeps_what_was_stored(tmp_path: Path, index_target: str) -> None:
    files: dict[str, str | bytes] = {f"a{i:02}.md": prose(i, 2) for i in range(6)}
    files.update({f"b{i:02}.txt": UNDECODABLE for i in range(30)})
    tree = write_tree(tmp_path / "docs", files)
    proc, report = ingest(
        tree, tmp_path, "--min-samples", "10", "--max-rate", "0.2", index=index_target
    )
    assert proc.returncode == 3, proc.stderr
    assert report["status"] == "breaker"
    breaker = report["breaker"]
    assert breaker["code"] == "BREAK/ERR_RATE"
    assert breaker["n_err"] / breaker["total"] > 0.2 and breaker["total"] >= 10
    # It stopped early: not every bad file was even read.
    assert report["errors"]["by_code"]["READ/DECODE"] < 30
    assert report["chunks"]["stored"] == count(index_target) > 0
    assert_clean(report)
    assert "circuit breaker tripped" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-rate", "1.5"], "max_rate must be within"),
        (["--chunk-size", "0"], "chunk_size must be within [1, 1000000], got 0"),
        (["--overlap", "900"], "overlap must be smaller than chunk_size"),
        (["--embedder", "nope"], "Invalid value for '--embedder'"),
        (["--config", "/nonexistent.toml"], "config file not found"),
        (["--batch-size", "abc"], "Invalid value for '--batch-size'"),
    ],
)
def test_exit_2_usage_errors_are_one_clear_line(
    clean_tree: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    proc = run_cli("ingest", str(clean_tree), "--index", str(tmp_path / "x.db"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_exit_2_an_index_of_another_vector_space_is_refused(
    clean_tree: Path, tmp_path: Path
) -> None:
    proc, _ = ingest(clean_tree, tmp_path)
    assert proc.returncode == 0
    rows = count_rows(tmp_path / "x.db")
    proc = run_cli("ingest", str(clean_tree), "--index", str(tmp_path / "x.db"), "--dim", "256")
    assert proc.returncode == 2
    assert "dim = 256" in proc.stderr and "dim = 384" in proc.stderr and "--reembed" in proc.stderr
    assert count_rows(tmp_path / "x.db") == rows


def test_closed_stdout_pipe_ends_quietly_with_resources_released(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    script = (
        f"{' '.join(CLI)} ingest {SAMPLE_CORPUS} --jsonl --no-index --report none "
        f'--report-file {report} | head -n 1; echo "status=${{PIPESTATUS[0]}}" >&2'
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        check=False,
    )
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert "status=141" in proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {"chunk_id", "path", "doc_id", "start", "end", "text"} <= record.keys()
    doc = read_report(report)
    assert doc["status"] == "interrupted" and doc["reason"] == "stdout closed"
    assert doc["exit_code"] == 141
    assert_clean(doc)


def test_two_runs_give_identical_chunk_ids_and_vectors(clean_tree: Path, tmp_path: Path) -> None:
    outs = [
        run_cli("ingest", str(clean_tree), "--no-index", "--jsonl", "--with-vectors", "--quiet")
        for _ in range(2)
    ]
    assert outs[0].returncode == outs[1].returncode == 0
    assert outs[0].stdout == outs[1].stdout
    records = [json.loads(line) for line in outs[0].stdout.splitlines()]
    assert len(records) > 12
    assert all(len(r["embedding"]) == 384 for r in records)
    assert len({r["chunk_id"] for r in records}) == len(records)


def test_jsonl_records_are_the_stored_chunks(clean_tree: Path, tmp_path: Path) -> None:
    proc, report = ingest(clean_tree, tmp_path, "--jsonl", "--report", "none")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == report["chunks"]["stored"] == count_rows(tmp_path / "x.db")
    source = (clean_tree / "d0" / "f0.md").read_text()
    first = next(r for r in records if r["path"].endswith("f0.md"))
    assert source[first["start"] : first["end"]] == first["text"]
    assert "embedding" not in first


def test_paths_from_stdin_newline_and_nul(clean_tree: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in clean_tree.rglob("*.md"))[:3]
    for sep, flag in ((b"\n", []), (b"\0", ["-0"])):
        report = tmp_path / "r.json"
        proc = run_cli(
            "ingest", "-", *flag, "--no-index", "--report-file", str(report),
            stdin=sep.join(p.encode() for p in files) + sep,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert read_report(report)["files"]["ingested"] == 3


def test_report_json_on_stderr_and_quiet(clean_tree: Path, tmp_path: Path) -> None:
    proc = run_cli("ingest", str(clean_tree), "--index", str(tmp_path / "x.db"), "--report", "json")
    doc = json.loads(proc.stderr)
    assert doc["schema"] == "funcpipe.run/1" and doc["exit_code"] == proc.returncode == 0
    quiet = run_cli("ingest", str(clean_tree), "--index", str(tmp_path / "y.db"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_environment_and_config_file_precedence(clean_tree: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[chunker]\nchunk_size = 300\noverlap = 30\n[ingest]\nindex = "from-config.db"\n'
    )
    proc = run_cli(
        "ingest", str(clean_tree), "--config", str(cfg), "--report", "json", cwd=tmp_path
    )
    assert json.loads(proc.stderr)["index"] == "from-config.db"
    proc = run_cli(
        "ingest", str(clean_tree), "--config", str(cfg), "--report", "json", cwd=tmp_path,
        FUNCPIPE_INDEX="from-env.db",
    )  # fmt: skip
    assert json.loads(proc.stderr)["index"] == "from-env.db"
    proc = run_cli(
        "ingest", str(clean_tree), "--config", str(cfg), "--index", "from-flag.db",
        "--report", "json", cwd=tmp_path, FUNCPIPE_INDEX="from-env.db",
    )  # fmt: skip
    assert json.loads(proc.stderr)["index"] == "from-flag.db"


INGEST_FLAGS = [
    "--index", "--no-index", "--jsonl", "--with-vectors", "--report", "--report-file",
    "--quiet", "--embedder", "--url", "--model", "--dim", "--max-rate", "--min-samples",
    "--batch-size", "--concurrency", "--chunk-size", "--overlap", "--config", "--include",
    "--exclude", "--hidden", "-0",
]  # fmt: skip


def test_help_documents_every_flag_and_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["ingest", "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in INGEST_FLAGS:
        assert f" {flag} " in result.output, flag
    assert "143 SIGTERM" in result.output


def test_top_level_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0
    assert "ingest" in result.output and "search" in result.output
