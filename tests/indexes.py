"""Look inside an index of either backend the way a test needs to (raw SQL on its tables).

The tables have the same names and columns in SQLite and in a PostgreSQL collection
(``documents``, ``chunks``, ``vectors``, ``meta``), so most queries run on both.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from funcpipe_rag.index import is_postgres


def rows(target: str, sql: str, *, collection: str = "funcpipe") -> list[tuple[Any, ...]]:
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
