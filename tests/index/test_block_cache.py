"""A searcher that stays open keeps its vector blocks in memory: same hits as a plain
scan of the file, and never stale after another process writes the index."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcpipe_rag.config import RunSettings
from funcpipe_rag.index import Hit, Query, open_index
from funcpipe_rag.index.sqlite import SqliteIndex
from funcpipe_rag.index.sqlite_block_cache import BlockCache
from funcpipe_rag.index.sqlite_search import search
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.search import query_vector
from tests.cli.helpers import prose, run_cli, write_tree

WORDS = ["stream", "chunk", "index", "vector", "breaker", "socket", "retry", "garden", "recipe"]


def ingest(root: Path, db: Path) -> None:
    args = ["ingest", str(root), "--index", str(db), "--chunk-size", "200", "--overlap", "20"]
    proc = run_cli(*args, "--quiet", "--report", "none")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    db = root.parent / "index.db"
    for run in range(4):  # each run's chunks go into a new block: several blocks
        files: dict[str, str | bytes] = {f"doc{run}-{i}.md": prose(run * 3 + i) for i in range(3)}
        files[f"copy{run}.md"] = prose(1)  # identical chunks in several files and blocks
        write_tree(root, files)
        ingest(root, db)
    (blocks,) = sqlite3.connect(db).execute("SELECT count(*) FROM vector_blocks").fetchone()
    assert blocks > 3
    return db


@contextlib.contextmanager
def opened(db: Path) -> Iterator[SqliteIndex]:
    index = open_index(db, None, ResourceLedger(), readonly=True)
    assert isinstance(index, SqliteIndex)
    with contextlib.closing(index):
        yield index


def held(index: SqliteIndex) -> bool:
    return index._blocks is not None and index._blocks.held  # the state under test


def fresh(db: Path, query: Query) -> list[Hit]:
    """What a first search (a plain scan of the file) answers."""
    with opened(db) as index:
        hits = index.search(query)
        assert not held(index)
        return hits


def query_of(index: SqliteIndex, text: str, mode: str, k: int) -> Query:
    vector = query_vector(index, text, "", ResourceLedger(), RunSettings())
    return Query(text=text, vector=vector, mode=mode, k=k)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
    mode=st.sampled_from(["hybrid", "vector"]),
    k=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_held_copy_ranks_exactly_like_the_file(
    built: Path, words: list[str], mode: str, k: int, seed: int
) -> None:
    with opened(built) as index:
        text = " ".join(words)
        query = query_of(index, text, mode, k)
        first = index.search(query)
        assert not held(index)  # one search keeps nothing
        second = index.search(query)
        assert held(index)
        # The map is dropped while the copy is held: later reads go through SQLite's
        # bounded page cache, so RSS stays flat.
        assert index._conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
        assert first == second
        # Any vector, not only embedded text: a random direction, same hits either way.
        rng = np.random.default_rng(seed)
        vector = rng.standard_normal(index.space.dim).astype(np.float32)
        vector /= np.linalg.norm(vector)
        other = Query(text=text, vector=vector, mode=mode, k=k)
        assert index.search(other) == fresh(built, other)
        assert held(index)


def test_a_write_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", {f"doc{i}.md": prose(i) for i in range(6)})
    db = tmp_path / "index.db"
    ingest(root, db)
    with opened(db) as index:
        query = query_of(index, "garden recipe ledger", "hybrid", 10)
        index.search(query)
        index.search(query)
        assert held(index)
        # Another process edits, adds and deletes files while this searcher stays open.
        (root / "doc1.md").write_text(prose(40) + "\nzqvnewmark appears here.\n")
        (root / "doc2.md").unlink()
        (root / "doc9.md").write_text(prose(41))
        ingest(root, db)
        for _ in range(3):  # the plain scan after the change, a new copy, the copy
            for mode in ("hybrid", "vector", "lexical"):
                q = query_of(index, "garden recipe ledger", mode, 10)
                assert index.search(q) == fresh(db, q), mode
            (top, *_) = index.search(query_of(index, "zqvnewmark", "hybrid", 3))
            assert top.path.endswith("/doc1.md")
        assert held(index)
        assert all(not h.path.endswith("/doc2.md") for h in index.search(query))


def test_blocks_over_the_limit_are_never_copied(built: Path) -> None:
    conn = sqlite3.connect(built, isolation_level=None)
    try:
        cache = BlockCache(1 << 31, max_bytes=0)
        vector = np.ones(
            int(conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0]),
            dtype=np.float32,
        )
        query = Query(text="garden", vector=vector / np.linalg.norm(vector), mode="vector", k=5)
        answers = [search(conn, query, cache) for _ in range(3)]
        assert not cache.held
        assert answers[0] == answers[1] == answers[2] and answers[0]
    finally:
        conn.close()
