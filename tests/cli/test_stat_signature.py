"""Unchanged files by their stat signature (``change_check = "stat"``), through the real
command on both backends: an aged, untouched file is not read; any write, a replaced
file, a racily fresh file, an old index and ``change_check = "content"`` all read.

What proves a file was (not) read: the test overwrites the stored ``file_hash`` behind
funcpipe's back. A run that reads the file sees bytes that hash otherwise and calls it
``changed``; a run that trusts the stat signature never looks and calls it
``unchanged``. Files must be 2 s older than the read for their signature to be trusted
(the racy-clean guard, and ctime cannot be set back), hence the sleeps.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from funcpipe_rag.index import is_postgres
from funcpipe_rag.index.pg_schema import SCHEMA_VERSION as PG_VERSION
from funcpipe_rag.index.sqlite import SCHEMA_VERSION as SQLITE_VERSION
from funcpipe_rag.signature import RACY_MARGIN_NS
from tests.cli.helpers import prose, read_report, run_cli, write_tree
from tests.indexes import execute, rows, to_older_schema

AGE_S = RACY_MARGIN_NS / 1e9 + 0.2


def ingest(tree: Path, db: str, *extra: str) -> dict[str, Any]:
    report = tree.parent / "report.json"
    proc = run_cli("ingest", str(tree), "--index", db, "--report", "none",
                   "--report-file", str(report), *extra, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return read_report(report)


def plan(tree: Path, db: str, *extra: str) -> dict[str, str]:
    proc = run_cli("ingest", str(tree), "--index", db, "--plan", *extra, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return {Path(e["path"]).name: e["status"] for e in map(json.loads, proc.stdout.splitlines())}


def signatures(db: str) -> dict[str, str | None]:
    return {Path(p).name: s for p, s in rows(db, "SELECT path, signature FROM documents")}


def forge_hash(db: str, name: str) -> None:
    """Make the index believe it stored other bytes of ``name``: only a read can tell."""
    execute(db, f"UPDATE documents SET file_hash = 'forged' WHERE path LIKE '%/{name}'")


def make_racy(path: Path) -> None:
    """As if written in the very tick of the read: a start-up slower than the margin on a
    loaded machine would age a file really written just before, so the mtime is set a
    minute ahead (a clock-skewed writer is racy just the same)."""
    ahead = time.time_ns() + 60 * 10**9
    os.utime(path, ns=(ahead, ahead))


def make_current(path: Path) -> None:
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def aged_tree(tmp_path: Path, n: int = 3) -> Path:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 3) for i in range(n)})
    time.sleep(AGE_S)
    return tree


def test_an_aged_unchanged_file_is_not_read_unless_content_is_asked(
    tmp_path: Path, index_target: str
) -> None:
    tree, db = aged_tree(tmp_path), index_target
    ingest(tree, db)
    assert all(signatures(db).values())
    forge_hash(db, "f0.md")
    assert plan(tree, db) == dict.fromkeys(("f0.md", "f1.md", "f2.md"), "unchanged")
    assert plan(tree, db, "--change-check", "content")["f0.md"] == "changed"
    again = ingest(tree, db)
    assert again["files"]["unchanged"] == 3 and again["files"]["ingested"] == 0
    assert again["files"]["by_reader"] == {"markdown": 3}
    # verify hashes whatever the setting says: it sees what the signature vouched for
    proc = run_cli("verify", "--index", db, str(tree))
    assert proc.returncode == 1 and "f0.md changed since it was stored" in proc.stderr
    content = ingest(tree, db, "--change-check", "content")
    assert content["files"]["ingested"] == 1 and content["files"]["unchanged"] == 2


def test_a_write_with_size_and_mtime_restored_is_read(tmp_path: Path, index_target: str) -> None:
    tree, db = aged_tree(tmp_path), index_target
    ingest(tree, db)
    target = tree / "f0.md"
    before = target.stat()
    text = target.read_text()
    target.write_text(text.replace(text[10], "#" if text[10] != "#" else "%", 1))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # `touch -r`
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert plan(tree, db)["f0.md"] == "changed"  # ctime moved: read, and it differs
    assert ingest(tree, db)["files"]["ingested"] == 1


def test_a_file_replaced_by_another_is_read(tmp_path: Path, index_target: str) -> None:
    tree, db = aged_tree(tmp_path), index_target
    ingest(tree, db)
    target = tree / "f1.md"
    before = target.stat()
    swap = tree.parent / "swap.md"
    swap.write_bytes(target.read_bytes())  # the same bytes, in a new inode
    os.utime(swap, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(swap, target)
    assert target.stat().st_ino != before.st_ino
    forge_hash(db, "f1.md")
    assert plan(tree, db)["f1.md"] == "changed"  # read: the forged hash shows


def test_a_racily_fresh_file_is_stored_untrusted_read_next_time_then_trusted(
    tmp_path: Path, index_target: str
) -> None:
    tree, db = aged_tree(tmp_path), index_target
    fresh = tree / "fresh.md"
    fresh.write_text(prose(42, 3))
    make_racy(fresh)
    ingest(tree, db)
    stored = signatures(db)
    assert stored["fresh.md"] is None and stored["f0.md"] is not None
    forge_hash(db, "fresh.md")
    assert plan(tree, db)["fresh.md"] == "changed"  # no trusted signature: read
    make_current(fresh)
    time.sleep(AGE_S)
    run = ingest(tree, db)  # reads it (re-stored: the forged hash differed)
    assert run["files"]["ingested"] == 1
    assert signatures(db)["fresh.md"] is not None  # aged now: trusted
    forge_hash(db, "fresh.md")
    assert plan(tree, db)["fresh.md"] == "unchanged"


def test_a_file_read_and_found_unchanged_gets_its_signature_stored(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 3) for i in range(3)})
    db = index_target
    for path in tree.iterdir():
        make_racy(path)
    ingest(tree, db)
    assert set(signatures(db).values()) == {None}
    for path in tree.iterdir():
        make_current(path)
    time.sleep(AGE_S)
    assert ingest(tree, db)["files"]["unchanged"] == 3  # read, hashed, unchanged
    assert None not in signatures(db).values()


def test_an_index_of_the_previous_schema_is_upgraded_and_its_rows_untrusted(
    tmp_path: Path, index_target: str
) -> None:
    tree, db = aged_tree(tmp_path), index_target
    ingest(tree, db)
    # The schema before signatures: PostgreSQL 1, SQLite 3 (each without the later
    # index of document titles and paths too).
    if is_postgres(db):
        execute(
            db,
            "ALTER TABLE documents DROP COLUMN tsv",
            "ALTER TABLE documents DROP COLUMN signature",
            "UPDATE meta SET value = '1' WHERE key = 'schema'",
        )
    else:
        to_older_schema(Path(db), "3")
    forge_hash(db, "f2.md")
    proc = run_cli("ingest", str(tree), "--index", db, "--plan")
    assert proc.returncode == 2 and "older schema version" in proc.stderr
    run = ingest(tree, db)  # upgrades in place; old rows have no signature: all read
    assert run["files"]["ingested"] == 1 and run["files"]["unchanged"] == 2
    version = rows(db, "SELECT value FROM meta WHERE key = 'schema'")[0][0]
    assert version == (PG_VERSION if is_postgres(db) else SQLITE_VERSION)
    assert None not in signatures(db).values()  # found unchanged by content: now trusted


def test_a_reader_of_another_version_or_options_reads_again(
    tmp_path: Path, index_target: str
) -> None:
    tree, db = aged_tree(tmp_path), index_target
    ingest(tree, db)
    forge_hash(db, "f0.md")
    # as after a reader upgrade: the rows were stored by a version no reader has now
    execute(db, "UPDATE documents SET reader = 'markdown/0'")
    assert set(plan(tree, db).values()) == {"changed"}
