"""The lexical side of the SQLite index: an FTS5 table over chunk text, ranked by BM25.

``chunks_fts`` is an external-content FTS5 table: it stores only the inverted index;
the text stays in ``chunks`` (keyed by its ``id INTEGER PRIMARY KEY``, which ``VACUUM``
never renumbers). Triggers on ``chunks`` keep it in step inside the very statement that
changes a chunk row, so every path that writes or deletes chunks — a write, the delete
of a file's stale chunks, pruning, a ``--reembed`` rebuild, a run resumed after
``kill -9`` — changes both in one transaction, and no future path can forget to.
Explicit maintenance in :meth:`SqliteIndex.write` would do the same work (the cost is
the FTS insert itself, measured in the README) with one more thing to get wrong.

Tokeniser: ``unicode61`` (Unicode letters and digits; diacritics folded) under the
Porter stemmer, so "retries" finds "retry" and "stopped" finds "stop" (measured on the
labelled sample set, see the README).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

TOKENIZE = "porter unicode61 remove_diacritics 2"
TABLE = "chunks_fts"
TRIGGERS = ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update")
_ADD = f"INSERT INTO {TABLE}(rowid, text) VALUES (new.id, new.text);"
_DROP = f"INSERT INTO {TABLE}({TABLE}, rowid, text) VALUES ('delete', old.id, old.text);"
SCHEMA = (
    (
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, content='chunks', content_rowid='id', "
        f"tokenize='{TOKENIZE}')"
    ),
    f"CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN {_ADD} END",
    f"CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN {_DROP} END",
    f"CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN {_DROP} {_ADD} END",
)


def rebuild(conn: sqlite3.Connection) -> None:
    """Index every chunk row now in ``chunks`` (the v3 migration: existing rows)."""
    conn.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query that matches any of ``terms`` (letters and digits only, so quoting
    each as a string leaves no FTS syntax to inject)."""
    return " OR ".join(f'"{t}"' for t in terms)


def rank(
    conn: sqlite3.Connection, terms: Sequence[str], n: int, docs: Sequence[str] | None = None
) -> list[tuple[int, float]]:
    """(chunk row id, BM25 score) of the best ``n`` chunk rows holding any of ``terms``,
    best first; ``docs`` restricts them to those documents. Scores are FTS5's
    ``bm25()`` with its sign flipped: higher is better, always above 0."""
    if not terms:
        return []
    sql = f"SELECT rowid, -bm25({TABLE}) AS s FROM {TABLE} WHERE {TABLE} MATCH ?"
    args: list[object] = [match_expression(terms)]
    if docs is not None:
        sql += (
            " AND rowid IN (SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)))"
        )
        args.append(_json_list(docs))
    sql += f" ORDER BY bm25({TABLE}), rowid LIMIT ?"
    args.append(n)
    return [(int(r), float(s)) for r, s in conn.execute(sql, args)]


def check(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(code, detail) pairs when the full-text index and the chunk rows differ."""
    (indexed,) = conn.execute(f"SELECT count(*) FROM {TABLE}_docsize").fetchone()
    (chunks,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
    (dangling,) = conn.execute(
        f"SELECT count(*) FROM {TABLE}_docsize WHERE id NOT IN (SELECT id FROM chunks)"
    ).fetchone()
    (missing,) = conn.execute(
        f"SELECT count(*) FROM chunks WHERE id NOT IN (SELECT id FROM {TABLE}_docsize)"
    ).fetchone()
    if (indexed, dangling, missing) == (chunks, 0, 0):
        return []
    detail = (
        f"the full-text index holds {indexed} rows for {chunks} chunk rows "
        f"({missing} chunks not indexed, {dangling} index rows of deleted chunks)"
    )
    return [("INDEX/FTS_MISMATCH", detail)]


def _json_list(values: Sequence[object]) -> str:
    return json.dumps(list(values))


__all__ = ["SCHEMA", "TABLE", "TOKENIZE", "TRIGGERS", "check", "rank", "rebuild"]
