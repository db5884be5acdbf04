"""The SQLite index: documents, chunks and vectors of one vector space.

One file, WAL journal, batched transactions: what a run stored survives any
interruption, a ``kill -9`` included, and the next run embeds only what is missing.

Tables::

    meta(key, value)            schema version, embedder, model, dim, chunker
    documents(doc_id, path, abs_path, size, mtime_ns, file_hash, complete, run_id)
    chunks(chunk_id, doc_id, seq, start, end, text, content_hash, run_id)
    vectors(content_hash, vector)  float32 little-endian blobs, one per distinct content

A document row's ``file_hash`` is set (``complete = 1``) only once every chunk of that
version of the file is stored; only then are the file's stale chunks (from older runs)
deleted — new chunks are always written before old ones go.

The index refuses to mix vector spaces: opening it with another embedder, model,
dimension or chunker raises :class:`~funcpipe_rag.errors.IndexMismatchError`.
"""

from __future__ import annotations

import enum
import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, IndexLockedError, IndexMismatchError, ResourceClosedError
from .policies.ledger import Handle, ResourceLedger

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    file_hash TEXT,
    complete INTEGER NOT NULL DEFAULT 0,
    run_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    run_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS vectors (content_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class IndexSpace:
    """The vector space an index holds; two runs may share an index only if equal."""

    embedder: str
    model: str
    dim: int
    chunker: str

    def as_meta(self) -> dict[str, str]:
        return {
            "embedder": self.embedder,
            "model": self.model,
            "dim": str(self.dim),
            "chunker": self.chunker,
        }

    @property
    def key(self) -> str:
        return f"{self.embedder}:{self.model}:{self.dim or '?'}"


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StoredDoc:
    file_hash: str | None
    complete: bool


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A chunk waiting for the next commit, with what its document row needs."""

    chunk_id: str
    doc_id: str
    path: str
    abs_path: str
    seq: int
    start: int
    end: int
    text: str
    content_hash: str  # its vector is in the index already (store_vectors)
    doc_size: int
    doc_mtime_ns: int
    doc_hash: str
    last_of_doc: bool
    doc_failed: bool


class RunLock:
    """An exclusive ``flock`` on ``<index>.lock`` for the whole run."""

    def __init__(self, index: Path, ledger: ResourceLedger, timeout_s: float) -> None:
        self._ledger = ledger
        lock_path = index.with_name(index.name + ".lock")
        try:
            self._fd: int | None = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create the index lock {lock_path}: {exc}") from None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    self._fd = None
                    raise IndexLockedError(
                        f"another funcpipe run is writing {index} (waited {timeout_s:g} s); "
                        "wait for it, or use another --index"
                    ) from None
                time.sleep(0.05)
        self._handle = ledger.acquire("index_lock", str(lock_path))

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.close(fd)  # closing the descriptor releases the flock
        finally:
            self._ledger.release(self._handle)


class SqliteIndex:
    """An open index bound to one vector space; ``close()`` is idempotent.

    Use :func:`open_index`; writes go through :meth:`stage` and :meth:`commit`.
    """

    def __init__(
        self,
        path: Path,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        busy_timeout_s: float = 10.0,
        readonly: bool = False,
        lock_timeout_s: float = 10.0,
    ) -> None:
        self.path = path
        self.run_id = uuid.uuid4().hex[:12]
        self._ledger = ledger
        if readonly and not path.exists():
            raise ConfigError(f"index not found: {path}")
        # One writer at a time: a second run waits up to lock_timeout_s, then fails
        # clearly. The lock dies with its process, kill -9 included.
        self._lock = None if readonly else RunLock(path, ledger, lock_timeout_s)
        try:
            uri = f"file:{path}?mode=ro" if readonly else str(path)
            self._conn = sqlite3.connect(
                uri,
                uri=readonly,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            if self._lock is not None:
                self._lock.close()
            raise ConfigError(f"cannot open index {path}: {exc}") from None
        self._handle: Handle = ledger.acquire("index_db", str(path))
        self._state = _State.OPEN
        # Invariant: _pending holds chunks staged since the last commit, in stream order.
        self._pending: list[PendingChunk] = []
        self._write_lock = threading.RLock()
        try:
            self.space = self._prepare(space, readonly)
        except BaseException:
            self.close()
            raise

    def _prepare(self, space: IndexSpace | None, readonly: bool) -> IndexSpace:
        conn = self._conn
        try:
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IndexLockedError(f"index {self.path} is locked by another writer") from None
            raise ConfigError(f"{self.path} is not a usable funcpipe index: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable funcpipe index: {exc}") from None
        if "embedder" in meta:
            stored = IndexSpace(meta["embedder"], meta["model"], int(meta["dim"]), meta["chunker"])
            if space is None:
                return stored
            same_dim = not stored.dim or not space.dim or stored.dim == space.dim
            if (stored.embedder, stored.model, stored.chunker) != (
                space.embedder,
                space.model,
                space.chunker,
            ) or not same_dim:
                raise IndexMismatchError(
                    f"index {self.path} holds {stored.key} chunked {stored.chunker}; "
                    f"this run uses {space.key} chunked {space.chunker}. "
                    "Use another --index, or --reembed to migrate it."
                )
            return IndexSpace(
                stored.embedder, stored.model, stored.dim or space.dim, stored.chunker
            )
        if space is None:
            raise ConfigError(f"{self.path} is empty: nothing has been ingested into it")
        if readonly:
            raise ConfigError(f"{self.path} is not a funcpipe index")
        with self._transaction():
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema", SCHEMA_VERSION), *space.as_meta().items()],
            )
        return space

    def _check_open(self) -> sqlite3.Connection:
        if self._state is _State.CLOSED:
            raise ResourceClosedError("the index is closed")
        return self._conn

    class _Tx:
        """One write transaction at a time on the shared connection: embedding worker
        threads persist vectors while the main thread commits chunk rows."""

        def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
            self.conn = conn
            self.lock = lock

        def __enter__(self) -> None:
            self.lock.acquire()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.lock.release()
                raise

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.lock.release()

    def _transaction(self) -> SqliteIndex._Tx:
        return SqliteIndex._Tx(self._check_open(), self._write_lock)

    # -- reads ----------------------------------------------------------------------

    def stored_doc(self, doc_id: str) -> StoredDoc | None:
        row = (
            self._check_open()
            .execute("SELECT file_hash, complete FROM documents WHERE doc_id = ?", (doc_id,))
            .fetchone()
        )
        return None if row is None else StoredDoc(row[0], bool(row[1]))

    def fetch_vectors(self, content_hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vector of each of ``content_hashes`` that has one."""
        conn = self._check_open()
        unique = list(dict.fromkeys(content_hashes))
        found: dict[str, bytes] = {}
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT content_hash, vector FROM vectors WHERE content_hash IN ({marks})"
            found.update(conn.execute(sql, part).fetchall())
        return found

    def counts(self) -> dict[str, int]:
        conn = self._check_open()
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("documents", "chunks", "vectors")
        }

    def iter_rows(self) -> Iterator[tuple[str, str, int, int, str, bytes]]:
        """(chunk_id, path, start, end, text, vector) for every stored chunk."""
        conn = self._check_open()
        yield from conn.execute(
            'SELECT c.chunk_id, d.path, c.start, c."end", c.text, v.vector '
            "FROM chunks c JOIN documents d USING (doc_id) JOIN vectors v USING (content_hash) "
            "ORDER BY d.path, c.seq"
        )

    def documents(self) -> list[tuple[str, str, str, str | None, bool]]:
        """(doc_id, path, abs_path, file_hash, complete) of every document."""
        rows = self._check_open().execute(
            "SELECT doc_id, path, abs_path, file_hash, complete FROM documents ORDER BY abs_path"
        )
        return [(d, p, a, h, bool(c)) for d, p, a, h, c in rows]

    def known_hashes(self, content_hashes: Sequence[str]) -> set[str]:
        """Which of ``content_hashes`` already have a vector."""
        conn = self._check_open()
        unique = list(dict.fromkeys(content_hashes))
        found: set[str] = set()
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT content_hash FROM vectors WHERE content_hash IN ({marks})"
            found.update(r[0] for r in conn.execute(sql, part))
        return found

    def consistency_issues(self) -> list[tuple[str, str]]:
        """What is wrong inside the file itself, as (code, detail) pairs; [] if nothing."""
        conn = self._check_open()
        issues: list[tuple[str, str]] = []
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            issues += [("INDEX/INTEGRITY", line) for line in integrity[:20]]
            return issues  # a damaged file: the queries below would only mislead
        dim = self.space.dim
        checks = [
            (
                "INDEX/BAD_DIM",
                "SELECT content_hash, length(vector) / 4 FROM vectors WHERE length(vector) != ?",
                (dim * 4,),
                "vector {0} has {1} dimensions, the index holds {dim}",
            ),
            (
                "INDEX/ORPHAN_CHUNK",
                (
                    "SELECT chunk_id, doc_id FROM chunks WHERE doc_id NOT IN "
                    "(SELECT doc_id FROM documents)"
                ),
                (),
                "chunk {0} belongs to no document ({1})",
            ),
            (
                "INDEX/MISSING_VECTOR",
                (
                    "SELECT chunk_id, content_hash FROM chunks WHERE content_hash NOT IN "
                    "(SELECT content_hash FROM vectors)"
                ),
                (),
                "chunk {0} has no vector ({1})",
            ),
            (
                "INDEX/EMPTY_DOCUMENT",
                (
                    "SELECT doc_id, path FROM documents WHERE complete = 1 AND doc_id NOT IN "
                    "(SELECT doc_id FROM chunks)"
                ),
                (),
                "document {1} is marked complete but has no chunks",
            ),
            (
                "INDEX/INCOMPLETE",
                "SELECT doc_id, path FROM documents WHERE complete = 0",
                (),
                "document {1} was not stored completely (an interrupted run)",
            ),
        ]
        for code, sql, args, template in checks:
            if code == "INDEX/BAD_DIM" and not dim:
                continue
            for row in conn.execute(sql, args):
                issues.append((code, template.format(*row, dim=dim)))
        return issues

    # -- writes ---------------------------------------------------------------------

    def stage(self, chunk: PendingChunk) -> int:
        """Queue ``chunk`` for the next commit; returns how many are queued."""
        self._check_open()
        self._pending.append(chunk)
        return len(self._pending)

    def commit(self) -> list[PendingChunk]:
        """Write every staged chunk in one transaction; returns them once durable.

        Their vectors were stored before (:meth:`store_vectors`), so a chunk row never
        points at a missing vector.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        run = self.run_id
        with self._transaction():
            conn = self._conn
            conn.executemany(
                "INSERT INTO documents"
                "(doc_id, path, abs_path, size, mtime_ns, file_hash, complete, run_id) "
                "VALUES (?, ?, ?, ?, ?, NULL, 0, ?) ON CONFLICT(doc_id) DO UPDATE SET "
                "path = excluded.path, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "run_id = excluded.run_id",
                list(
                    {
                        p.doc_id: (p.doc_id, p.path, p.abs_path, p.doc_size, p.doc_mtime_ns, run)
                        for p in pending
                    }.values()
                ),
            )
            conn.executemany(
                "INSERT INTO chunks"
                '(chunk_id, doc_id, seq, start, "end", text, content_hash, run_id) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(chunk_id) DO UPDATE SET "
                "seq = excluded.seq, run_id = excluded.run_id",
                [
                    (p.chunk_id, p.doc_id, p.seq, p.start, p.end, p.text, p.content_hash, run)
                    for p in pending
                ],
            )
            for p in pending:
                if p.last_of_doc and not p.doc_failed:
                    # Every chunk of this version is stored: mark it, then drop stale ones.
                    conn.execute(
                        "UPDATE documents SET file_hash = ?, complete = 1 WHERE doc_id = ?",
                        (p.doc_hash, p.doc_id),
                    )
                    conn.execute(
                        "DELETE FROM chunks WHERE doc_id = ? AND run_id != ?", (p.doc_id, run)
                    )
        return pending

    def _fix_dim(self, conn: sqlite3.Connection, vectors: list[bytes]) -> None:
        """Record the dimension on the first vectors; refuse any other size later."""
        if not vectors:
            return
        sizes = {len(v) // 4 for v in vectors}
        dim = self.space.dim or min(sizes)
        if sizes != {dim}:
            raise IndexMismatchError(
                f"index {self.path} holds {dim}-d vectors, got {sorted(sizes)}"
            )
        if not self.space.dim:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'dim'", (str(dim),))
            s = self.space
            self.space = IndexSpace(s.embedder, s.model, dim, s.chunker)

    def store_vectors(self, vectors: dict[str, bytes]) -> None:
        """Persist paid-for vectors now, in their own small transaction; thread-safe.

        The vectors table is a content-addressed cache: a vector stored here is never
        bought again, even if the chunks it belongs to were not stored yet.
        """
        if not vectors:
            return
        with self._transaction():
            self._fix_dim(self._conn, list(vectors.values()))
            self._conn.executemany(
                "INSERT OR IGNORE INTO vectors(content_hash, vector) VALUES (?, ?)",
                list(vectors.items()),
            )

    def prune(self, roots: Sequence[str], keep: set[str], *, everything: bool = False) -> int:
        """Delete documents (and their chunks) under ``roots`` whose id is not in ``keep``.

        ``roots`` are absolute, display-safe paths of walked folders; a document is under
        a root when its absolute path starts with the root and a separator. With
        ``everything``, every document not in ``keep`` goes (a complete path list).
        Vectors stay: they are paid for and may be reused. Returns documents deleted.
        """
        conn = self._check_open()
        rows = conn.execute("SELECT doc_id, abs_path FROM documents").fetchall()
        prefixes = tuple(r.rstrip("/") + "/" for r in roots)
        doomed = [
            doc_id
            for doc_id, abs_path in rows
            if doc_id not in keep and (everything or abs_path.startswith(prefixes))
        ]
        if doomed:
            with self._transaction():
                for i in range(0, len(doomed), 500):
                    part = doomed[i : i + 500]
                    marks = ",".join("?" * len(part))
                    conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
                    conn.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", part)
        return len(doomed)

    def close(self) -> None:
        """Commit nothing further and close the connection; safe to call twice."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        try:
            self._conn.close()
        finally:
            self._ledger.release(self._handle)
            if self._lock is not None:
                self._lock.close()

    def __enter__(self) -> SqliteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_index(
    path: Path,
    space: IndexSpace | None,
    ledger: ResourceLedger,
    *,
    readonly: bool = False,
    lock_timeout_s: float = 10.0,
) -> SqliteIndex:
    """Open (creating if needed) the index at ``path`` for ``space``; a context manager.

    A writable index holds the run lock until closed; a read-only one takes none.
    """
    return SqliteIndex(path, space, ledger, readonly=readonly, lock_timeout_s=lock_timeout_s)


def rebuild_path(index: Path) -> Path:
    """Where ``--reembed`` builds the new index beside the live one (and resumes it)."""
    return index.with_name(index.name + ".reembed")


def swap_in_rebuild(index: Path) -> None:
    """Replace ``index`` by its finished rebuild, atomically.

    The old file's write-ahead log is checkpointed and removed first: a stale ``-wal``
    left beside the new file would be replayed into it.
    """
    if index.exists():
        conn = sqlite3.connect(index)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
    os.replace(rebuild_path(index), index)
