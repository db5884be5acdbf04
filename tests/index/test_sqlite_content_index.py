"""A run that creates an SQLite index indexes chunks by content once, when it closes,
instead of row by row; a writer that finds the index without it (a first run killed)
builds it when it opens; a search is right either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from funcpipe_rag.index import IndexSpace, PendingChunk, Query, open_index
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.indexes import pending_chunk, rows

SPACE = IndexSpace("hash", "m", 4, "c")
HAS_IT = "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_by_content'"


def _vector(i: int) -> bytes:
    return np.eye(4, dtype="<f4")[i % 4].tobytes()


def _chunks(doc: str) -> list[PendingChunk]:
    """Three chunks of ``doc``: two documents share every content (one hit, two places)."""
    fields = {"doc_id": doc, "path": f"{doc}.md"}
    return [
        pending_chunk(i, content_hash=f"h{i}", text=f"text {i}", last_of_doc=i == 2, **fields)
        for i in range(3)
    ]


def test_a_new_index_indexes_chunks_by_content_when_its_first_run_closes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    ledger = ResourceLedger()
    index = open_index(str(db), SPACE, ledger)
    try:
        index.write(_chunks("a"), {f"h{i}": _vector(i) for i in range(3)})
        index.write(_chunks("b"))
        assert rows(db, HAS_IT) == [(0,)]  # not while the run writes
        # A search meanwhile still collapses identical content into one hit.
        reader = open_index(str(db), None, ledger, readonly=True)
        try:
            query = Query(text="text", vector=np.eye(4, dtype=np.float32)[0], k=3, mode="vector")
            hits = reader.search(query)
        finally:
            reader.close()
        assert sorted(hits[0].paths) == ["a.md", "b.md"]
    finally:
        index.close()
    assert rows(db, HAS_IT) == [(1,)]
    plan = rows(db, "EXPLAIN QUERY PLAN SELECT id FROM chunks WHERE content_hash = 'h0'")
    assert "chunks_by_content" in plan[0][-1]
    assert ledger.snapshot().open_total == 0


_KILLED_FIRST_RUN = """
import os, signal, sys
import numpy as np
from funcpipe_rag.index import IndexSpace, open_index
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.indexes import pending_chunk

index = open_index(sys.argv[1], IndexSpace("hash", "m", 4, "c"), ResourceLedger())
vector = np.eye(4, dtype="<f4")[0].tobytes()
index.write([pending_chunk(0, content_hash="h0", last_of_doc=True)], {"h0": vector})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_opening_an_index_whose_first_run_was_killed_builds_it(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    proc = subprocess.run([sys.executable, "-c", _KILLED_FIRST_RUN, str(db)], timeout=60)
    assert proc.returncode == -9
    assert rows(db, "SELECT count(*) FROM chunks") == [(1,)]  # committed before the kill
    assert rows(db, HAS_IT) == [(0,)]
    index = open_index(str(db), SPACE, ResourceLedger())
    try:
        assert rows(db, HAS_IT) == [(1,)]  # at open, before anything else is written
        index.write([pending_chunk(0, doc_id="e", content_hash="h0", last_of_doc=True)])
    finally:
        index.close()
    assert rows(db, "SELECT count(*) FROM chunks INDEXED BY chunks_by_content "
                    "WHERE content_hash = 'h0'") == [(2,)]  # fmt: skip
