"""A writing SQLite index copies its write-ahead log into the database file on a thread
of its own, while it stays open, and joins that thread on close."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from funcpipe_rag.index import IndexSpace, open_index
from funcpipe_rag.index.sqlite_checkpointer import Checkpointer
from funcpipe_rag.policies.ledger import ResourceLedger


def _rows_in_the_file_alone(db: Path, table: str) -> int:
    """Rows of ``table`` in the database file itself: ``immutable`` makes SQLite read the
    file as it is, without the write-ahead log (where commits wait to be copied)."""
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?immutable=1", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:  # the file has no such table yet: still all in the log
        return 0
    finally:
        conn.close()


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_commits_reach_the_database_file_while_the_writer_commits_on(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # the writer never copies the log itself
    writer.execute("CREATE TABLE t (x INTEGER)")
    ledger = ResourceLedger()
    checkpointer = Checkpointer(db, ledger, period_s=0.01)
    try:
        for i in range(50):
            writer.execute("INSERT INTO t VALUES (?)", (i,))
        _wait_for(lambda: _rows_in_the_file_alone(db, "t") == 50, "the log was never copied")
        assert checkpointer.error is None
    finally:
        checkpointer.close()
        checkpointer.close()  # idempotent
        writer.close()
    counts = ledger.snapshot().by_kind["worker_thread"]
    assert (counts.acquired, counts.released) == (1, 1)


def test_a_writing_index_checkpoints_while_open_and_joins_the_thread_on_close(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    ledger = ResourceLedger()
    index = open_index(str(db), IndexSpace("hash", "m", 4, "c"), ledger)
    try:
        # A few vectors: far below any automatic checkpoint mark, so only the
        # checkpointer's own passes can bring them into the file before close.
        index.store_vectors({f"h{i}": np.full(4, i, dtype="<f4").tobytes() for i in range(8)})
        _wait_for(
            lambda: _rows_in_the_file_alone(db, "vectors") == 8,
            "the stored vectors stayed in the write-ahead log",
        )
        assert ledger.snapshot().by_kind["worker_thread"].open == 1
    finally:
        index.close()
    snapshot = ledger.snapshot()
    assert snapshot.by_kind["worker_thread"].open == 0
    assert snapshot.by_kind["index_db"].open == 0
    assert not any(t.name == "funcpipe-checkpoint" for t in threading.enumerate())


def test_a_read_only_index_runs_no_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ledger = ResourceLedger()
    space = IndexSpace("hash", "m", 4, "c")
    open_index(str(db), space, ledger).close()
    reader = open_index(str(db), None, ledger, readonly=True)
    reader.close()
    assert ledger.snapshot().by_kind["worker_thread"].acquired == 1  # the writer's alone
