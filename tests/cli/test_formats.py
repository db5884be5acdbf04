"""A mixed-format tree through the real CLI: metadata in records and hits, per-format
counts, identical records on a re-run, and an incremental index that stays exact."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from funcpipe_rag.serve import EmbeddingServer
from tests.cli.helpers import prose, read_report, run_cli, write_tree

TEI = ("--embedder", "tei")


def html_page(title: str, seed: int) -> str:
    paragraphs = "".join(f"<p>{p}</p>\n" for p in prose(seed, 8).split("\n\n") if p.strip())
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title><script>var x=1;</script></head>"
        f"<body><h1>{title}</h1>\n<h2>Details</h2>\n{paragraphs}</body></html>\n"
    )


def mixed_tree(root: Path) -> Path:
    md = (
        "---\ntitle: Front Title\n---\n# Heading One\n\n"
        + prose(1, 6)
        + "\n## Two\n\n"
        + prose(2, 6)
    )
    write_tree(root, {
        "guide.md": md,
        "page.html": html_page("Web Page", 3),
        "notes.txt": prose(4, 6),
        "latin.txt": ("Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade. " * 40).encode("latin-1"),
        "wide.txt": b"\xff\xfe" + prose(5, 4).encode("utf-16-le"),
        ".gitignore": "ignored/\n",
        "ignored/skip.md": prose(6, 4),
    })  # fmt: skip
    nb = new_notebook(cells=[new_markdown_cell("# Notebook Title\n\n" + prose(7, 3)),
                             new_code_cell("print('hello')")])  # fmt: skip
    nbformat.write(nb, str(root / "analysis.ipynb"))
    return root


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as s:
        yield s


def ingest(
    tree: Path, db: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = db.with_suffix(".report.json")
    proc = run_cli("ingest", str(tree), "--index", str(db), "--report", "none",
                   "--report-file", str(report), *extra, timeout=180)  # fmt: skip
    return proc, read_report(report)


def records(tree: Path) -> list[dict[str, Any]]:
    proc = run_cli("ingest", str(tree), "--no-index", "--jsonl", "--report", "none")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_records_carry_metadata_and_two_runs_give_identical_records(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path / "docs")
    first = records(tree)
    assert first == records(tree)
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in first:
        by_file.setdefault(Path(r["path"]).name, []).append(r)
        assert set(r) >= {"title", "section", "page", "reader", "encoding", "start", "end"}
    assert sorted(by_file) == ["analysis.ipynb", "guide.md", "latin.txt", "notes.txt",
                               "page.html", "wide.txt"]  # fmt: skip
    assert {r["reader"] for r in by_file["guide.md"]} == {"markdown/1"}
    assert {r["title"] for r in by_file["guide.md"]} == {"Front Title"}
    assert {r["section"] for r in by_file["guide.md"]} == {"Heading One", "Heading One > Two"}
    assert {(r["reader"], r["title"]) for r in by_file["page.html"]} == {("html/1", "Web Page")}
    assert {r["section"] for r in by_file["page.html"]} == {"Web Page > Details"}
    assert all("<p>" not in r["text"] and "var x" not in r["text"] for r in by_file["page.html"])
    assert {(r["reader"], r["encoding"]) for r in by_file["latin.txt"]} == {("text/1", "cp1252")}
    assert "Caf\u00e9 cr\u00e8me" in by_file["latin.txt"][0]["text"]
    assert {r["encoding"] for r in by_file["wide.txt"]} == {"utf-16-le"}
    assert {(r["reader"], r["title"]) for r in by_file["analysis.ipynb"]} == {
        ("notebook/1", "Notebook Title")
    }
    assert all(r["page"] is None for r in first)


def test_per_format_counts_in_the_summary_and_the_report(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path / "docs")
    report = tmp_path / "r.json"
    proc = run_cli(
        "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report-file", str(report)
    )
    assert proc.returncode == 0, proc.stderr
    by_reader = read_report(report)["files"]["by_reader"]
    assert by_reader == {"html": 1, "markdown": 1, "notebook": 1, "text": 3}
    assert "files by reader: html 1, markdown 1, notebook 1, text 3" in proc.stderr


def test_search_hits_name_title_section_reader_and_encoding(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path / "docs")
    db = tmp_path / "x.db"
    assert ingest(tree, db)[0].returncode == 0
    proc = run_cli(
        "search", "Caf\u00e9 cr\u00e8me na\u00efve", "--index", str(db), "--json", "-k", "1"
    )
    (hit,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert hit["path"].endswith("latin.txt")
    assert (hit["reader"], hit["encoding"], hit["title"], hit["section"]) == (
        "text/1",
        "cp1252",
        "",
        "",
    )
    proc = run_cli("search", "Heading One", "--index", str(db), "--json", "-k", "1")
    (hit,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (hit["reader"], hit["title"]) == ("markdown/1", "Front Title")
    assert hit["section"].startswith("Heading One")


def test_an_unchanged_mixed_tree_sends_no_request_and_an_edit_pays_only_its_chunks(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    tree = mixed_tree(tmp_path / "docs")
    db = tmp_path / "x.db"
    first, report = ingest(tree, db, "--url", server.url, *TEI)
    assert first.returncode == 0, first.stderr
    paid = int(server.stats()["inputs"])
    assert paid == report["chunks"]["embedded"] > 6

    again, report = ingest(tree, db, "--url", server.url, *TEI)
    assert again.returncode == 0
    assert int(server.stats()["inputs"]) == paid  # not one request
    assert report["files"]["unchanged"] == 6 and report["chunks"]["seen"] == 0

    page = tree / "page.html"
    html = page.read_text()
    start = html.index("<p>", html.index("<p>") + 3)  # the second paragraph
    end = html.index("</p>", start)
    page.write_text(html[:start] + "<p>Lanterns and harbours, a new paragraph today." + html[end:])
    edited, report = ingest(tree, db, "--url", server.url, *TEI)
    assert edited.returncode == 0
    new = int(server.stats()["inputs"]) - paid
    assert new == report["chunks"]["embedded"]
    assert 1 <= new <= 3  # the chunks around the edited paragraph, nothing else
    assert report["files"]["unchanged"] == 5 and report["files"]["ingested"] == 1
    assert report["chunks"]["reused"] == report["chunks"]["seen"] - new
    assert run_cli("verify", "--index", str(db), str(tree)).returncode == 0


def test_a_forced_encoding_rereads_every_file_and_pays_only_for_changed_text(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    # The encoding is part of the reading: another one re-reads every file (nothing is
    # "unchanged"), and only chunks whose text changed are paid for.
    tree = mixed_tree(tmp_path / "docs")
    db = tmp_path / "x.db"
    assert ingest(tree, db, "--url", server.url, *TEI)[0].returncode == 0
    paid = int(server.stats()["inputs"])
    proc, report = ingest(tree, db, "--url", server.url, *TEI, "--encoding", "latin-1")
    assert report["files"]["unchanged"] == 1  # the notebook: JSON is UTF-8 whatever is set
    new = int(server.stats()["inputs"]) - paid
    assert new == report["chunks"]["embedded"]
    # Same text for the ASCII and the Latin-1 files: reused; the UTF-16 file read as
    # latin-1 (forced means forced) is new text: paid.
    assert report["chunks"]["reused"] > new >= 1
    assert proc.returncode == 0
