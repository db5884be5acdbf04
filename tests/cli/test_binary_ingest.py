"""PDF and DOCX through the real ``funcpipe ingest``: stored with their pages, sections
and titles; every hostile file one clear outcome within the limits while the run goes
on; nothing left behind, not even a process; the incremental index still exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from funcpipe_rag.leakfaults import children, is_worker
from funcpipe_rag.readers.isolated import FAULT_ENV
from funcpipe_rag.serve import EmbeddingServer
from tests.cli.helpers import CLI, assert_clean, cli_env, prose, read_report, run_cli, write_tree
from tests.indexes import rows
from tests.readers.writers import (
    encrypt_pdf,
    write_bomb_pdf,
    write_docx,
    write_docx_bomb,
    write_image_pdf,
    write_pages,
    write_pdf,
)

GUIDE = [
    ("Install", [("From source", "Clone the repository and run make setup in it."),
                 ("From a wheel", "Install the wheel with pip into a fresh environment.")]),
    ("Operate", [("Backups", "Copy the index while no run holds its lock file.")]),
]  # fmt: skip
HANDBOOK = [("Heading 1", "Knives"), ("Normal", "Keep them sharp and dry."),
            ("Heading 2", "Honing"), ("Normal", "Hone before each use.")]  # fmt: skip


def ingest(tree: Path, db: Path, *extra: str, **env: str) -> tuple[int, dict[str, Any]]:
    report = db.with_suffix(".json")
    proc = run_cli("ingest", str(tree), "--index", str(db), "--report", "none",
                   "--report-file", str(report), *extra, timeout=240, **env)  # fmt: skip
    doc = read_report(report)
    assert_clean(doc)
    os_ = doc["resources"]["os"]
    assert os_["children_after"] == os_["children_before"]
    return proc.returncode, doc


def good_tree(root: Path) -> Path:
    write_pdf(root / "guide.pdf", GUIDE, title="Operator Guide")
    write_docx(root / "handbook.docx", HANDBOOK, title="Kitchen Handbook")
    write_tree(root, {"notes.md": prose(1, 4)})
    return root


def test_pdf_and_docx_are_stored_with_pages_sections_and_titles(tmp_path: Path) -> None:
    tree = good_tree(tmp_path / "docs")
    db = tmp_path / "x.db"
    code, doc = ingest(tree, db, "--chunk-size", "120", "--overlap", "0")
    assert code == 0, doc
    assert doc["files"]["ingested"] == 3
    assert doc["resources"]["by_kind"]["parser_process"]["acquired"] >= 1
    docs = dict(rows(db, "SELECT path, reader || ' ' || title FROM documents"))
    assert docs[f"{tree}/guide.pdf"] == "pdf/1 Operator Guide"
    assert docs[f"{tree}/handbook.docx"] == "docx/1 Kitchen Handbook"
    chunks = rows(db, "SELECT c.text, c.section, c.page FROM chunks c "
                      "JOIN documents d USING (doc_id) WHERE d.path LIKE '%guide.pdf'")  # fmt: skip
    assert {page for _, _, page in chunks} == {1, 2}
    assert any(s.startswith("Install > ") for _, s, _ in chunks)
    text = " ".join(t for t, _, _ in chunks)
    assert "Clone the repository" in text and "Copy the index" in text
    assert "endobj" not in text and "%PDF" not in text  # text, not PDF syntax
    docx_sql = ("SELECT c.section FROM chunks c JOIN documents d USING (doc_id) "
                "WHERE d.path LIKE '%handbook.docx'")  # fmt: skip
    sections = {s for (s,) in rows(db, docx_sql)}
    assert sections <= {"Knives", "Knives > Honing"} and sections


def test_hostile_files_each_fail_alone_within_the_limits(tmp_path: Path) -> None:
    tree = good_tree(tmp_path / "docs")
    hostile = tree / "hostile"
    whole = write_pdf(hostile / "whole.pdf", GUIDE).read_bytes()
    (hostile / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (hostile / "garbage.pdf").write_text("not a pdf\n")
    encrypt_pdf(hostile / "whole.pdf", hostile / "locked.pdf", user_password="pw")
    (hostile / "whole.pdf").unlink()
    write_image_pdf(hostile / "scan.pdf")
    write_bomb_pdf(hostile / "bomb.pdf", inflated_mib=2048)
    write_docx_bomb(hostile / "bomb.docx", inflated_mib=64)
    write_pages(hostile / "stuck.pdf", ["A parser will hang on this one."])
    t0 = time.monotonic()
    code, doc = ingest(tree, tmp_path / "x.db", "--parse-timeout", "2",
                       "--parse-memory-mb", "128", **{FAULT_ENV: "hang:*stuck.pdf"})  # fmt: skip
    assert time.monotonic() - t0 < 120
    assert code == 1
    assert doc["status"] == "partial"
    assert doc["errors"]["by_code"] == {
        "READ/CORRUPT": 2,
        "READ/ENCRYPTED": 1,
        "READ/MEMORY": 1,
        "READ/ZIP_BOMB": 1,
        "READ/TIMEOUT": 1,
    }
    assert doc["skipped"]["by_code"] == {"SKIP/NO_TEXT": 1}
    assert doc["files"]["ingested"] == 3  # the good files around them
    assert doc["files"]["seen"] == 3 + 7


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_parsers_are_busy_leaves_no_process(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    tree = tmp_path / "docs"
    for i in range(4):
        write_pages(tree / f"p{i}.pdf", [f"Page of document {i}."])
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*CLI, "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report", "none",
         "--report-file", str(report)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=cli_env(**{FAULT_ENV: "hang:*"}),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "no parser started"
        workers = [p for p in children(proc.pid) if is_worker(p)]
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert doc["status"] == "interrupted"
    assert_clean(doc)
    assert [p for p in workers if is_worker(p)] == []
    for pid in workers:  # reaped by the run, so gone from the process table
        assert not os.path.exists(f"/proc/{pid}") or not is_worker(pid)


def test_a_closed_stdout_stops_the_parsers_too(tmp_path: Path) -> None:
    tree = tmp_path / "docs"
    # The first file hangs until its 2 s limit, so the run is still producing when the
    # reader goes away after one line, with later files in the parsers.
    write_pages(tree / "a-stuck.pdf", ["Stuck."])
    for i in range(12):
        write_pages(tree / f"p{i:02}.pdf", [prose(i, 3), prose(i + 50, 3)])
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*CLI, "ingest", str(tree), "--no-index", "--jsonl", "--chunk-size", "200",
         "--parse-timeout", "2", "--report", "none", "--report-file", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(**{FAULT_ENV: "hang:*a-stuck.pdf"}),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, stderr
    assert json.loads(first)["path"].endswith(".pdf")
    doc = read_report(report)
    assert doc["reason"] == "stdout closed"
    assert doc["errors"]["by_code"] == {"READ/TIMEOUT": 1}
    assert_clean(doc)
    assert doc["resources"]["by_kind"]["parser_process"]["acquired"] >= 2


def test_without_the_pdf_extra_pdfs_are_skipped_with_the_extra_named(tmp_path: Path) -> None:
    tree = good_tree(tmp_path / "docs")
    shadow = tmp_path / "shadow" / "pypdfium2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('pypdfium2 is not installed')\n")
    pythonpath = os.pathsep.join(
        p for p in (str(shadow.parent), os.environ.get("PYTHONPATH", "")) if p
    )
    report = tmp_path / "r.json"
    proc = run_cli("ingest", str(tree), "--index", str(tmp_path / "x.db"),
                   "--report-file", str(report), PYTHONPATH=pythonpath)  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # a skip, not a failure
    doc = read_report(report)
    assert doc["skipped"]["by_code"] == {"SKIP/NEEDS_EXTRA": 1}
    assert doc["files"]["ingested"] == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("  SKIP/NEEDS_EXTRA ")]
    assert "guide.pdf: a PDF needs the pdf extra: pip install 'funcpipe[pdf]'" in line


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as s:
        yield s


def test_rerun_sends_nothing_and_editing_one_pdf_reembeds_only_its_changed_chunks(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    tree = tmp_path / "docs"
    pages = [prose(i, 3) for i in range(6)]
    write_pages(tree / "book.pdf", pages, title="Book")
    write_pages(tree / "other.pdf", [prose(40, 3)])
    write_docx(tree / "h.docx", HANDBOOK)
    db = tmp_path / "x.db"
    flags = ("--embedder", "tei", "--url", server.url, "--jsonl")
    code, first = ingest(tree, db, *flags)
    assert code == 0 and first["chunks"]["embedded"] > 6
    paid = server.stats()["inputs"]
    assert paid == first["chunks"]["embedded"]

    code, again = ingest(tree, db, *flags)
    assert code == 0 and again["files"]["unchanged"] == 3
    assert server.stats()["inputs"] == paid  # nothing re-embedded, nothing re-parsed
    assert "parser_process" not in again["resources"]["by_kind"]

    pages[3] = prose(99, 3)  # one page of six rewritten
    write_pages(tree / "book.pdf", pages, title="Book")
    code, edited = ingest(tree, db, *flags)
    assert code == 0 and edited["files"]["ingested"] == 1
    new_inputs = server.stats()["inputs"] - paid
    assert new_inputs == edited["chunks"]["embedded"]
    assert 0 < new_inputs < edited["chunks"]["seen"] / 2  # the rest was reused
    assert edited["chunks"]["reused"] >= edited["chunks"]["seen"] - new_inputs
    texts = {t for (t,) in rows(db, "SELECT text FROM chunks")}
    assert any("Item 99-0-0" in t for t in texts)
    assert not any("Item 3-0-0" in t for t in texts)


def test_the_same_mixed_tree_twice_gives_identical_records(tmp_path: Path) -> None:
    tree = good_tree(tmp_path / "docs")
    outs = [
        run_cli("ingest", str(tree), "--no-index", "--jsonl", "--report", "none").stdout
        for _ in range(2)
    ]
    assert outs[0] == outs[1]
    assert outs[0].count("\n") >= 3
    assert "guide.pdf" in outs[0] and "handbook.docx" in outs[0]


def test_plan_counts_pdf_and_docx_chunks_as_ingest_stores_them(tmp_path: Path) -> None:
    tree = good_tree(tmp_path / "docs")
    (tree / "broken.pdf").write_text("not a pdf\n")
    db = tmp_path / "x.db"
    plan = run_cli("ingest", str(tree), "--index", str(db), "--plan")
    entries = {Path(e["path"]).name: e for e in map(json.loads, plan.stdout.splitlines())}
    assert entries["broken.pdf"] == {"path": f"{tree}/broken.pdf", "status": "failed",
                                     "code": "READ/CORRUPT"}  # fmt: skip
    assert plan.returncode == 1
    code, _ = ingest(tree, db)
    assert code == 1  # broken.pdf
    stored = dict(rows(db, "SELECT d.path, COUNT(*) FROM chunks c JOIN documents d "
                           "USING (doc_id) GROUP BY d.path"))  # fmt: skip
    for name in ("guide.pdf", "handbook.docx", "notes.md"):
        assert entries[name]["status"] == "new"
        assert entries[name]["chunks"] == stored[f"{tree}/{name}"] > 0
