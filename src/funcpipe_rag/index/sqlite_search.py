"""Search inside the SQLite index: rank vectors and text in the store, fetch the top k.

One read transaction (one snapshot, even while an ingest commits): the vector blocks
are scanned (:mod:`.sqlite_vectors`), the FTS5 tables are asked for their BM25 rankings
of chunk text and of the matching chunks' document titles and paths
(:mod:`.sqlite_lexical`), the rankings are combined and fused (:mod:`.ranking`), and only
then is text read — for the ``k`` contents kept, with every place that holds each of them.
A read-only index that stays open reads its blocks from a copy in memory after its first
search (:mod:`.sqlite_block_cache`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import sqlite_lexical as lexical
from . import sqlite_vectors as vectors
from .base import Hit, Query
from .ranking import Candidate, Place, TextQuery, search_in
from .sqlite_block_cache import BlockCache


def search(conn: sqlite3.Connection, query: Query, cache: BlockCache | None = None) -> list[Hit]:
    """The hits of ``query``, best first (see :meth:`VectorIndex.search`).

    ``cache`` (read-only connections only: it trusts that this connection never
    writes) keeps the vector blocks between the searches of one connection.
    """
    conn.execute("BEGIN")
    try:
        if cache is not None:
            cache.begin(conn)  # first: its statement opens the snapshot it checks
        hits = search_in(_Engine(conn, cache), query)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return hits


class _Engine:
    """The SQLite index's :class:`~.ranking.RankingEngine`: vector blocks and FTS5."""

    def __init__(self, conn: sqlite3.Connection, cache: BlockCache | None) -> None:
        self._conn = conn
        self._cache = cache

    def document_paths(self) -> list[tuple[str, str, str]]:
        return self._conn.execute("SELECT doc_id, path, abs_path FROM documents").fetchall()

    def vector_candidates(
        self, vector: npt.NDArray[np.float32], n: int, docs: list[str] | None
    ) -> list[Candidate]:
        conn = self._conn
        allowed = _vids_of(conn, docs) if docs is not None else None
        q = np.asarray(vector, dtype=np.float32)
        if self._cache is not None:
            blocks = self._cache.blocks(conn, q.size)
        else:
            blocks = vectors.read_blocks(conn, q.size)
        scored = vectors.scan(blocks, q, n, allowed)
        hashes = _hashes_of_vids(conn, [s.vid for s in scored])
        return [Candidate(hashes[s.vid], s.score) for s in scored if s.vid in hashes]

    def text_candidates(
        self, query: TextQuery, rows: int, docs: list[str] | None
    ) -> list[Candidate]:
        ranked = lexical.rank(self._conn, query, rows, docs)
        found = _hashes_of_rows(self._conn, [r for r, _ in ranked])
        return [Candidate(found[r][0], s, doc=found[r][1]) for r, s in ranked if r in found]

    def document_scores(self, query: TextQuery, docs: Sequence[str]) -> dict[str, float]:
        return lexical.rank_documents(self._conn, query, docs)

    def places(self, key: str, docs: list[str] | None) -> list[Place]:
        places = [
            Place(*row)
            for row in self._conn.execute(
                'SELECT c.chunk_id, c.doc_id, d.path, c.start, c."end", c.text, d.title, '
                "c.section, c.page, d.reader, d.encoding FROM chunks c JOIN documents d "
                "USING (doc_id) WHERE c.content_hash = ? ORDER BY d.path, c.start, c.chunk_id",
                (key,),
            )
        ]
        if docs is not None:
            wanted = set(docs)
            places = [p for p in places if p.doc_id in wanted]
        return places


def _vids_of(conn: sqlite3.Connection, docs: Sequence[str]) -> npt.NDArray[np.int64]:
    rows = conn.execute(
        "SELECT rowid FROM vectors WHERE content_hash IN (SELECT content_hash FROM chunks "
        "WHERE doc_id IN (SELECT value FROM json_each(?))) ORDER BY rowid",
        (json.dumps(list(docs)),),
    ).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _hashes_of_vids(conn: sqlite3.Connection, vids: Sequence[int]) -> dict[int, str]:
    sql = "SELECT rowid, content_hash FROM vectors WHERE rowid IN (SELECT value FROM json_each(?))"
    return {int(v): h for v, h in conn.execute(sql, (json.dumps(list(vids)),))}


def _hashes_of_rows(conn: sqlite3.Connection, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Chunk row id -> (content hash, doc_id)."""
    sql = "SELECT id, content_hash, doc_id FROM chunks WHERE id IN (SELECT value FROM json_each(?))"
    return {int(r): (h, d) for r, h, d in conn.execute(sql, (json.dumps(list(rows)),))}


__all__ = ["search"]
