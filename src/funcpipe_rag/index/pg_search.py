"""Search inside a PostgreSQL index: pgvector ranks vectors, full-text search ranks text.

The flow every backend shares (:func:`.ranking.search_in`), in one read-only
REPEATABLE READ transaction (one snapshot while other workers commit): each engine
nominates its best contents, they are fused exactly as for SQLite, and text is read for
the ``k`` kept. The lexical side is PostgreSQL's own full-text search: the ``tsv`` column of
``chunks`` (``to_tsvector('english', text)``, generated, so every write path keeps it in
step) behind a GIN index, matched by any query term or any pair of adjacent terms as a
phrase and scored by ``ts_rank`` with length normalisation — not BM25, but fusion divides
each ranking by its best score, so only its order and margins matter. The documents'
titles and paths are ranked the same way (``documents.tsv``) and added by
:func:`.ranking.lexical`, as for SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from .base import Hit, Query
from .pg_schema import TEXT_CONFIG
from .ranking import Candidate, Place, TextQuery, search_in


def search(conn: psycopg.Connection[Any], query: Query, *, hnsw: bool) -> list[Hit]:
    """The hits of ``query``, best first (see :meth:`VectorIndex.search`)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return search_in(_Engine(conn, hnsw=hnsw), query)


class _Engine:
    """The PostgreSQL index's :class:`~.ranking.RankingEngine`: pgvector and full-text
    search."""

    def __init__(self, conn: psycopg.Connection[Any], *, hnsw: bool) -> None:
        self._conn = conn
        self._hnsw = hnsw

    def document_paths(self) -> list[tuple[str, str, str]]:
        return self._conn.execute("SELECT doc_id, path, abs_path FROM documents").fetchall()

    def vector_candidates(
        self, vector: np.ndarray[Any, Any], n: int, docs: list[str] | None
    ) -> list[Candidate]:
        return _vector_candidates(self._conn, vector, n, docs, hnsw=self._hnsw)

    def text_candidates(
        self, query: TextQuery, rows: int, docs: list[str] | None
    ) -> list[Candidate]:
        return _text_candidates(self._conn, query, rows, docs)

    def document_scores(self, query: TextQuery, docs: Sequence[str]) -> dict[str, float]:
        if not query.terms or not docs:
            return {}
        found = self._conn.execute(
            "SELECT d.doc_id, ts_rank(d.tsv, q, 1) FROM documents d, "
            f"to_tsquery('{TEXT_CONFIG}', %(q)s) q WHERE d.tsv @@ q AND d.doc_id = ANY(%(docs)s)",
            {"q": _tsquery(query), "docs": list(docs)},
        ).fetchall()
        return {str(d): float(score) for d, score in found}

    def places(self, key: str, docs: list[str] | None) -> list[Place]:
        return _places(self._conn, key, docs)


def _vector_candidates(
    conn: psycopg.Connection[Any],
    vector: np.ndarray[Any, Any],
    n: int,
    docs: list[str] | None,
    *,
    hnsw: bool,
) -> list[Candidate]:
    """The ``n`` stored contents closest to ``vector`` with a positive cosine. Exact,
    unless the collection has an HNSW index: then the index's nearest ``2 n`` contents,
    kept if a chunk (within ``docs``) holds them."""
    live = "SELECT content_hash FROM chunks" + (" WHERE doc_id = ANY(%(docs)s)" if docs else "")
    if hnsw:
        # ef_search bounds how many neighbours the index can return (pgvector caps it at 1000).
        conn.execute(f"SET LOCAL hnsw.ef_search = {min(1000, max(40, 2 * n))}")
        statement = (
            "WITH near AS (SELECT content_hash, embedding <=> %(q)s AS distance FROM vectors "
            "ORDER BY embedding <=> %(q)s LIMIT %(near)s) "
            f"SELECT content_hash, 1 - distance FROM near WHERE content_hash IN ({live}) "
            "ORDER BY distance, content_hash LIMIT %(n)s"
        )
    else:
        statement = (
            "SELECT content_hash, 1 - (embedding <=> %(q)s) FROM vectors "
            f"WHERE content_hash IN ({live}) "
            "ORDER BY embedding <=> %(q)s, content_hash LIMIT %(n)s"
        )
    q = np.asarray(vector, dtype=np.float32)
    rows = conn.execute(statement, {"q": q, "n": n, "near": 2 * n, "docs": docs}).fetchall()
    return [Candidate(str(h), float(score)) for h, score in rows if score > 0]


def _tsquery(query: TextQuery) -> str:
    """Any term, or any pair as a phrase. Terms are runs of letters and digits
    (:func:`.ranking.query_terms`), so this is a well-formed tsquery; each word is
    stemmed like the indexed text."""
    return " | ".join([*query.terms, *(f"{a} <-> {b}" for a, b in query.pairs)])


def _text_candidates(
    conn: psycopg.Connection[Any], query: TextQuery, rows: int, docs: list[str] | None
) -> list[Candidate]:
    """The best ``rows`` chunk rows matching ``query`` (identical chunks tie and crowd
    the list, so rows, not contents, are asked for; fusion keeps each content's first
    place)."""
    if not query.terms:
        return []
    where = " AND c.doc_id = ANY(%(docs)s)" if docs else ""
    found = conn.execute(
        "SELECT c.content_hash, ts_rank(c.tsv, q, 1) AS score, c.doc_id "
        f"FROM chunks c, to_tsquery('{TEXT_CONFIG}', %(q)s) q WHERE c.tsv @@ q{where} "
        "ORDER BY score DESC, c.chunk_id LIMIT %(rows)s",
        {"q": _tsquery(query), "rows": rows, "docs": docs},
    ).fetchall()
    return [Candidate(str(h), float(score), doc=str(d)) for h, score, d in found]


def _places(
    conn: psycopg.Connection[Any], content_hash: str, docs: list[str] | None
) -> list[Place]:
    where = " AND c.doc_id = ANY(%(docs)s)" if docs is not None else ""
    rows = conn.execute(
        'SELECT c.chunk_id, c.doc_id, d.path, c.start, c."end", c.text, d.title, c.section, '
        "c.page, d.reader, d.encoding FROM chunks c JOIN documents d USING (doc_id) "
        f"WHERE c.content_hash = %(h)s{where} ORDER BY d.path, c.start, c.chunk_id",
        {"h": content_hash, "docs": docs},
    ).fetchall()
    return [Place(*row) for row in rows]


__all__ = ["search"]
