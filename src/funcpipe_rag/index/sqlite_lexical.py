"""The lexical side of the SQLite index: an FTS5 table over chunk text, ranked by BM25.

``chunks_fts`` is an external-content FTS5 table: it stores only the inverted index;
the text stays in ``chunks`` (keyed by its ``id INTEGER PRIMARY KEY``, which ``VACUUM``
never renumbers). It changes in the transaction that changes the chunk rows:

* Deletes (and text updates) by triggers on ``chunks``: every path that removes rows —
  the delete of a file's stale chunks, pruning, any later one — keeps the index in step
  without knowing it exists. External content needs the old text to delete an entry,
  and a trigger has it at hand.
* New rows by :func:`index_rows_after`, one ``INSERT ... SELECT`` per written batch, in
  :meth:`SqliteIndex.write`'s transaction. A per-row insert trigger did the same work
  1.7-2.1x slower (``python -m bench index-writes``), and rows are inserted in one
  place only (a write; an upgrade rebuilds the whole index).

``documents_fts`` (schema 5) indexes each document's title and stored path (its
folders and file name: the tokeniser splits at ``/``, ``.``, ``-`` and ``_``), so the
lexical ranking can add a chunk's document's evidence (:func:`.ranking.lexical`). It is
a small table keyed by ``doc_id`` (an unindexed column: the ``documents`` rowid is not
stable under ``VACUUM``) and kept by triggers on ``documents``: a new row, a changed
title or path, a deleted row. The update trigger fires only when the title or path
really changed, so rewriting a document's row (every batch of a run) costs nothing.

``verify`` compares the indexed rows with the chunk rows and the document rows
(``INDEX/FTS_MISMATCH``).

Tokeniser: ``unicode61`` (Unicode letters and digits; diacritics folded) under the
Porter stemmer, so "retries" finds "retry" and "stopped" finds "stop" (measured on the
labelled sample set, see the README).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from .ranking import TextQuery

TOKENIZE = "porter unicode61 remove_diacritics 2"
TABLE = "chunks_fts"
TRIGGERS = ("chunks_fts_delete", "chunks_fts_update")
_ADD = f"INSERT INTO {TABLE}(rowid, text) VALUES (new.id, new.text);"
_DROP = f"INSERT INTO {TABLE}({TABLE}, rowid, text) VALUES ('delete', old.id, old.text);"
# The triggers on ``chunks`` (made again when that table is rebuilt: the v6 migration).
CHUNK_TRIGGERS: tuple[str, ...] = (
    f"CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN {_DROP} END",
    f"CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN {_DROP} {_ADD} END",
)
SCHEMA: tuple[str, ...] = (
    (
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, content='chunks', content_rowid='id', "
        f"tokenize='{TOKENIZE}')"
    ),
    *CHUNK_TRIGGERS,
)
DOC_TABLE = "documents_fts"
DOC_TRIGGERS = ("documents_fts_insert", "documents_fts_delete", "documents_fts_update")
_DOC_ADD = f"INSERT INTO {DOC_TABLE}(doc_id, title, path) VALUES (new.doc_id, new.title, new.path);"
_DOC_DROP = f"DELETE FROM {DOC_TABLE} WHERE doc_id = old.doc_id;"
DOC_SCHEMA: tuple[str, ...] = (
    (
        f"CREATE VIRTUAL TABLE {DOC_TABLE} USING fts5(doc_id UNINDEXED, title, path, "
        f"tokenize='{TOKENIZE}')"
    ),
    f"CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN {_DOC_ADD} END",
    f"CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN {_DOC_DROP} END",
    (
        "CREATE TRIGGER documents_fts_update AFTER UPDATE OF doc_id, title, path ON documents "
        "WHEN old.doc_id IS NOT new.doc_id OR old.title IS NOT new.title "
        f"OR old.path IS NOT new.path BEGIN {_DOC_DROP} {_DOC_ADD} END"
    ),
)


def rebuild(conn: sqlite3.Connection) -> None:
    """Index every chunk row now in ``chunks`` (the v3 migration: existing rows)."""
    conn.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def rebuild_documents(conn: sqlite3.Connection) -> None:
    """Index every document row now in ``documents`` (the v4 migration: existing rows)."""
    conn.execute(
        f"INSERT INTO {DOC_TABLE}(doc_id, title, path) SELECT doc_id, title, path FROM documents"
    )


def last_row(conn: sqlite3.Connection) -> int:
    """The largest chunk row id now: rows inserted after this call have larger ones."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0])


def index_rows_after(conn: sqlite3.Connection, last: int) -> None:
    """Index the chunk rows inserted since :func:`last_row` returned ``last`` (call in
    the transaction that inserted them)."""
    conn.execute(
        f"INSERT INTO {TABLE}(rowid, text) SELECT id, text FROM chunks WHERE id > ?", (last,)
    )


def match_expression(query: TextQuery) -> str:
    """An FTS5 query that matches any of the terms, or any pair as a phrase (letters and
    digits only, so quoting each as a string leaves no FTS syntax to inject). BM25 sums
    over every term and phrase, so a chunk with a pair side by side scores higher."""
    phrases = [*(f'"{t}"' for t in query.terms), *(f'"{a} {b}"' for a, b in query.pairs)]
    return " OR ".join(phrases)


def rank(
    conn: sqlite3.Connection, query: TextQuery, n: int, docs: Sequence[str] | None = None
) -> list[tuple[int, float]]:
    """(chunk row id, BM25 score) of the best ``n`` chunk rows matching ``query``, best
    first; ``docs`` restricts them to those documents. Scores are FTS5's ``bm25()`` with
    its sign flipped: higher is better, always above 0."""
    if not query.terms:
        return []
    sql = f"SELECT rowid, -bm25({TABLE}) AS s FROM {TABLE} WHERE {TABLE} MATCH ?"
    args: list[object] = [match_expression(query)]
    if docs is not None:
        sql += (
            " AND rowid IN (SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)))"
        )
        args.append(_json_list(docs))
    sql += f" ORDER BY bm25({TABLE}), rowid LIMIT ?"
    args.append(n)
    return [(int(r), float(s)) for r, s in conn.execute(sql, args)]


def rank_documents(
    conn: sqlite3.Connection, query: TextQuery, docs: Sequence[str]
) -> dict[str, float]:
    """doc_id -> BM25 of the title and path (sign flipped: higher is better) for each of
    ``docs`` they match; a document that does not match is left out."""
    if not query.terms or not docs:
        return {}
    rows = conn.execute(
        f"SELECT doc_id, -bm25({DOC_TABLE}) FROM {DOC_TABLE} WHERE {DOC_TABLE} MATCH ? "
        "AND doc_id IN (SELECT value FROM json_each(?))",
        (match_expression(query), _json_list(docs)),
    )
    return {str(d): float(s) for d, s in rows}


def check(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(code, detail) pairs when the full-text indexes differ from the chunk rows or the
    document rows."""
    (indexed,) = conn.execute(f"SELECT count(*) FROM {TABLE}_docsize").fetchone()
    (chunks,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
    (dangling,) = conn.execute(
        f"SELECT count(*) FROM {TABLE}_docsize WHERE id NOT IN (SELECT id FROM chunks)"
    ).fetchone()
    (missing,) = conn.execute(
        f"SELECT count(*) FROM chunks WHERE id NOT IN (SELECT id FROM {TABLE}_docsize)"
    ).fetchone()
    found = []
    if (indexed, dangling, missing) != (chunks, 0, 0):
        detail = (
            f"the full-text index holds {indexed} rows for {chunks} chunk rows "
            f"({missing} chunks not indexed, {dangling} index rows of deleted chunks)"
        )
        found.append(("INDEX/FTS_MISMATCH", detail))
    # Each document once, with its title and path as they are now.
    (docs,) = conn.execute("SELECT count(*) FROM documents").fetchone()
    (entries,) = conn.execute(f"SELECT count(*) FROM {DOC_TABLE}").fetchone()
    (stale,) = conn.execute(
        f"SELECT count(*) FROM {DOC_TABLE} f WHERE NOT EXISTS (SELECT 1 FROM documents d "
        "WHERE d.doc_id = f.doc_id AND d.title IS f.title AND d.path IS f.path)"
    ).fetchone()
    if (entries, stale) != (docs, 0):
        detail = (
            f"the title and path index holds {entries} rows for {docs} documents "
            f"({stale} rows of deleted documents or of an older title or path)"
        )
        found.append(("INDEX/FTS_MISMATCH", detail))
    return found


def _json_list(values: Sequence[object]) -> str:
    return json.dumps(list(values))


__all__ = [
    "DOC_SCHEMA",
    "DOC_TABLE",
    "DOC_TRIGGERS",
    "SCHEMA",
    "TABLE",
    "TOKENIZE",
    "TRIGGERS",
    "check",
    "index_rows_after",
    "last_row",
    "rank",
    "rank_documents",
    "rebuild",
    "rebuild_documents",
]
