"""The PostgreSQL backend's own promises, on a real server: trust on open, the opt-in
HNSW index, text PostgreSQL cannot hold, claims handed back by a run that stops, and
lease renewals that cannot deadlock a run finishing the pass or end with their session."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from funcpipe_rag.api.core import IngestRequest, RunSettings, ingest
from funcpipe_rag.index import IndexOptions, index_exists, open_index
from funcpipe_rag.index.base import FileShare
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import iter_paths
from tests.cli.helpers import prose, run_cli, write_tree
from tests.indexes import count, execute, rows


def _ingest(tree: Path, url: str, *extra: str) -> None:
    proc = run_cli("ingest", str(tree), "--index", url, "--quiet", *extra)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("DROP TABLE chunks", "table chunks is missing"),
        ("ALTER TABLE documents DROP COLUMN note", "table documents lacks note"),
        ("DELETE FROM meta WHERE key = 'dim'", "meta lacks dim"),
        ("UPDATE meta SET value = '99' WHERE key = 'schema'", "schema version '99'"),
    ],
)
def test_an_altered_collection_is_refused_in_one_line_and_never_recreated(
    tmp_path: Path, pg_database: str, damage: str, says: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 4) for i in range(3)})
    _ingest(tree, pg_database)
    execute(pg_database, damage)
    before = rows(pg_database, "SELECT count(*) FROM information_schema.tables "
                  "WHERE table_schema = 'funcpipe'")  # fmt: skip
    for args in (("ingest", str(tree)), ("search", "stream")):
        proc = run_cli(*args, "--index", pg_database)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], proc.stderr
    after = rows(pg_database, "SELECT count(*) FROM information_schema.tables "
                 "WHERE table_schema = 'funcpipe'")  # fmt: skip
    assert after == before
    verify = run_cli("verify", "--index", pg_database, "--json")
    assert verify.returncode == 1 and "INDEX/DAMAGED" in verify.stdout


def test_a_schema_that_is_not_a_collection_is_refused(pg_database: str, tmp_path: Path) -> None:
    execute(pg_database, "CREATE SCHEMA funcpipe", "CREATE TABLE funcpipe.orders (id int)")
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 2)})
    proc = run_cli("ingest", str(tree), "--index", pg_database)
    assert proc.returncode == 2 and "not a funcpipe collection" in proc.stderr
    assert rows(pg_database, "SELECT count(*) FROM funcpipe.orders") == [(0,)]
    bad = run_cli("ingest", str(tree), "--index", pg_database, "--collection", "Robert'); --")
    assert bad.returncode == 2 and "collection must be" in bad.stderr


def test_hnsw_is_opt_in_and_searches_through_the_index(tmp_path: Path, pg_database: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 6) for i in range(6)})
    _ingest(tree, pg_database)
    indexes = "SELECT indexname FROM pg_indexes WHERE schemaname = 'funcpipe'"
    assert "vectors_hnsw" not in {r[0] for r in rows(pg_database, indexes)}
    exact = run_cli("search", "garden recipe", "--index", pg_database, "--json", "-k", "3")
    _ingest(tree, pg_database, "--hnsw")
    assert "vectors_hnsw" in {r[0] for r in rows(pg_database, indexes)}
    approximate = run_cli("search", "garden recipe", "--index", pg_database, "--json", "-k", "3")
    assert approximate.returncode == 0, approximate.stderr
    # A collection this small fits in one HNSW search's candidate list: same answer.
    assert approximate.stdout == exact.stdout


def test_text_postgresql_cannot_hold_is_stored_with_a_replacement(
    tmp_path: Path, pg_database: str
) -> None:
    body = "plain words " * 1000 + "\x00 a NUL past the binary sniff\n"
    tree = write_tree(tmp_path / "docs", {"nul.md": body})
    _ingest(tree, pg_database)
    stored = "".join(r[0] for r in rows(pg_database, "SELECT text FROM chunks ORDER BY seq"))
    assert "\ufffd a NUL past" in stored and "\x00" not in stored


def test_a_run_that_stops_early_hands_its_claims_back(tmp_path: Path, pg_database: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i:02}.md": prose(i, 6) for i in range(20)})
    settings = RunSettings(index=pg_database, claim_files=2, commit_every=4)
    seen = 0

    def stop_after_some(_: object) -> bool:
        nonlocal seen
        seen += 1
        return seen < 10

    ledger = ResourceLedger()
    summary = ingest(
        IngestRequest(roots=(str(tree),), settings=settings),
        on_result=stop_after_some,
        ledger=ledger,
    )
    assert summary.status == "ok" and summary.ledger.open_total == 0
    snapshot = summary.ledger
    assert snapshot.by_kind["pg_connection"].released == 3
    assert snapshot.by_kind["lease_keeper"].open == 0
    assert snapshot.remote["pg_sessions"].after == 0
    # Nothing is left taken: what the run did not finish is open for the next one.
    states = dict(rows(pg_database, "SELECT state, count(*) FROM file_claims GROUP BY state"))
    assert "taken" not in states and states.get("todo", 0) > 0
    assert rows(pg_database, "SELECT count(*) FROM workers") == [(0,)]
    # The next run takes them, finishes the pass and clears it.
    _ingest(tree, pg_database)
    assert rows(pg_database, "SELECT count(*) FROM file_claims") == [(0,)]
    assert count(pg_database, "documents") == 20
    assert run_cli("verify", "--index", pg_database, str(tree)).returncode == 0


def test_an_empty_database_is_not_an_index(pg_database: str) -> None:
    assert not index_exists(pg_database)
    with pytest.raises(Exception, match="index not found"):
        open_index(pg_database, None, ResourceLedger(), readonly=True)


@contextlib.contextmanager
def _sharing(
    tree: Path, pg_database: str, ledger: ResourceLedger, options: IndexOptions
) -> Iterator[tuple[Any, FileShare]]:
    """A collection of ``tree`` opened for writing and its share of the run, closed after."""
    _ingest(tree, pg_database)  # a collection to open
    index = open_index(pg_database, None, ledger, options=options)
    share = index.share()
    try:
        yield index, share
    finally:
        share.close()
        index.close()


def test_the_claiming_stage_is_lazy_and_closes_its_walk(tmp_path: Path, pg_database: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 2) for i in range(5)})
    ledger = ResourceLedger()
    with _sharing(tree, pg_database, ledger, IndexOptions(claim_files=2)) as (index, share):
        walk = iter_paths([str(tree)], RunSettings().walk_options())
        rounds = share.rounds(lambda: walk)
        files = next(rounds)  # the first round's stream exists; nothing was published yet
        assert rows(pg_database, "SELECT count(*) FROM file_claims") == [(0,)]
        first = next(files)
        assert isinstance(first, Ok)
        assert rows(pg_database, "SELECT count(*) FROM file_claims") == [(2,)]  # one batch
        taken = rows(pg_database, "SELECT state, worker FROM file_claims WHERE state = 'taken'")
        assert len(taken) <= 2 and {w for _, w in taken} == {index.run_id}
        files.close()
        with pytest.raises(StopIteration):
            next(walk)  # closing the stage closed the walk
        rounds.close()
    assert rows(pg_database, "SELECT count(*) FROM file_claims WHERE state = 'taken'") == [(0,)]
    assert ledger.snapshot().open_total == 0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30  # a bound against hanging, not a timing claim
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def test_a_lease_renewal_waiting_for_a_finishing_run_holds_no_worker_row(
    tmp_path: Path, pg_database: str
) -> None:
    """The deadlock CI met with three workers: a run finishing the pass locks
    ``file_claims`` and then deletes ``workers`` rows; another run's lease keeper had
    updated its ``workers`` row and then waited for ``file_claims`` in one transaction."""
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 2) for i in range(3)})
    ledger = ResourceLedger()
    # A short lease: the keeper renews every 0.1 s.
    with (
        _sharing(tree, pg_database, ledger, IndexOptions(lease_s=0.3)) as (index, _),
        psycopg.connect(pg_database, options="-c search_path=funcpipe,public") as finisher,
    ):
        # What PgShare.finish does first, held open here.
        finisher.execute("LOCK TABLE file_claims IN EXCLUSIVE MODE")
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE application_name = '{index.application_name}' AND wait_event_type = 'Lock'"
        )
        _wait_for(lambda: rows(pg_database, waiting) == [(1,)], "the keeper to wait")
        # What it does next: its worker row is free (it was locked: a deadlock).
        held = finisher.execute(
            "SELECT worker FROM workers WHERE worker = %s FOR UPDATE NOWAIT", (index.run_id,)
        ).fetchall()
        assert held == [(index.run_id,)]
        finisher.rollback()
        # The keeper goes on renewing once the finishing run is done.
        heartbeat = f"SELECT heartbeat FROM workers WHERE worker = '{index.run_id}'"
        before = rows(pg_database, heartbeat)
        _wait_for(lambda: rows(pg_database, heartbeat) > before, "the next renewal")
    assert ledger.snapshot().open_total == 0


def test_a_lease_keeper_whose_session_ends_goes_on_in_a_new_one(
    tmp_path: Path, pg_database: str
) -> None:
    """An administrator (or the server) ends the keeper's session: the run's leases must
    not lapse while it works (others would take its files and contents over)."""
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 2) for i in range(3)})
    ledger = ResourceLedger()
    with _sharing(tree, pg_database, ledger, IndexOptions(lease_s=0.3)) as (index, _):
        keeper = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = "
            f"'{index.application_name}' AND query LIKE 'UPDATE content_claims%'"
        )
        heartbeat = f"SELECT heartbeat FROM workers WHERE worker = '{index.run_id}'"
        _wait_for(lambda: len(rows(pg_database, keeper)) == 1, "the keeper's first renewal")
        [(pid,)] = rows(pg_database, keeper)
        ended = rows(pg_database, f"SELECT pg_terminate_backend({pid}), now()")[0][1]
        _wait_for(lambda: rows(pg_database, heartbeat)[0][0] > ended, "a renewal after it")
        assert rows(pg_database, keeper)[0][0] != pid
    snapshot = ledger.snapshot()
    assert snapshot.open_total == 0
    assert snapshot.by_kind["pg_connection"].acquired == 4  # main, side, keeper, keeper again


def test_a_collection_of_schema_2_is_upgraded_by_a_writer_and_refused_by_a_reader(
    tmp_path: Path, pg_database: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"tomato-soup-{i}.md": prose(i, 4) for i in range(3)})
    _ingest(tree, pg_database)
    # Laid out as schema 2 was: no index of titles and paths.
    execute(
        pg_database,
        "ALTER TABLE funcpipe.documents DROP COLUMN tsv",
        "UPDATE funcpipe.meta SET value = '2' WHERE key = 'schema'",
    )
    search = run_cli("search", "tomato", "--index", pg_database)
    assert search.returncode == 2
    lines = search.stderr.strip().splitlines()
    assert len(lines) == 1 and "older schema version 2" in lines[0], search.stderr
    _ingest(tree, pg_database)
    assert rows(pg_database, "SELECT value FROM funcpipe.meta WHERE key = 'schema'") == [("3",)]
    assert (
        count(pg_database, "funcpipe.documents WHERE tsv @@ to_tsquery('english', 'tomato')") == 3
    )
    found = run_cli("search", "tomato soup", "--index", pg_database)
    assert found.returncode == 0 and "tomato-soup" in found.stdout
