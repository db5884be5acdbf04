"""The index writer thread: in order, bounded, stops at the first failure, always joined;
and the SQLite index's lookups, which see committed rows only."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from funcpipe_rag.errors import IndexWriteError
from funcpipe_rag.index import IndexSpace, PendingChunk, open_index
from funcpipe_rag.index.writer import IndexWriter
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.indexes import pending_chunk


class _Recorder:
    """The two writes an IndexWriter calls, recorded with the thread that made them;
    ``gate`` holds every write until it is set; write number ``fail_at`` fails."""

    def __init__(self, fail_at: int | None = None, *, beside_reads: bool = True) -> None:
        self.writes_beside_reads = beside_reads
        self.calls: list[tuple[str, object, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_at = fail_at
        self.writes = 0

    def store_vectors(self, vectors: Mapping[str, bytes]) -> None:
        self.calls.append(("vectors", sorted(vectors), threading.get_ident()))

    def write(
        self, batch: Sequence[PendingChunk], vectors: Mapping[str, bytes] | None = None
    ) -> None:
        if vectors:
            self.store_vectors(vectors)
        self.gate.wait()
        self.writes += 1
        if self.writes == self.fail_at:
            raise IndexWriteError("disk full")
        self.calls.append(("write", [p.chunk_id for p in batch], threading.get_ident()))


def _chunk(n: int) -> PendingChunk:
    return pending_chunk(n, chunk_id=f"c{n}", content_hash=f"h{n}")


def test_writes_run_on_one_other_thread_in_order_and_are_reported_in_order() -> None:
    index, ledger, stored = _Recorder(), ResourceLedger(), []
    threads_before = threading.active_count()
    writer: IndexWriter[int] = IndexWriter(index, ledger, stored.append, depth=2)  # type: ignore[arg-type]
    for n in range(6):
        writer.submit([_chunk(n)], {f"h{n}": b"v"} if n % 2 else {}, n)
    writer.drain()
    writer.close()
    assert stored == list(range(6))
    assert [c[1] for c in index.calls if c[0] == "write"] == [[f"c{n}"] for n in range(6)]
    # vectors first, then the chunks that use them
    assert [c[:2] for c in index.calls[:3]] == [
        ("write", ["c0"]), ("vectors", ["h1"]), ("write", ["c1"])
    ]  # fmt: skip
    writer_threads = {c[2] for c in index.calls}
    assert len(writer_threads) == 1 and threading.get_ident() not in writer_threads
    assert threading.active_count() == threads_before
    assert ledger.snapshot().by_kind["worker_pool"].to_jsonable() == {
        "acquired": 1, "released": 1, "open": 0
    }  # fmt: skip


def test_a_submit_beyond_depth_waits_for_the_oldest_write() -> None:
    index, stored = _Recorder(), []
    index.gate.clear()
    writer: IndexWriter[int] = IndexWriter(index, ResourceLedger(), stored.append, depth=2)  # type: ignore[arg-type]
    writer.submit([_chunk(0)], {}, 0)
    writer.submit([_chunk(1)], {}, 1)
    third = threading.Thread(target=writer.submit, args=([_chunk(2)], {}, 2))
    third.start()
    third.join(0.3)
    assert third.is_alive() and stored == []  # held: two batches are in flight already
    index.gate.set()
    third.join(20)
    assert not third.is_alive() and stored[:1] == [0]
    writer.drain()
    writer.close()
    assert stored == [0, 1, 2]


def test_the_first_failure_is_raised_once_and_nothing_behind_it_is_written() -> None:
    index, stored = _Recorder(fail_at=2), []
    index.gate.clear()
    threads_before = threading.active_count()
    writer: IndexWriter[int] = IndexWriter(index, ResourceLedger(), stored.append, depth=5)  # type: ignore[arg-type]
    for n in range(4):
        writer.submit([_chunk(n)], {}, n)
    index.gate.set()
    with pytest.raises(IndexWriteError):
        writer.drain()
    assert writer.broken
    writer.drain()  # the batches behind the failure are dropped, never reported
    writer.close()
    assert stored == [0]
    assert [c[1] for c in index.calls] == [["c0"]]
    assert threading.active_count() == threads_before


def test_close_joins_the_thread_even_with_writes_queued() -> None:
    index, stored = _Recorder(), []
    index.gate.clear()
    threads_before = threading.active_count()
    writer: IndexWriter[int] = IndexWriter(index, ResourceLedger(), stored.append, depth=3)  # type: ignore[arg-type]
    for n in range(3):
        writer.submit([_chunk(n)], {}, n)
    threading.Timer(0.2, index.gate.set).start()
    writer.close()
    writer.close()  # idempotent
    assert stored == []  # a stopping run: stored perhaps, never claimed
    assert threading.active_count() == threads_before


def test_an_index_that_cannot_write_beside_reads_is_written_on_the_callers_thread() -> None:
    index, ledger, stored = _Recorder(fail_at=3, beside_reads=False), ResourceLedger(), []
    threads_before = threading.active_count()
    writer: IndexWriter[int] = IndexWriter(index, ledger, stored.append, depth=2)  # type: ignore[arg-type]
    writer.submit([_chunk(0)], {"h0": b"v"}, 0)
    writer.submit([_chunk(1)], {}, 1)
    assert threading.active_count() == threads_before  # no thread, ever
    with pytest.raises(IndexWriteError):
        writer.submit([_chunk(2)], {}, 2)
        writer.drain()
    writer.close()
    assert stored == [0, 1]
    assert {c[2] for c in index.calls} == {threading.get_ident()}
    assert "worker_pool" not in ledger.snapshot().by_kind


def test_sqlite_lookups_see_committed_rows_only(tmp_path: Path) -> None:
    """A lookup on the consuming thread never sees (nor waits for) a write in progress:
    it reads on a connection of its own (before, it shared the writer's and saw the
    uncommitted row)."""
    ledger = ResourceLedger()
    index = open_index(str(tmp_path / "x.db"), IndexSpace("hash", "m", 4, "c"), ledger)
    try:
        blob = np.ones(4, dtype="<f4").tobytes()
        with index._transaction() as conn:  # type: ignore[attr-defined]
            index._insert_vectors(conn, {"h": blob})  # type: ignore[attr-defined]
            assert index.fetch_vectors(["h"]) == {}
        assert index.fetch_vectors(["h"]) == {"h": blob}
    finally:
        index.close()
    assert ledger.snapshot().by_kind["index_db"].open == 0


def test_ctrl_c_while_waiting_for_a_write_leaves_it_to_be_reported() -> None:
    """A signal that interrupts the wait for a write is not a failed write: the batch is
    still being stored, so the drain that follows (the run's last commit) reports it,
    and the writer is not broken. (It was popped and the writer marked broken: the run
    stored the batch and never counted or printed it.)"""
    index, stored = _Recorder(), []
    index.gate.clear()
    writer: IndexWriter[int] = IndexWriter(index, ResourceLedger(), stored.append, depth=1)  # type: ignore[arg-type]
    writer.submit([_chunk(0)], {}, 0)  # in flight, held at the gate
    ctrl_c = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.submit([_chunk(1)], {}, 1)  # waits for batch 0: interrupted
    finally:
        ctrl_c.join()
        index.gate.set()
    assert not writer.broken
    writer.drain()
    writer.close()
    assert stored == [0, 1]
    assert [c[1] for c in index.calls if c[0] == "write"] == [["c0"], ["c1"]]
