"""Look inside an index of either backend the way a test needs to (raw SQL on its tables),
and make the rows a test writes into one (:func:`pending_chunk`).

The tables have the same names and columns in SQLite and in a PostgreSQL collection
(``documents``, ``chunks``, ``vectors``, ``meta``), so most queries run on both.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from funcpipe_rag.index import PendingChunk, is_postgres, sqlite_lexical


def pending_chunk(seq: int, *, doc_id: str = "d", **fields: Any) -> PendingChunk:
    """Chunk ``seq`` of document ``doc_id`` (id ``<doc_id>-<seq>``), with a placeholder
    for everything else; ``fields`` set any field."""
    values: dict[str, Any] = {
        "chunk_id": f"{doc_id}-{seq}", "doc_id": doc_id, "path": doc_id,
        "abs_path": f"/{doc_id}", "seq": seq, "start": 0, "end": 1, "text": "x",
        "content_hash": "h", "doc_size": 1, "doc_mtime_ns": 0, "doc_hash": "f",
        "last_of_doc": False, "doc_failed": False,
    }  # fmt: skip
    return PendingChunk(**(values | fields))


def rows(target: str | Path, sql: str, *, collection: str = "funcpipe") -> list[tuple[Any, ...]]:
    if is_postgres(target):
        with psycopg.connect(
            target, autocommit=True, options=f"-c search_path={collection},public"
        ) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]
    conn = sqlite3.connect(target)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def execute(target: str, *statements: str, collection: str = "funcpipe") -> None:
    """Change an index behind funcpipe's back (to damage it on purpose)."""
    if is_postgres(target):
        with psycopg.connect(
            target, autocommit=True, options=f"-c search_path={collection},public"
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        return
    conn = sqlite3.connect(target)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def count(target: str, table: str = "chunks") -> int:
    return int(rows(target, f"SELECT COUNT(*) FROM {table}")[0][0])


def chunk_ids(target: str) -> list[str]:
    return sorted(r[0] for r in rows(target, "SELECT chunk_id FROM chunks"))


def content(target: str) -> list[tuple[Any, ...]]:
    """Everything stored that identifies the index's state (documents, chunks, meta)."""
    return [
        *rows(target, "SELECT doc_id, file_hash, complete FROM documents ORDER BY doc_id"),
        *rows(target, "SELECT chunk_id, seq FROM chunks ORDER BY chunk_id"),
        *rows(target, "SELECT key, value FROM meta ORDER BY key"),
        *rows(target, "SELECT content_hash FROM vectors ORDER BY content_hash"),
    ]


def to_older_schema(db: Path, version: str) -> None:
    """Turn an index of this version into one laid out as ``version`` (1 to 5) was: 5
    has chunk ids unique on their own (not within their document) and an index of
    chunks by document; 4 also no index of document titles and paths; 3 also no stored
    stat signatures; 2 and 1 also have chunks keyed by chunk_id, no vector blocks, no
    full-text index."""
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        ALTER TABLE chunks RENAME TO chunks_v6;
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
            seq INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
            text TEXT NOT NULL, content_hash TEXT NOT NULL, run_id TEXT NOT NULL,
            section TEXT NOT NULL DEFAULT '', page INTEGER, block INTEGER);
        INSERT INTO chunks SELECT * FROM chunks_v6 ORDER BY id;
        DROP TABLE chunks_v6;
        CREATE INDEX chunks_by_doc ON chunks(doc_id);
        CREATE INDEX chunks_by_block ON chunks(block);
        CREATE INDEX chunks_by_content ON chunks(content_hash);
        """
    )
    for statement in sqlite_lexical.CHUNK_TRIGGERS:
        conn.execute(statement)
    if version == "5":
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
        conn.commit()
        conn.close()
        return
    conn.executescript(
        """
        DROP TABLE documents_fts;
        DROP TRIGGER documents_fts_insert;
        DROP TRIGGER documents_fts_delete;
        DROP TRIGGER documents_fts_update;
        """
    )
    if version != "4":
        conn.execute("ALTER TABLE documents DROP COLUMN signature")
    if version in ("3", "4"):
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
        conn.commit()
        conn.close()
        return
    conn.executescript(
        """
        DROP TABLE chunks_fts;
        DROP TABLE vector_blocks;
        CREATE TABLE chunks_v2 (
            chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, seq INTEGER NOT NULL,
            start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
            content_hash TEXT NOT NULL, run_id TEXT NOT NULL,
            section TEXT NOT NULL DEFAULT '', page INTEGER);
        INSERT INTO chunks_v2 SELECT chunk_id, doc_id, seq, start, "end", text,
            content_hash, run_id, section, page FROM chunks ORDER BY id;
        DROP TABLE chunks;
        ALTER TABLE chunks_v2 RENAME TO chunks;
        CREATE INDEX chunks_by_doc ON chunks(doc_id);
        """
    )
    if version == "1":
        for table, column in (("documents", "reader"), ("documents", "encoding"),
                              ("documents", "title"), ("documents", "note"),
                              ("chunks", "section"), ("chunks", "page")):  # fmt: skip
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
    conn.commit()
    conn.close()
