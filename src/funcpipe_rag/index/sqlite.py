"""The SQLite index: documents, chunks and vectors of one vector space, in one file.

WAL journal, batched transactions: what a run stored survives any interruption, a
``kill -9`` included, and the next run embeds only what is missing.

Tables (schema version 5)::

    meta(key, value)            schema version, embedder, model, dim, chunker
    documents(doc_id, path, abs_path, size, mtime_ns, file_hash, complete, run_id,
              reader, encoding, title, note, signature)
    chunks(id, chunk_id, doc_id, seq, start, end, text, content_hash, run_id, section,
           page, block)
    vectors(content_hash, vector)  float32 little-endian blobs, one per distinct content
    vector_blocks(block, vids, vectors)  the vectors chunks use, packed for the search
                                scan (:mod:`.sqlite_vectors`)
    chunks_fts                  FTS5 over chunk text, kept by triggers (:mod:`.sqlite_lexical`)
    documents_fts               FTS5 over document titles and paths, kept by triggers

Search lives in :mod:`.sqlite_search`. This module is long because it holds the whole
life of one file — create, trust, upgrade, write, prune, check, swap — which share one
connection, one lock and one transaction discipline.

A document row's ``file_hash`` is set (``complete = 1``) only once every chunk of that
version of the file is stored; only then are the file's stale chunks (from older runs)
deleted — new chunks are always written before old ones go.

Trust, on open: the schema is created only in a new, empty file. An existing file must
hold every table and column and the meta keys, and pass SQLite's ``quick_check`` — of
every page when opened for writing, of the small tables (``meta``, ``documents``) when
opened read-only; anything else is :class:`~funcpipe_rag.errors.IndexDamagedError`
(exit 2), never silently re-created. ``cell_size_check`` makes SQLite test every page
it reads, so a corrupt page a search meets later is the same clear error; ``verify``
runs the full ``integrity_check``.

Read-only media: a WAL database needs a writable ``-shm`` file beside it. When the
folder cannot take one, the index is opened ``immutable`` (nothing can change it
there anyway), provided no write-ahead log is left to replay.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    FuncpipeError,
    IndexDamagedError,
    IndexLockedError,
    IndexMismatchError,
    IndexWriteError,
    ResourceClosedError,
)
from ..policies.ledger import Handle, ResourceLedger
from . import sqlite_lexical, sqlite_vectors
from .base import (
    FileShare,
    Finding,
    Hit,
    IndexCounts,
    IndexSpace,
    PendingChunk,
    Query,
    SignatureRefresh,
    StoredDocument,
)
from .local import LocalShare
from .lock import RunLock
from .options import IndexOptions
from .sqlite_block_cache import BlockCache
from .sqlite_checkpointer import BACKSTOP_PAGES, Checkpointer
from .sqlite_new_rows import NewKeys

SCHEMA_VERSION = "6"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    file_hash TEXT,
    complete INTEGER NOT NULL DEFAULT 0,
    run_id TEXT NOT NULL,
    reader TEXT NOT NULL DEFAULT '',
    encoding TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    signature TEXT
);
CREATE TABLE vectors (content_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""
# The chunks table of version 6: an INTEGER PRIMARY KEY (the full-text index refers to
# it, and VACUUM never renumbers it), the vector block of each row, and chunk ids unique
# within their document. A chunk id hashes its document's id (chunking/chunks.py), so
# (doc_id, chunk_id) is as unique as chunk_id alone; but its index keeps the rows of one
# document side by side, so a write of a few documents' chunks changes a few leaf pages
# of it, not one random page per row as the chunk_id index of versions 3-5 did (that
# was ~9% of a hash-embedder ingest of the real corpus; see the README). It also serves
# every lookup by document, which needed an index of its own before.
_CHUNKS = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    run_id TEXT NOT NULL,
    section TEXT NOT NULL DEFAULT '',
    page INTEGER,
    block INTEGER,
    UNIQUE(doc_id, chunk_id)
)"""
_CHUNK_INDEXES = ("CREATE INDEX chunks_by_block ON chunks(block)",)
# Every place of one content, for collapsing identical chunks into one hit. Its keys are
# random, so keeping it row by row dirties one page per row at every commit (~6% of a
# hash-embedder ingest of the real corpus, see the README); building it once over the
# finished rows costs ~0.2 s CPU per 100,000. So a run that creates the index builds it
# when it closes, and every writer that opens an index builds it if it is missing (after
# a kill -9 of that first run). Nothing depends on it but the speed of a search's last
# step (a search without it reads the table), and no write path reads it.
_CONTENT_INDEX = "CREATE INDEX IF NOT EXISTS chunks_by_content ON chunks(content_hash)"
# What an existing file must hold to be trusted (the schema above, by name).
_TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "documents": (
        "doc_id",
        "path",
        "abs_path",
        "size",
        "mtime_ns",
        "file_hash",
        "complete",
        "run_id",
        "reader",
        "encoding",
        "title",
        "note",
        "signature",
    ),
    "chunks": (
        "id",
        "chunk_id",
        "doc_id",
        "seq",
        "start",
        "end",
        "text",
        "content_hash",
        "run_id",
        "section",
        "page",
        "block",
    ),
    "vectors": ("content_hash", "vector"),
    "vector_blocks": sqlite_vectors.COLUMNS,
}
# Tables every version has: an older index lacks the others until it is upgraded.
_CORE_TABLES = ("meta", "documents", "chunks", "vectors")
_META_KEYS = ("schema", "embedder", "model", "dim", "chunker")


def _create_search_tables(conn: sqlite3.Connection) -> None:
    """Chunks, their indexes (but :data:`_CONTENT_INDEX`), the vector blocks and the
    full-text indexes with their triggers (statement by statement: a trigger body holds
    semicolons)."""
    conn.execute(_CHUNKS)
    for statement in (
        *_CHUNK_INDEXES,
        *sqlite_vectors.SCHEMA,
        *sqlite_lexical.SCHEMA,
        *sqlite_lexical.DOC_SCHEMA,
    ):
        conn.execute(statement)


def _v1_to_v2(conn: sqlite3.Connection) -> str:
    """Version 2 adds what readers extract: reader, encoding, title, section, page; and
    why a document is incomplete (``note``). Old rows read as "reader unknown", so the
    next run re-reads their files once (their vectors are reused, not bought again)."""
    for table, column in (
        ("documents", "reader TEXT NOT NULL DEFAULT ''"),
        ("documents", "encoding TEXT NOT NULL DEFAULT ''"),
        ("documents", "title TEXT NOT NULL DEFAULT ''"),
        ("documents", "note TEXT NOT NULL DEFAULT ''"),
        ("chunks", "section TEXT NOT NULL DEFAULT ''"),
        ("chunks", "page INTEGER"),
    ):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    return "2"


def _v2_to_v3(conn: sqlite3.Connection) -> str:
    """Version 3 adds search structures: chunk rows get an integer key and a vector
    block, vectors of stored chunks are packed into blocks, and an FTS5 index covers
    chunk text (built from the copied rows)."""
    conn.execute("ALTER TABLE chunks RENAME TO chunks_v2")
    conn.execute(_CHUNKS)
    conn.execute(
        'INSERT INTO chunks(chunk_id, doc_id, seq, start, "end", text, content_hash, run_id, '
        'section, page) SELECT chunk_id, doc_id, seq, start, "end", text, content_hash, '
        "run_id, section, page FROM chunks_v2 ORDER BY rowid"
    )
    conn.execute("DROP TABLE chunks_v2")
    for statement in (
        *_CHUNK_INDEXES,
        _CONTENT_INDEX,
        *sqlite_vectors.SCHEMA,
        *sqlite_lexical.SCHEMA,
    ):
        conn.execute(statement)
    sqlite_lexical.rebuild(conn)
    sqlite_vectors.pack_all(conn)
    return "3"


def _v3_to_v4(conn: sqlite3.Connection) -> str:
    """Version 4 keeps each document's stat signature (:mod:`funcpipe_rag.signature`).
    Old rows get NULL, untrusted: the next run reads and hashes their files as before
    (and stores a signature for those it finds unchanged)."""
    conn.execute("ALTER TABLE documents ADD COLUMN signature TEXT")
    return "4"


def _v4_to_v5(conn: sqlite3.Connection) -> str:
    """Version 5 adds a full-text index of document titles and paths (built from the
    rows already there); nothing else changes."""
    for statement in sqlite_lexical.DOC_SCHEMA:
        conn.execute(statement)
    sqlite_lexical.rebuild_documents(conn)
    return "5"


_CHUNK_COLUMNS = ", ".join(f'"{c}"' for c in _TABLES["chunks"])


def _v5_to_v6(conn: sqlite3.Connection) -> str:
    """Version 6 keys chunk ids by document (see ``_CHUNKS``). SQLite cannot drop a
    column's UNIQUE, so the rows are copied into a table of the new layout, keeping
    their ids and blocks: the full-text index and the vector blocks stay valid as they
    are. Dropping the old table drops its indexes and triggers; they are made again."""
    conn.execute("ALTER TABLE chunks RENAME TO chunks_v5")
    conn.execute(_CHUNKS)
    conn.execute(
        f"INSERT INTO chunks({_CHUNK_COLUMNS}) SELECT {_CHUNK_COLUMNS} FROM chunks_v5 ORDER BY id"
    )
    conn.execute("DROP TABLE chunks_v5")
    for statement in (*_CHUNK_INDEXES, _CONTENT_INDEX, *sqlite_lexical.CHUNK_TRIGGERS):
        conn.execute(statement)
    return "6"


# version -> the step that brings an index of that version one version up
_MIGRATIONS = {"1": _v1_to_v2, "2": _v2_to_v3, "3": _v3_to_v4, "4": _v4_to_v5, "5": _v5_to_v6}
# Lets a search read vector blocks straight from the page cache (~4x less CPU than
# read() calls, python -m bench search); mapped pages count in RSS (see the README), so a
# searcher that stays open drops the map once it holds the blocks (sqlite_block_cache).
_MMAP_BYTES = 1 << 31


# Rows per multi-row INSERT (at most 11 parameters a row: well under SQLite's 32,766).
_ROWS_PER_INSERT = 256


def _insert_rows(
    conn: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """``head VALUES row, row, ... tail`` for ``rows``, in order, a few statements in all.

    The same rows as ``executemany`` in the same order (so the same row ids), but one
    statement step per :data:`_ROWS_PER_INSERT` rows instead of one per row: the driver
    releases and retakes the GIL around every step, and on the index writer's thread
    each retake waits for the consuming thread's Python (the GIL's switch interval).
    """
    for i in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[i : i + _ROWS_PER_INSERT]
        sql = f"{head} {', '.join([row] * len(part))} {tail}"
        conn.execute(sql, [value for r in part for value in r])


def remembered_from_meta(meta: Mapping[str, str]) -> dict[str, Any]:
    """The settings an index was built with; an index from before they were recorded
    still tells its vector space (and the chunker's settings, from its fingerprint)."""
    if "settings" in meta:
        try:
            values = json.loads(meta["settings"])
        except ValueError:
            values = None
        if isinstance(values, dict):
            return values
    found: dict[str, Any] = {"embedder": meta["embedder"], "model": meta["model"]}
    if meta["embedder"] == "hash":
        found["dim"] = int(meta["dim"])
    parts = meta["chunker"].split(":")
    if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
        found.update(chunk_size=int(parts[1]), overlap=int(parts[2]))
    return found


def _readonly_connection(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection that never writes.

    Opened read-write with ``query_only`` where it can be: the last connection to
    close then removes the ``-wal`` and ``-shm`` files (a ``mode=ro`` one leaves
    them behind). Then ``mode=ro``; then, on read-only media, ``immutable``.
    """
    uri = path.absolute().as_uri()
    for mode in ("?mode=rw", "?mode=ro"):
        conn = sqlite3.connect(
            uri + mode,
            uri=True,
            timeout=busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            name = getattr(exc, "sqlite_errorname", "") or ""
            if not name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
                raise
    # A WAL index on read-only media: no -shm file can be made beside it.
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise ConfigError(
            f"index {path} is on read-only media with an unfinished write-ahead "
            f"log ({wal.name}); open it once where it is writable, then copy it"
        )
    return sqlite3.connect(
        uri + "?mode=ro&immutable=1",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )


def remembered_settings(path: Path) -> dict[str, Any]:
    """What the index at ``path`` remembers, read from its meta table alone (any schema
    version: a run reads it before it upgrades an older index)."""
    try:
        conn = _readonly_connection(path, 10.0)
    except sqlite3.Error as exc:
        raise _db_error(exc, path, "opening it") from None
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # empty or not an index: opening it says which
        raise _db_error(exc, path, "reading its settings") from None
    except sqlite3.Error as exc:
        raise _db_error(exc, path, "reading its settings") from None
    finally:
        conn.close()
    if any(key not in meta for key in _META_KEYS):
        return {}
    return remembered_from_meta(meta)


def rebuild_path(index: Path) -> Path:
    """Where ``--reembed`` builds the new index beside the live one (and resumes it)."""
    return index.with_name(index.name + ".reembed")


def _db_error(exc: sqlite3.Error, path: Path, doing: str) -> FuncpipeError:
    """The funcpipe exception for a driver error, by SQLite's own error code."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return IndexDamagedError(
            f"index {path} is damaged ({exc}) while {doing}; "
            f"`funcpipe verify --index {path}` lists what is wrong"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return IndexLockedError(f"index {path} is locked by another writer ({exc})")
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return IndexWriteError(f"cannot write index {path} while {doing}: {exc}")
    return IndexDamagedError(f"index {path} cannot be used ({exc}) while {doing}")


def _first_problem(verdict: list[str]) -> str:
    """The first problem ``quick_check`` names, on one line (a row can hold several under
    a ``*** in database main ***`` heading), and how many more there are."""
    lines = [x for row in verdict for x in row.splitlines() if x and not x.startswith("***")]
    if not lines:
        return "quick_check failed"
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return lines[0] + more


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class SqliteIndex:
    """An open index bound to one vector space; ``close()`` is idempotent.

    Use :func:`funcpipe_rag.index.open_index`. A writable index holds the run lock
    (``<index>.lock``) until closed; a read-only one takes none.
    """

    # Writes are serialised by the write lock; lookups read on a connection of their own.
    writes_beside_reads = True

    def __init__(
        self,
        path: Path,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        readonly: bool = False,
        lock_timeout_s: float = 10.0,
        busy_timeout_s: float = 10.0,
        rebuild: bool = False,
    ) -> None:
        self.live_path = path
        self.path = rebuild_path(path) if rebuild else path
        self.run_id = uuid.uuid4().hex[:12]
        self._ledger = ledger
        self._rebuild = rebuild
        if readonly and not path.exists():
            raise ConfigError(f"index not found: {path}")
        # One writer at a time: a second run waits up to lock_timeout_s, then fails
        # clearly. The lock dies with its process, kill -9 included. A rebuild locks the
        # live index: it stays untouched (and searchable) until the rebuild is whole.
        self._lock = None if readonly else RunLock(path, ledger, lock_timeout_s)
        self._readonly = readonly
        self._busy_timeout_s = busy_timeout_s
        self._reader: sqlite3.Connection | None = None  # see _reads()
        # Keys of the rows this run added to a table that was empty at open (see
        # _maybe_stored): vectors by content hash, documents by id.
        self._new: NewKeys | None = None
        self._new_docs: NewKeys | None = None
        self._checkpointer: Checkpointer | None = None  # a writing index's (_tune_writer)
        self._content_index_missing = False  # see _CONTENT_INDEX
        try:
            self._conn = self._connect(readonly, busy_timeout_s)
        except BaseException:
            if self._lock is not None:
                self._lock.close()
            raise
        self._handle: Handle = ledger.acquire("index_db", str(self.path))
        self._state = _State.OPEN
        self._write_lock = threading.RLock()
        # A searcher that stays open keeps its vector blocks (read-only: see the module).
        self._blocks = BlockCache(_MMAP_BYTES) if readonly else None
        try:
            with self._guard("opening it"):
                self.space = self._prepare(space, readonly)
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        return str(self.live_path)

    # -- opening ----------------------------------------------------------------------

    def _connect(self, readonly: bool, busy_timeout_s: float) -> sqlite3.Connection:
        path = self.path
        try:
            if not readonly:
                conn = sqlite3.connect(
                    path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
                )
            else:
                conn = _readonly_connection(path, busy_timeout_s)
                conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            conn.execute("PRAGMA cell_size_check = ON")
        except sqlite3.Error as exc:
            raise _db_error(exc, path, "opening it") from None
        return conn

    def _prepare(self, space: IndexSpace | None, readonly: bool) -> IndexSpace:
        conn = self._conn
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            if readonly or space is None:
                raise ConfigError(f"{self.path} is empty: nothing has been ingested into it")
            conn.execute("PRAGMA journal_mode=WAL")
            self._tune_writer()
            self.remembered = {}
            with self._transaction():
                # Statement by statement: executescript() would commit mid-transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _create_search_tables(conn)
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), *space.as_meta().items()],
                )
            self._new, self._new_docs = NewKeys(), NewKeys(1 << 19)
            self._content_index_missing = True  # built at close (see _CONTENT_INDEX)
            return space
        if not tables & _TABLES.keys():
            raise IndexDamagedError(f"{self.path} is an SQLite file but not a funcpipe index")
        self._check_trust(tables, every_page=not readonly)
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            self._tune_writer()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.remembered = remembered_from_meta(meta)
        self._upgrade(meta["schema"], readonly)
        self._check_columns()
        if not readonly:
            if not conn.execute("SELECT EXISTS (SELECT 1 FROM vectors)").fetchone()[0]:
                self._new = NewKeys()
            if not conn.execute("SELECT EXISTS (SELECT 1 FROM documents)").fetchone()[0]:
                self._new_docs = NewKeys(1 << 19)
            self._build_content_index()  # if a first run was killed before it could
        stored = IndexSpace(meta["embedder"], meta["model"], int(meta["dim"]), meta["chunker"])
        if space is None:
            return stored
        conflict = stored.conflict(space)
        if conflict is not None:
            if self._rebuild:
                raise IndexMismatchError(
                    f"an unfinished --reembed ({self.path}) {conflict}: resume it with the "
                    f"settings it was started with, or delete {self.path} to start over"
                )
            raise IndexMismatchError(
                f"index {self.name}: {conflict}. Use another --index, or --reembed to migrate it."
            )
        return IndexSpace(stored.embedder, stored.model, stored.dim or space.dim, stored.chunker)

    def _tune_writer(self) -> None:
        """How a writing connection commits (none of it changes what a commit promises).

        ``synchronous=NORMAL``: a commit is in the write-ahead log before it returns,
        so it survives the process dying (``kill -9``); the log is synced at each
        checkpoint, so power loss keeps the file sound (recent commits may go).
        Checkpoints (copy the log into the file, sync twice) run on a thread of their
        own (:mod:`.sqlite_checkpointer`), not inside a commit, so the writer does not
        wait for the disk; a commit checkpoints by itself only past the backstop.
        """
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self._checkpointer = Checkpointer(self.path, self._ledger)

    def _upgrade(self, version: str, readonly: bool) -> None:
        """Bring an index of an older schema up to this one, in place, in one transaction."""
        if version == SCHEMA_VERSION:
            return
        if version not in _MIGRATIONS:
            raise IndexDamagedError(
                f"index {self.path} has schema version {version!r}; this funcpipe reads "
                f"version {SCHEMA_VERSION} (an index made by a newer funcpipe?)"
            )
        if readonly:
            raise ConfigError(
                f"index {self.path} has the older schema version {version}: run "
                "`funcpipe ingest` on it once to upgrade it in place"
            )
        with self._transaction() as conn:
            while version != SCHEMA_VERSION:
                version = _MIGRATIONS[version](conn)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    def _check_trust(self, tables: set[str], *, every_page: bool) -> None:
        """The file holds our tables and is sound: every page for a writer (a run must
        not add to a damaged file and call it stored; ~0.5 s per 300 MB), the small
        tables for a reader (a search meets any other bad page it reads)."""
        conn = self._conn
        problems = [f"table {t} is missing" for t in _CORE_TABLES if t not in tables]
        if not problems:
            for check in (
                ("quick_check",) if every_page else ("quick_check(meta)", "quick_check(documents)")
            ):
                verdict = [r[0] for r in conn.execute(f"PRAGMA {check}")]
                if verdict != ["ok"]:
                    problems.append(f"the file is corrupt: {_first_problem(verdict)}")
                    break
        if not problems:
            keys = {k for (k,) in conn.execute("SELECT key FROM meta")}
            lacking = [k for k in _META_KEYS if k not in keys]
            if lacking:
                problems.append(f"meta lacks {', '.join(lacking)}")
            else:
                dim = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0]
                if not str(dim).isdigit():
                    problems.append(f"meta dim is {dim!r}, not a number")
        self._refuse(problems)

    def _check_columns(self) -> None:
        """After an upgrade: every table, column and full-text trigger of this version (a
        dropped trigger would let the full-text index drift from the chunks unseen)."""
        problems = []
        schema = dict(
            self._conn.execute("SELECT name, type FROM sqlite_master WHERE type != 'index'")
        )
        for table, columns in _TABLES.items():
            if table not in schema:
                problems.append(f"table {table} is missing")
                continue
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            lacking = [c for c in columns if c not in have]
            if lacking:
                problems.append(f"table {table} lacks {', '.join(lacking)}")
        triggers = (*sqlite_lexical.TRIGGERS, *sqlite_lexical.DOC_TRIGGERS)
        for name in (sqlite_lexical.TABLE, sqlite_lexical.DOC_TABLE, *triggers):
            if name not in schema:
                kind = "trigger" if name in triggers else "table"
                problems.append(f"{kind} {name} is missing")
        self._refuse(problems)

    def _refuse(self, problems: list[str]) -> None:
        if problems:
            raise IndexDamagedError(
                f"index {self.path} is damaged or was altered ({'; '.join(problems)}); "
                "nothing was changed. `funcpipe verify` lists what is wrong; rebuild it "
                "with `funcpipe ingest --reembed`"
            )

    # -- plumbing ---------------------------------------------------------------------

    def _check_open(self) -> sqlite3.Connection:
        if self._state is _State.CLOSED:
            raise ResourceClosedError("the index is closed")
        return self._conn

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Driver errors become funcpipe's own (damaged, locked, cannot write)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _db_error(exc, self.path, doing) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction at a time on the shared connection: embedding worker
        threads persist vectors while the main thread writes chunk rows. Rolled back
        on any failure, so a failed write leaves nothing half-stored."""
        conn = self._check_open()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _reads(self) -> sqlite3.Connection:
        """The connection of the lookups a run makes while it writes (``stored_doc``,
        ``fetch_vectors``, ``known_hashes``).

        A writable index reads on a second connection of its own: in WAL mode a reader
        and the writer never wait for each other, so a lookup on the consuming thread
        does not stall behind a chunk write (or its ``COMMIT``) running on the index
        writer's thread; and it sees committed rows only, never a write in progress.
        """
        conn = self._check_open()
        if self._readonly:
            return conn
        if self._reader is None:
            try:
                reader = sqlite3.connect(
                    self.path,
                    timeout=self._busy_timeout_s,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise _db_error(exc, self.path, "opening it") from None
            self._reader = reader
            reader.execute("PRAGMA query_only = ON")
            reader.execute("PRAGMA cell_size_check = ON")
        return self._reader

    def _in_chunks(self, sql: str, keys: Sequence[str]) -> Iterator[Any]:
        """Rows of ``sql`` (with one ``{marks}`` placeholder list) for every key, 500 at a time."""
        conn = self._reads()
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            yield from conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    # -- reads ------------------------------------------------------------------------

    _DOC_COLUMNS = "doc_id, path, abs_path, file_hash, complete, reader, note, signature"

    @staticmethod
    def _doc(row: tuple[Any, ...]) -> StoredDocument:
        doc_id, path, abs_path, file_hash, complete, reader, note, signature = row
        return StoredDocument(
            doc_id, path, abs_path, file_hash, bool(complete), reader, note, signature
        )

    def stored_doc(self, doc_id: str) -> StoredDocument | None:
        if self._new_docs is not None and not self._new_docs.might_hold((doc_id,)):
            return None  # the table was empty at open, and this run never wrote it
        with self._guard("reading a document"):
            row = (
                self._reads()
                .execute(f"SELECT {self._DOC_COLUMNS} FROM documents WHERE doc_id = ?", (doc_id,))
                .fetchone()
            )
        return None if row is None else self._doc(row)

    def documents(self) -> Iterator[StoredDocument]:
        with self._guard("listing documents"):
            rows = (
                self._check_open()
                .execute(f"SELECT {self._DOC_COLUMNS} FROM documents ORDER BY abs_path")
                .fetchall()
            )
        return iter([self._doc(row) for row in rows])

    def _maybe_stored(self, content_hashes: Sequence[str]) -> Sequence[str]:
        """``content_hashes`` less those surely without a vector: in an index that held
        none at open, every vector since was stored by this object (the run lock keeps
        other writers out), and :class:`NewKeys` knows them."""
        new = self._new
        return content_hashes if new is None else new.might_hold(content_hashes)

    def fetch_vectors(self, content_hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vector of each of ``content_hashes`` that has one."""
        sql = "SELECT content_hash, vector FROM vectors WHERE content_hash IN ({marks})"
        with self._guard("reading vectors"):
            return dict(self._in_chunks(sql, self._maybe_stored(content_hashes)))

    def known_hashes(self, content_hashes: Sequence[str]) -> set[str]:
        """Which of ``content_hashes`` already have a vector."""
        sql = "SELECT content_hash FROM vectors WHERE content_hash IN ({marks})"
        with self._guard("reading vectors"):
            return {row[0] for row in self._in_chunks(sql, self._maybe_stored(content_hashes))}

    def counts(self) -> IndexCounts:
        conn = self._check_open()
        with self._guard("counting rows"):
            n = [
                conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("documents", "chunks", "vectors")
            ]
        return IndexCounts(*n)

    def check(self) -> list[Finding]:
        """What is wrong inside the file itself; [] when nothing is."""
        conn = self._check_open()
        try:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return [Finding("INDEX/INTEGRITY", f"the file cannot be checked: {exc}")]
        if integrity != ["ok"]:
            # A damaged file: the queries below would only mislead.
            return [Finding("INDEX/INTEGRITY", line) for line in integrity[:20]]
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
                "SELECT doc_id, path FROM documents WHERE complete = 0 AND note = 'embed'",
                (),
                (
                    "document {1} is not stored completely: some of its chunks failed to "
                    "embed (that run's report names the errors); the next run retries them"
                ),
            ),
            (
                "INDEX/INCOMPLETE",
                "SELECT doc_id, path FROM documents WHERE complete = 0 AND note = ''",
                (),
                (
                    "document {1} is not stored completely: the run that wrote it stopped "
                    "before its last chunk (interrupted, or the file changed while read)"
                ),
            ),
        ]
        findings: list[Finding] = []
        try:
            for code, sql, args, template in checks:
                if code == "INDEX/BAD_DIM" and not dim:
                    continue
                for row in conn.execute(sql, args):
                    findings.append(Finding(code, template.format(*row, dim=dim)))
            for code, detail in (*sqlite_lexical.check(conn), *sqlite_vectors.check(conn)):
                findings.append(Finding(code, detail))
        except sqlite3.DatabaseError as exc:
            findings.append(Finding("INDEX/INTEGRITY", f"the file cannot be read: {exc}"))
        return findings

    def search(self, query: Query) -> list[Hit]:
        """Hybrid, vector or lexical ranking inside the file (see :mod:`.sqlite_search`)."""
        conn = self._check_open()
        if query.vector is not None and self.space.dim and query.vector.size != self.space.dim:
            raise IndexMismatchError(
                f"the query has {query.vector.size} dimensions, the index holds {self.space.dim}"
            )
        # One search at a time on the shared connection: each is one read transaction,
        # and the block cache follows them in order.
        with self._guard("searching"), self._write_lock:
            from . import sqlite_search  # numpy: only a search needs it

            return sqlite_search.search(conn, query, self._blocks)

    # -- writes -----------------------------------------------------------------------

    def write(
        self, batch: Sequence[PendingChunk], vectors: Mapping[str, bytes] | None = None
    ) -> None:
        """Store ``batch`` in one transaction, or nothing of it (``IndexWriteError``).

        Their vectors were stored before (:meth:`store_vectors`) or are ``vectors``,
        stored first in the same transaction, so a chunk row never points at a missing
        vector. (One commit instead of two: on the real corpus the hash embedder's
        vectors had 393 transactions of their own, on the thread the run waits for.)
        """
        if not batch:
            if vectors:
                self.store_vectors(vectors)
            return
        run = self.run_id
        with self._guard("storing chunks"), self._transaction() as conn:
            if vectors:
                self._insert_vectors(conn, vectors)
            block = sqlite_vectors.next_block(conn)
            last = sqlite_lexical.last_row(conn)
            touched: set[int] = set()
            docs = {p.doc_id: p for p in batch}  # one row each: first place, last values
            if self._new_docs is not None:  # before COMMIT: a committed row is always known
                self._new_docs.add_all(docs)
            _insert_rows(
                conn,
                "INSERT INTO documents(doc_id, path, abs_path, size, mtime_ns, file_hash, "
                "complete, run_id, reader, encoding, title) VALUES",
                "(?, ?, ?, ?, ?, NULL, 0, ?, ?, ?, ?)",
                "ON CONFLICT(doc_id) DO UPDATE SET "
                "path = excluded.path, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "run_id = excluded.run_id, reader = excluded.reader, "
                "encoding = excluded.encoding, title = excluded.title, note = '', "
                # a row being rewritten vouches for no bytes until it completes again
                "signature = NULL",
                [
                    (
                        p.doc_id,
                        p.path,
                        p.abs_path,
                        p.doc_size,
                        p.doc_mtime_ns,
                        run,
                        p.reader,
                        p.encoding,
                        p.title,
                    )
                    for p in docs.values()
                ],
            )
            # A row stored before (same place, same content) keeps its block: its vector
            # is there already. New rows go to this write's new block.
            _insert_rows(
                conn,
                "INSERT INTO chunks"
                '(chunk_id, doc_id, seq, start, "end", text, content_hash, run_id, section, page, '
                "block) VALUES",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "ON CONFLICT(doc_id, chunk_id) DO UPDATE SET "
                "seq = excluded.seq, run_id = excluded.run_id",
                [
                    (
                        p.chunk_id,
                        p.doc_id,
                        p.seq,
                        p.start,
                        p.end,
                        p.text,
                        p.content_hash,
                        run,
                        p.section,
                        p.page,
                        block,
                    )
                    for p in batch
                ],
            )
            sqlite_lexical.index_rows_after(conn, last)  # new rows only: upserts are in
            for p in batch:
                if not p.last_of_doc:
                    continue
                if p.doc_failed:
                    # Stays incomplete (its old chunks stay too); say why for verify.
                    conn.execute(
                        "UPDATE documents SET note = 'embed' WHERE doc_id = ?", (p.doc_id,)
                    )
                    continue
                # Every chunk of this version is stored: mark it, then drop stale ones.
                conn.execute(
                    "UPDATE documents SET file_hash = ?, complete = 1, signature = ? "
                    "WHERE doc_id = ?",
                    (p.doc_hash, p.doc_signature, p.doc_id),
                )
                if self._new_docs is not None:
                    continue  # an index this run created holds no other run's rows
                stale = ("doc_id = ? AND run_id != ?", (p.doc_id, run))
                touched |= sqlite_vectors.blocks_of(conn, *stale)
                conn.execute(f"DELETE FROM chunks WHERE {stale[0]}", stale[1])
            # Deletes reached the full-text index by its triggers; the blocks follow here.
            sqlite_vectors.refresh(conn, touched, block)

    def refresh_signatures(self, refreshes: Sequence[SignatureRefresh]) -> None:
        """Store signatures of files read and found unchanged, where the row still holds
        that complete version (one transaction)."""
        if not refreshes:
            return
        with self._guard("storing signatures"), self._transaction() as conn:
            conn.executemany(
                "UPDATE documents SET signature = ? WHERE doc_id = ? AND complete = 1 "
                "AND file_hash = ? AND reader = ?",
                [(r.signature, r.doc_id, r.file_hash, r.reader) for r in refreshes],
            )

    def remember(self, settings: Mapping[str, Any]) -> None:
        values = dict(settings)
        if values == self.remembered:
            return
        with self._guard("recording settings"), self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('settings', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps(values, sort_keys=True),),
            )
        self.remembered = values

    def _fix_dim(self, conn: sqlite3.Connection, vectors: list[bytes]) -> None:
        """Record the dimension on the first vectors; refuse any other size later."""
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

    def store_vectors(self, vectors: Mapping[str, bytes]) -> None:
        """Persist paid-for vectors now, in their own small transaction; thread-safe.

        The vectors table is a content-addressed cache: a vector stored here is never
        bought again, even if the chunks it belongs to were not stored yet.
        """
        if not vectors:
            return
        with self._guard("storing vectors"), self._transaction() as conn:
            self._insert_vectors(conn, vectors)

    def _insert_vectors(self, conn: sqlite3.Connection, vectors: Mapping[str, bytes]) -> None:
        """The one place vectors enter the file (in the caller's transaction), after
        their dimension is checked against the index's."""
        self._fix_dim(conn, list(vectors.values()))
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO vectors(content_hash, vector) VALUES",
            "(?, ?)",
            "",
            list(vectors.items()),
        )
        if self._new is not None:  # before COMMIT: a committed vector is always known
            self._new.add_all(vectors)

    def prune(self, roots: Sequence[str], keep: set[str], *, everything: bool = False) -> int:
        """Delete documents (and their chunks) under ``roots`` whose id is not in ``keep``.

        ``roots`` are absolute, display-safe paths of walked folders; a document is under
        a root when its absolute path starts with the root and a separator. With
        ``everything``, every document not in ``keep`` goes (a complete path list).
        Vectors stay: they are paid for and may be reused. Returns documents deleted.
        """
        prefixes = tuple(r.rstrip("/") + "/" for r in roots)
        with self._guard("pruning deleted files"):
            # Streamed, not fetched: a list of every stored document would make the run's
            # peak memory grow with the index (the doomed are few).
            rows = self._check_open().execute("SELECT doc_id, abs_path FROM documents")
            doomed = [
                doc_id
                for doc_id, abs_path in rows
                if doc_id not in keep and (everything or abs_path.startswith(prefixes))
            ]
            if doomed:
                with self._transaction() as conn:
                    touched: set[int] = set()
                    for i in range(0, len(doomed), 500):
                        part = doomed[i : i + 500]
                        marks = ",".join("?" * len(part))
                        touched |= sqlite_vectors.blocks_of(conn, f"doc_id IN ({marks})", part)
                        conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
                        conn.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", part)
                    sqlite_vectors.refresh(conn, touched, sqlite_vectors.next_block(conn))
        return len(doomed)

    def finish(self) -> None:
        """For a rebuild: close it and swap it in for the live index, atomically.

        The live file's write-ahead log is checkpointed and removed first: a stale
        ``-wal`` left beside the new file would be replayed into it.
        """
        if not self._rebuild:
            return
        self._release_connection()
        live = self.live_path
        if live.exists():
            with self._guard("replacing the live index"):
                conn = sqlite3.connect(live)
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    conn.execute("PRAGMA journal_mode=DELETE")
                finally:
                    conn.close()
        os.replace(self.path, live)

    def share(self) -> FileShare:
        """One writer at a time (the run lock): this run walks and pays for everything."""
        return LocalShare()

    def _build_content_index(self) -> None:
        """Build :data:`_CONTENT_INDEX` if the index lacks it (one transaction)."""
        exists = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'chunks_by_content')"
        ).fetchone()[0]
        if not exists:
            with self._guard("indexing chunks by content"), self._transaction() as conn:
                conn.execute(_CONTENT_INDEX)
        self._content_index_missing = False

    def _release_connection(self) -> None:
        if self._state is _State.CLOSED:
            return
        try:
            if self._content_index_missing:
                # A failure here loses nothing: the next writer to open it builds it.
                with contextlib.suppress(FuncpipeError):
                    self._build_content_index()
        finally:
            self._close_connection()

    def _close_connection(self) -> None:
        self._state = _State.CLOSED
        if self._blocks is not None:
            self._blocks.clear()
        # Every step runs even if one before it fails; last pushed, first run.
        with contextlib.ExitStack() as steps:
            steps.callback(self._ledger.release, self._handle)
            steps.callback(self._conn.close)
            if self._reader is not None:
                steps.callback(self._reader.close)
            if self._checkpointer is not None:
                steps.callback(self._checkpointer.close)  # first: it reads the file

    def close(self) -> None:
        """Close the connection, then release the lock; safe to call twice."""
        try:
            self._release_connection()
        finally:
            if self._lock is not None:
                self._lock.close()

    def __enter__(self) -> SqliteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SqliteBackend:
    """The dispatch entry of :func:`funcpipe_rag.index.open_index` for SQLite files."""

    def open(
        self,
        target: str,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        readonly: bool,
        rebuild: bool,
        options: IndexOptions,
    ) -> SqliteIndex:
        return SqliteIndex(
            Path(target),
            space,
            ledger,
            readonly=readonly,
            rebuild=rebuild,
            lock_timeout_s=options.lock_timeout_s,
        )

    def remembered(self, target: str, options: IndexOptions) -> dict[str, Any] | None:
        path = Path(target)
        return remembered_settings(path) if path.exists() else None

    def leftover_rebuild(self, target: str, options: IndexOptions) -> str | None:
        path = rebuild_path(Path(target))
        return str(path) if path.exists() else None

    def exists(self, target: str, options: IndexOptions) -> bool:
        return Path(target).exists()

    def discard(self, target: str, options: IndexOptions) -> None:
        path = Path(target)
        for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


BACKEND = _SqliteBackend()
