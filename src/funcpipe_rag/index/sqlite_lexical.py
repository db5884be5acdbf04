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

``verify`` compares the indexed rows with the chunk rows (``INDEX/FTS_MISMATCH``).

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
TRIGGERS = ("chunks_fts_delete", "chunks_fts_update")
_ADD = f"INSERT INTO {TABLE}(rowid, text) VALUES (new.id, new.text);"
_DROP = f"INSERT INTO {TABLE}({TABLE}, rowid, text) VALUES ('delete', old.id, old.text);"
SCHEMA = (
    (
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, content='chunks', content_rowid='id', "
        f"tokenize='{TOKENIZE}')"
    ),
    f"CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN {_DROP} END",
    f"CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN {_DROP} {_ADD} END",
)


def rebuild(conn: sqlite3.Connection) -> None:
    """Index every chunk row now in ``chunks`` (the v3 migration: existing rows)."""
    conn.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def last_row(conn: sqlite3.Connection) -> int:
    """The largest chunk row id now: rows inserted after this call have larger ones."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0])


def index_rows_after(conn: sqlite3.Connection, last: int) -> None:
    """Index the chunk rows inserted since :func:`last_row` returned ``last`` (call in
    the transaction that inserted them)."""
    conn.execute(
        f"INSERT INTO {TABLE}(rowid, text) SELECT id, text FROM chunks WHERE id > ?", (last,)
    )


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


__all__ = [
    "SCHEMA",
    "TABLE",
    "TOKENIZE",
    "TRIGGERS",
    "check",
    "index_rows_after",
    "last_row",
    "rank",
    "rebuild",
]
