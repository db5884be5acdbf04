"""A run's own vector cache, for runs that write no index (``--no-index``).

Without an index nothing remembers what this run already paid for, so an identical
chunk met again later would be embedded again. The cache is a throwaway SQLite file in
the temporary folder (flat memory at any corpus size; nothing is fsynced), counted in
the ledger as ``vector_cache`` and deleted when closed.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..policies.ledger import ResourceLedger


class VectorCache:
    """Content hash -> vector bytes for one run; thread-safe; ``close()`` is idempotent."""

    def __init__(self, ledger: ResourceLedger) -> None:
        self._ledger = ledger
        self._dir = tempfile.TemporaryDirectory(prefix="funcpipe-cache-")
        try:
            self._conn = sqlite3.connect(
                Path(self._dir.name) / "vectors.db", isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=OFF")
            self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.execute("CREATE TABLE vectors (content_hash TEXT PRIMARY KEY, vector BLOB)")
        except BaseException:
            self._dir.cleanup()
            raise
        self._lock = threading.Lock()
        self._handle = ledger.acquire("vector_cache", self._dir.name)
        self._closed = False

    def fetch_vectors(self, content_hashes: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(content_hashes))
        with self._lock:
            for i in range(0, len(unique), 500):
                part = unique[i : i + 500]
                marks = ",".join("?" * len(part))
                sql = f"SELECT content_hash, vector FROM vectors WHERE content_hash IN ({marks})"
                found.update(self._conn.execute(sql, part).fetchall())
        return found

    def store_vectors(self, vectors: Mapping[str, bytes]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?)", list(vectors.items())
            )
            self._conn.execute("COMMIT")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
            self._dir.cleanup()
        finally:
            self._ledger.release(self._handle)
