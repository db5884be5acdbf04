"""The incremental, crash-safe index through the real command: nothing lost, nothing
paid for twice, deleted files pruned inside the walked roots only, one vector space.

Every test that is not about one backend's own mechanics runs on both: an SQLite file
and a PostgreSQL collection (the ``index_target`` fixture)."""

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

from funcpipe_rag.index import index_exists, is_postgres, leftover_rebuild
from funcpipe_rag.index.lock import RunLock
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import CLI, assert_clean, cli_env, prose, read_report, run_cli, write_tree
from tests.indexes import chunk_ids, content, execute, rows

TEI = ("--embedder", "tei")


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as s:
        yield s


def inputs(server: EmbeddingServer) -> int:
    return int(server.stats()["inputs"])


def ingest(
    tree: Path, db: str | Path, *extra: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tree.parent / "report.json"
    proc = run_cli("ingest", str(tree), "--index", str(db), "--report", "none",
                   "--report-file", str(report), *extra, timeout=180, **env)  # fmt: skip
    return proc, read_report(report)


def test_rerun_touch_and_one_paragraph_edit_count_requests_on_the_server(
    tmp_path: Path, server: EmbeddingServer, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 12) for i in range(8)})
    db = index_target
    first, report = ingest(tree, db, "--url", server.url, *TEI)
    assert first.returncode == 0, first.stderr
    paid = inputs(server)
    assert paid == report["chunks"]["embedded"] > 8

    again, report = ingest(tree, db, "--url", server.url, *TEI)
    assert again.returncode == 0
    assert inputs(server) == paid  # zero requests for an unchanged tree
    assert report["files"]["unchanged"] == 8 and report["chunks"]["embedded"] == 0

    for p in tree.rglob("*.md"):
        os.utime(p, (time.time() + 100, time.time() + 100))
    _, report = ingest(tree, db, "--url", server.url, *TEI)
    assert inputs(server) == paid  # mtimes are not identity
    assert report["files"]["unchanged"] == 8

    target = tree / "f3.md"
    paragraphs = target.read_text().split("\n\n")
    paragraphs[5] = "A brand new paragraph about lanterns and harbours, written today."
    target.write_text("\n\n".join(paragraphs))
    plan = run_cli("ingest", str(tree), "--index", db, "--plan", *TEI, "--url", server.url)
    planned = [json.loads(line) for line in plan.stdout.splitlines()]
    (changed,) = [e for e in planned if e["status"] == "changed"]
    assert inputs(server) == paid  # --plan embeds nothing
    edited, report = ingest(tree, db, "--url", server.url, *TEI)
    assert edited.returncode == 0
    new_inputs = inputs(server) - paid
    assert new_inputs == report["chunks"]["embedded"] == changed["to_embed"]
    assert 1 <= new_inputs <= 3  # only the chunks around the edited paragraph
    assert report["chunks"]["reused"] == changed["chunks"] - new_inputs
    # The file never had zero chunks, and now holds exactly its new chunks.
    assert run_cli("verify", "--index", db, str(tree)).returncode == 0


def test_deleted_shrunk_files_and_a_subfolder_prune_exactly_the_right_chunks(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(
        tmp_path / "docs",
        {
            "a/one.md": prose(1, 8),
            "a/two.md": prose(2, 8),
            "b/three.md": prose(3, 8),
            "four.md": prose(4, 8),
        },
    )
    outside = write_tree(tmp_path / "elsewhere", {"five.md": prose(5, 8)})
    db = index_target
    assert ingest(tree, db)[0].returncode == 0
    assert ingest(outside, db)[0].returncode == 0
    before = {
        r[0]: r[1]
        for r in rows(
            db,
            "SELECT d.path, COUNT(*) FROM chunks c JOIN documents d USING (doc_id) GROUP BY d.path",
        )
    }

    (tree / "a" / "two.md").unlink()
    (tree / "four.md").write_text(prose(4, 8).split("\n\n")[0] + "\n")  # shrunk to one paragraph
    proc, report = ingest(tree / "a", db)  # only the sub-folder a/ is walked
    assert proc.returncode == 0
    assert report["files"]["pruned"] == 1
    after = {
        r[0]: r[1]
        for r in rows(
            db,
            "SELECT d.path, COUNT(*) FROM chunks c JOIN documents d USING (doc_id) GROUP BY d.path",
        )
    }
    assert not any(p.endswith("two.md") for p in after)
    for name in ("one.md", "three.md", "four.md", "five.md"):  # four.md: outside a/, untouched
        (key,) = [p for p in before if p.endswith(name)]
        assert after[key] == before[key], name

    proc, report = ingest(tree, db)
    assert report["files"]["pruned"] == 0
    (four,) = [p for p in after if p.endswith("four.md")]
    shrunk = dict(
        rows(
            db,
            "SELECT d.path, COUNT(*) FROM chunks c JOIN documents d USING (doc_id) GROUP BY d.path",
        )
    )
    assert shrunk[four] == 1 < before[four]
    assert run_cli("verify", "--index", db, str(tree), str(outside)).returncode == 0


def test_a_stdin_path_list_prunes_only_when_asked(tmp_path: Path, index_target: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 3) for i in range(4)})
    db = index_target
    assert ingest(tree, db)[0].returncode == 0
    listed = "\n".join(str(tree / f"f{i}.md") for i in range(2)).encode()
    for extra, remaining in (((), 4), (("--prune",), 2)):
        proc = run_cli("ingest", "-", "--index", db, "--quiet", *extra, stdin=listed)
        assert proc.returncode == 0, proc.stderr
        assert len(rows(db, "SELECT doc_id FROM documents")) == remaining


@pytest.mark.timeout(360)  # three kills and three re-runs of a 2,000-chunk tree
def test_kill_9_at_random_points_loses_nothing_and_pays_only_for_what_was_in_flight(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"d{i % 5}/f{i}.md": prose(i, 40) for i in range(80)})
    with EmbeddingServer() as ref_server:  # the reference: one clean run, its chunks and cost
        ref_db = str(tmp_path / "ref.db")
        assert ingest(tree, ref_db, "--url", ref_server.url, *TEI)[0].returncode == 0
        expected = chunk_ids(ref_db)
        distinct = len(rows(ref_db, "SELECT content_hash FROM vectors"))
    assert len(expected) >= 2000

    batch, concurrency = 16, 2
    for kill_after in (3, 60, 150):
        # One fresh index per kill: another file, or another collection of the database.
        pg = is_postgres(index_target)
        db = index_target if pg else str(tmp_path / f"k{kill_after}.db")
        collection = f"k{kill_after}" if pg else "funcpipe"
        with EmbeddingServer(faults=FaultConfig(latency_ms=20)) as server:
            args = [
                "ingest", str(tree), "--index", db, "--url", server.url, *TEI,
                "--batch-size", str(batch), "--concurrency", str(concurrency), "--quiet",
                "--collection", collection,
            ]  # fmt: skip
            proc = subprocess.Popen(
                [*CLI, *args], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 60
            while server.stats()["embed_requests"] < kill_after:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed_at = inputs(server)
            rerun = run_cli(*args, timeout=180)
            assert rerun.returncode == 0, rerun.stderr
            total = inputs(server)
        if not pg:
            assert rows(db, "PRAGMA integrity_check") == [("ok",)]
        stored = sorted(
            r[0] for r in rows(db, "SELECT chunk_id FROM chunks", collection=collection)
        )
        assert stored == expected  # every chunk present, exactly once
        waste = total - distinct
        # Only batches in flight (or answered but not yet persisted) at the kill are bought
        # twice; the next run reuses everything that was persisted.
        assert 0 <= waste <= concurrency * batch, (kill_after, killed_at, total, distinct)
        verify = run_cli("verify", "--index", db, str(tree), "--collection", collection)
        assert verify.returncode == 0, verify.stdout


def test_sigterm_then_rerun_pays_for_every_chunk_exactly_once(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 20) for i in range(12)})
    with EmbeddingServer(faults=FaultConfig(latency_ms=40)) as server:
        db = index_target
        args = ["ingest", str(tree), "--index", db, "--url", server.url, *TEI,
                "--batch-size", "8", "--concurrency", "2", "--quiet"]  # fmt: skip
        proc = subprocess.Popen(
            [*CLI, *args], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while server.stats()["embed_requests"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        assert run_cli(*args, timeout=120).returncode == 0
        distinct = len(rows(db, "SELECT content_hash FROM vectors"))
        assert inputs(server) == distinct  # in-flight answers were kept, not bought again


def test_mixed_vector_spaces_are_refused_and_reembed_migrates(
    tmp_path: Path, server: EmbeddingServer, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 6) for i in range(5)})
    db = index_target
    assert ingest(tree, db)[0].returncode == 0
    n = len(chunk_ids(db))
    refused = run_cli("ingest", str(tree), "--index", db, "--url", server.url, *TEI)
    assert refused.returncode == 2 and "--reembed" in refused.stderr
    refused = run_cli("ingest", str(tree), "--index", db, "--chunk-size", "300")
    assert refused.returncode == 2
    assert len(chunk_ids(db)) == n and inputs(server) == 0

    proc, report = ingest(tree, db, "--url", server.url, *TEI, "--reembed")
    assert proc.returncode == 0, proc.stderr
    assert dict(rows(db, "SELECT key, value FROM meta"))["embedder"] == "tei"
    assert leftover_rebuild(db) is None
    if not is_postgres(db):  # the rebuilt file was indexed by content before the swap
        found = "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_by_content'"
        assert rows(db, found) == [(1,)]
    assert run_cli("verify", "--index", db, str(tree)).returncode == 0
    assert_clean(report)


def test_an_interrupted_reembed_leaves_the_live_index_serving(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 20) for i in range(10)})
    db = index_target
    assert ingest(tree, db)[0].returncode == 0
    before = chunk_ids(db)
    with EmbeddingServer(faults=FaultConfig(latency_ms=50)) as server:
        args = ["ingest", str(tree), "--index", db, "--url", server.url, *TEI,
                "--reembed", "--batch-size", "4", "--quiet"]  # fmt: skip
        proc = subprocess.Popen(
            [*CLI, *args], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while server.stats()["embed_requests"] < 3:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert chunk_ids(db) == before  # the old index is untouched and still searchable
        assert run_cli("search", "lantern", "--index", db, "--json").returncode == 0
        paid = inputs(server)
        assert run_cli(*args, timeout=120).returncode == 0  # resumes the rebuild
        rebuilt = len(rows(db, "SELECT content_hash FROM vectors"))
        assert inputs(server) - paid < rebuilt  # what the first attempt bought was kept


def test_verify_catches_a_hand_corrupted_index(tmp_path: Path, index_target: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 6) for i in range(4)})
    db = index_target
    assert ingest(tree, db)[0].returncode == 0
    clean = run_cli("verify", "--index", db, str(tree), "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["ok"] is True

    first, second = (r[0] for r in rows(db, "SELECT content_hash FROM vectors ORDER BY 1")[:2])
    if is_postgres(db):  # a 3-d vector needs the column's dimension dropped first
        bad_dim = [
            "ALTER TABLE vectors ALTER COLUMN embedding TYPE vector",
            f"UPDATE vectors SET embedding = '[0,0,0]' WHERE content_hash = '{first}'",
        ]
    else:
        bad_dim = [f"UPDATE vectors SET vector = zeroblob(12) WHERE content_hash = '{first}'"]
    execute(
        db,
        *bad_dim,
        f"DELETE FROM vectors WHERE content_hash = '{second}'",
        'INSERT INTO chunks(chunk_id, doc_id, seq, start, "end", text, content_hash, run_id) '
        "VALUES ('orphan', 'no-such-doc', 0, 0, 1, 'x', 'h', 'r')",
    )
    (tree / "f0.md").write_text("changed\n")
    (tree / "f1.md").unlink()
    (tree / "new.md").write_text("a new file\n")
    bad = run_cli("verify", "--index", db, str(tree), "--json")
    assert bad.returncode == 1
    codes = json.loads(bad.stdout)["by_code"]
    for code in ("INDEX/BAD_DIM", "INDEX/MISSING_VECTOR", "INDEX/ORPHAN_CHUNK", "TREE/STALE",
                 "TREE/DELETED", "TREE/MISSING"):  # fmt: skip
        assert code in codes, (code, codes)


def test_plan_lists_new_changed_unchanged_deleted_and_writes_nothing(
    tmp_path: Path, index_target: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 4) for i in range(4)})
    db = index_target
    fresh = run_cli("ingest", str(tree), "--index", db, "--plan")
    assert {json.loads(x)["status"] for x in fresh.stdout.splitlines()} == {"new"}
    assert not index_exists(db)
    assert ingest(tree, db)[0].returncode == 0
    (tree / "f0.md").write_text(prose(99, 4))
    (tree / "f1.md").unlink()
    (tree / "f9.md").write_text(prose(9, 4))
    stamp = Path(db).stat().st_mtime_ns if not is_postgres(db) else 0
    stored = content(db)
    plan = run_cli("ingest", str(tree), "--index", db, "--plan")
    assert plan.returncode == 0
    status = {Path(e["path"]).name: e["status"] for e in map(json.loads, plan.stdout.splitlines())}
    assert status == {
        "f0.md": "changed",
        "f1.md": "deleted",
        "f2.md": "unchanged",
        "f3.md": "unchanged",
        "f9.md": "new",
    }
    assert "1 new, 1 changed, 2 unchanged, 1 deleted" in plan.stderr
    assert content(db) == stored
    if not is_postgres(db):
        assert Path(db).stat().st_mtime_ns == stamp


def test_a_second_writer_waits_then_fails_clearly_and_never_corrupts(tmp_path: Path) -> None:
    """SQLite's own: one writer at a time (PostgreSQL runs share: see test_shared_runs)."""
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 6) for i in range(6)})
    db = tmp_path / "x.db"
    assert ingest(tree, db)[0].returncode == 0
    lock = RunLock(db, ResourceLedger(), 1.0)
    try:
        t0 = time.monotonic()
        blocked = run_cli("ingest", str(tree), "--index", str(db), FUNCPIPE_LOCK_TIMEOUT="0.5")
        assert 0.5 <= time.monotonic() - t0 < 20
        assert blocked.returncode == 1 and "another funcpipe run is writing" in blocked.stderr
    finally:
        lock.close()
    # Two real runs at once on a fresh index: the second waits for the first.
    fresh = tmp_path / "y.db"
    command = [*CLI, "ingest", str(tree), "--index", str(fresh), "--quiet"]
    procs = [
        subprocess.Popen(command, env=cli_env(), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        if p.stderr:
            p.stderr.close()
    assert [code for code, _ in results] == [0, 0], results
    assert rows(str(fresh), "PRAGMA integrity_check") == [("ok",)]
    assert run_cli("verify", "--index", str(fresh), str(tree)).returncode == 0


BOILERPLATE = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software, to deal in the software without restriction, subject to the conditions below."
)


def test_identical_chunks_in_flight_together_are_paid_once(
    tmp_path: Path, index_target: str
) -> None:
    """Licence boilerplate repeated across files, met in one batch and across batches in
    flight together (a slow server keeps four in flight): the server sees each distinct
    content once."""
    with EmbeddingServer(faults=FaultConfig(latency_ms=30)) as server:
        _paid_once(tmp_path, server, index_target, no_index=False)


def test_identical_chunks_are_paid_once_without_an_index(tmp_path: Path) -> None:
    with EmbeddingServer(faults=FaultConfig(latency_ms=30)) as server:
        _paid_once(tmp_path, server, str(tmp_path / "x.db"), no_index=True)


def _paid_once(tmp_path: Path, server: EmbeddingServer, db: str, *, no_index: bool) -> None:
    files = {
        f"p{i:02}/LICENSE": "\n\n".join([BOILERPLATE] * 3 + [f"Copyright {2000 + i % 2}."])
        for i in range(40)
    }
    files.update({f"p{i:02}/notes.md": prose(i % 7, 3) for i in range(40)})
    tree = write_tree(tmp_path / "docs", files)
    out = tmp_path / "out.jsonl"
    extra = ("--no-index", "--jsonl") if no_index else ()
    report_path = tmp_path / "r.json"
    with out.open("w") as stdout:
        proc = subprocess.run(
            [*CLI, "ingest", str(tree), "--index", db, "--url", server.url, *TEI,
             "--batch-size", "3", "--concurrency", "4", "--report", "none",
             "--report-file", str(report_path), *extra],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=cli_env(), timeout=120,
            check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = read_report(report_path)
    if no_index:
        distinct = {json.loads(line)["content_hash"] for line in out.read_text().splitlines()}
    else:
        distinct = {r[0] for r in rows(db, "SELECT content_hash FROM chunks")}
    assert inputs(server) == len(distinct) == report["chunks"]["embedded"]
    assert report["chunks"]["embedded"] + report["chunks"]["reused"] == report["chunks"]["stored"]
    assert report["chunks"]["reused"] > 50
