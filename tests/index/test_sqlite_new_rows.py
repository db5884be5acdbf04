"""Lookups of a table that was empty when the index was opened skip the SQL for keys it
surely lacks: they must answer exactly as the SQL alone does."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from funcpipe_rag.index import IndexSpace, PendingChunk, open_index
from funcpipe_rag.index.sqlite_new_rows import NewKeys
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.indexes import pending_chunk

_HASHES = st.text(alphabet="0123456789abcdef", min_size=1, max_size=32)


@given(added=st.lists(st.text()), probes=st.lists(st.text()))
def test_the_filter_never_misses_a_content_it_was_given(
    added: list[str], probes: list[str]
) -> None:
    new = NewKeys()
    new.add_all(added)
    kept = new.might_hold(probes + added)
    assert kept[len(kept) - len(added) :] == added  # every added one, in order
    assert set(kept) <= set(probes + added)


def test_the_filter_says_absent_of_nearly_everything_not_given() -> None:
    new = NewKeys()
    new.add_all(f"stored-{i}" for i in range(100_000))
    assert len(new.might_hold([f"other-{i}" for i in range(100_000)])) < 2_000


def _truth(db: Path, probes: list[str]) -> dict[str, bytes]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT content_hash, vector FROM vectors").fetchall()
    finally:
        conn.close()
    return {h: v for h, v in rows if h in set(probes)}


@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(st.lists(_HASHES, max_size=12), max_size=5),
    probes=st.lists(_HASHES, max_size=20),
)
def test_lookups_of_an_index_new_at_open_equal_the_sql_answers(
    batches: list[list[str]], probes: list[str]
) -> None:
    ledger = ResourceLedger()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "x.db"
        space = IndexSpace("hash", "m", 4, "c")
        # Every stored hash is probed too, beside others never stored.
        asked = probes + [h for batch in batches for h in batch]
        for reopened in (False, True):
            index = open_index(str(db), space, ledger)
            try:
                assert (index._new is not None) is (not reopened or not any(batches))  # type: ignore[attr-defined]
                if not reopened:
                    for n, batch in enumerate(batches):
                        index.store_vectors(
                            {h: np.full(4, n + 1, dtype="<f4").tobytes() for h in batch}
                        )
                truth = _truth(db, asked)
                assert index.fetch_vectors(asked) == truth
                assert index.known_hashes(asked) == set(truth)
            finally:
                index.close()
    assert ledger.snapshot().by_kind["index_db"].open == 0


def _pending(doc_id: str, seq: int) -> PendingChunk:
    return pending_chunk(seq, doc_id=doc_id, last_of_doc=True)


@settings(max_examples=20, deadline=None)
@given(
    written=st.lists(st.lists(_HASHES, min_size=1, max_size=6), max_size=4),
    probes=st.lists(_HASHES, max_size=10),
)
def test_documents_of_an_index_new_at_open_are_found_as_the_sql_finds_them(
    written: list[list[str]], probes: list[str]
) -> None:
    ledger = ResourceLedger()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "x.db"
        asked = probes + [d for batch in written for d in batch]
        expected = {d for batch in written for d in batch}
        for reopened in (False, True):
            index = open_index(str(db), IndexSpace("hash", "m", 4, "c"), ledger)
            try:
                assert (index._new_docs is not None) is (not reopened or not written)  # type: ignore[attr-defined]
                if not reopened:
                    index.store_vectors({"h": np.ones(4, dtype="<f4").tobytes()})
                    for batch in written:
                        index.write([_pending(d, n) for n, d in enumerate(batch)])
                found = {d for d in asked if index.stored_doc(d) is not None}
                assert found == expected
            finally:
                index.close()
    assert ledger.snapshot().by_kind["index_db"].open == 0
