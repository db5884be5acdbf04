"""A chunk write carries the free vectors its batch made: both in one transaction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from funcpipe_rag.errors import IndexDamagedError
from funcpipe_rag.index import IndexSpace, open_index
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.indexes import pending_chunk, rows


def test_the_batch_and_its_vectors_are_stored_together_or_not_at_all(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    vectors = {f"h{i}": np.full(4, i + 1, dtype="<f4").tobytes() for i in range(3)}
    index = open_index(str(db), IndexSpace("hash", "m", 4, "c"), ResourceLedger())
    try:
        good = [pending_chunk(i, content_hash=f"h{i}") for i in range(3)]
        # A row the table refuses (its path is NOT NULL) fails the whole write after
        # the vectors went in: they roll back with it.
        bad = [*good[:2], replace(good[2], path=None)]  # type: ignore[arg-type]
        with pytest.raises(IndexDamagedError):
            index.write(bad, vectors)
        assert rows(db, "SELECT count(*) FROM vectors") == [(0,)]
        assert rows(db, "SELECT count(*) FROM chunks") == [(0,)]
        index.write(good, vectors)
    finally:
        index.close()
    assert rows(db, "SELECT content_hash FROM vectors ORDER BY 1") == [("h0",), ("h1",), ("h2",)]
    assert rows(db, "SELECT chunk_id FROM chunks ORDER BY seq") == [("d-0",), ("d-1",), ("d-2",)]
