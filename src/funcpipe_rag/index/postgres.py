"""The PostgreSQL index: documents, chunks and pgvector vectors of one vector space, in
one schema (a *collection*) of a database that many runs may fill together.

Writes: chunk rows go in by binary ``COPY`` into a per-session staging table, then one
``INSERT ... ON CONFLICT`` (COPY alone cannot upsert); a batch, its documents' complete
flags and the release of those files' claims commit in one transaction. Vectors are
stored the same way, the moment they arrive, on a second session used by the
embedding threads. Search ranks in the database with pgvector's cosine distance
(``<=>``): exactly by default, through an HNSW index when the collection has one
(``--hnsw``: approximate, for semantic embedders; hash-embedder vectors lose most of
their recall under it).

Trust, on open: a collection (schema) is created only where none exists (or an empty
one does). An existing one must hold every table and column, the meta keys and a
schema version this funcpipe reads; anything else is
:class:`~funcpipe_rag.errors.IndexDamagedError` (exit 2), never re-created. An older
version (:data:`.pg_schema.MIGRATIONS`) is brought up to date in place by a writer, under
the creation lock; a reader refuses it in one line. A collection
holds one vector space; another is refused (use another ``--collection``, or
``--reembed``, which builds ``<collection>_reembed`` and swaps it in atomically by
renaming schemas).

Sharing the work between runs is :mod:`.pg_share`; connections, error mapping and the
server's count of this run's sessions are :mod:`.pg_connect`.
"""

from __future__ import annotations

import enum
import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from ..embedders.urls import redact_url
from ..errors import ConfigError, IndexDamagedError, IndexMismatchError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from . import pg_search
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
from .options import IndexOptions
from .pg_connect import PgConnection, SessionWitness, guard, one_line
from .pg_schema import (
    CHUNK_TYPES,
    COLUMNS,
    DOCUMENT_TSV,
    META_KEYS,
    MIGRATIONS,
    SCHEMA_VERSION,
    STAGING,
    TABLES,
    TEXT_CONFIG,
    check_collection,
    rebuild_schema,
    statements,
)
from .pg_share import retrying
from .sqlite import remembered_from_meta


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a NUL past the reader's binary sniff is stored
    as U+FFFD (the chunk's identity, its content hash, is computed before)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _vector_schema(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    ).fetchone()
    return None if row is None else str(row[0])


def prepare_session(conn: psycopg.Connection[Any], schema: str, *, create: bool) -> bool:
    """Point the session at ``schema`` and teach it pgvector's types.

    Returns False when the database has no pgvector (nothing was ever ingested there)
    and ``create`` is off; with ``create`` the extension is created when missing.
    """
    ext = _vector_schema(conn)
    if ext is None:
        if not create:
            return False
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('funcpipe:ext', 0))")
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigError(
                "the database has no pgvector extension and this user may not create it: "
                "ask its owner to run CREATE EXTENSION vector"
            ) from None
        except psycopg.errors.FeatureNotSupported as exc:
            raise ConfigError(
                f"the database server has no pgvector ({one_line(exc, '')})"
            ) from None
        ext = _vector_schema(conn) or "public"
    conn.execute(
        sql.SQL("SET search_path TO {}, {}").format(sql.Identifier(schema), sql.Identifier(ext))
    )
    register_vector(conn)
    return True


def _schema_tables(conn: psycopg.Connection[Any], schema: str) -> set[str] | None:
    """The tables of ``schema``, or None when there is no such schema."""
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {str(r[0]) for r in rows}


class PgIndex:
    """An open PostgreSQL index bound to one collection and vector space.

    Use :func:`funcpipe_rag.index.open_index` with a ``postgresql://`` target. A writer
    holds two sessions (chunk rows on the main thread; vectors and content claims on
    the embedding threads, one at a time); a reader one. ``close()`` is idempotent.
    """

    # Chunk rows go through the main session, which the run's thread reads on too.
    writes_beside_reads = False

    def __init__(
        self,
        target: str,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        readonly: bool = False,
        rebuild: bool = False,
        options: IndexOptions | None = None,
    ) -> None:
        options = options or IndexOptions()
        self.target = target
        self.collection = check_collection(options.collection)
        self.schema = rebuild_schema(self.collection) if rebuild else self.collection
        self.options = options
        self.run_id = uuid.uuid4().hex[:12]
        self.application_name = f"funcpipe/{self.run_id}"
        self.remembered: dict[str, Any] = {}
        self._ledger = ledger
        self._readonly = readonly
        self._rebuild = rebuild
        self._hnsw = False
        self._side_lock = threading.Lock()
        self._witness = SessionWitness(target, self.application_name, ledger)
        self._main = PgConnection(target, ledger, self.application_name, "main")
        self._side: PgConnection | None = None
        self._state = _State.OPEN
        try:
            with guard(target, "opening it"):
                if not prepare_session(self._main.conn, self.schema, create=not readonly):
                    raise ConfigError(f"index not found: {self.name} holds no funcpipe index")
                self.space = self._prepare(space)
                if not readonly:
                    self._side = PgConnection(target, ledger, self.application_name, "vectors")
                    prepare_session(self._side.conn, self.schema, create=False)
                    for conn in (self._main.conn, self._side.conn):
                        for statement in statements(STAGING.format(vector_type="vector")):
                            conn.execute(statement)
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        shown = redact_url(self.target)
        return shown if self.collection == "funcpipe" else f"{shown} (collection {self.collection})"

    # -- opening ----------------------------------------------------------------------

    def _prepare(self, space: IndexSpace | None) -> IndexSpace:
        conn = self._main.conn
        with conn.transaction():
            if not self._readonly:
                # Runs starting together must not both create (or both upgrade) it.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"funcpipe:{self.schema}",),
                )
            tables = _schema_tables(conn, self.schema)
            if not tables:
                if self._readonly or space is None:
                    raise ConfigError(
                        f"index not found: {self.name} has no collection {self.schema}"
                    )
                self._create(space)
                return space
            if not tables & COLUMNS.keys():
                raise IndexDamagedError(
                    f"schema {self.schema} in {redact_url(self.target)} is not a funcpipe "
                    "collection; use another --collection"
                )
            self._upgrade(tables)
            meta = self._check_trust(tables)
        self.remembered = remembered_from_meta(meta)
        stored = IndexSpace(meta["embedder"], meta["model"], int(meta["dim"]), meta["chunker"])
        self._hnsw = self._has_hnsw()
        if space is None:
            return stored
        conflict = stored.conflict(space)
        if conflict is not None:
            if self._rebuild:
                raise IndexMismatchError(
                    f"an unfinished --reembed (collection {self.schema} in "
                    f"{redact_url(self.target)}) {conflict}: resume it with the settings it "
                    f"was started with, or drop schema {self.schema} to start over"
                )
            raise IndexMismatchError(
                f"index {self.name}: {conflict}. Use another --collection, or --reembed to "
                "migrate it."
            )
        dim = stored.dim or space.dim
        if self.options.hnsw and not self._readonly and stored.dim:
            self._ensure_hnsw()
        return IndexSpace(stored.embedder, stored.model, dim, stored.chunker)

    def _create(self, space: IndexSpace) -> None:
        conn = self._main.conn
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        vector_type = f"vector({space.dim})" if space.dim else "vector"
        for statement in statements(
            TABLES.format(
                vector_type=vector_type, text_config=TEXT_CONFIG, document_tsv=DOCUMENT_TSV
            )
        ):
            conn.execute(statement)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)",
                [("schema", SCHEMA_VERSION), *space.as_meta().items()],
            )
        if self.options.hnsw and space.dim:
            self._ensure_hnsw()

    def _upgrade(self, tables: set[str]) -> None:
        """Bring a collection of an older schema up to this one, in place, in the opening
        transaction (under the advisory lock a writer holds); the trust check follows."""
        if not {"meta", "documents"} <= tables:
            return  # not ours, or damaged: the trust check says so
        conn = self._main.conn
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = None if row is None else str(row[0])
        if version is None or version == SCHEMA_VERSION or version not in MIGRATIONS:
            return
        if self._readonly:
            raise ConfigError(
                f"index {self.name} has the older schema version {version}: run "
                "`funcpipe ingest` on it once to upgrade it in place"
            )
        while version in MIGRATIONS:
            steps, version = MIGRATIONS[version]
            for statement in steps:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema'", (version,))

    def _check_trust(self, tables: set[str]) -> dict[str, str]:
        conn = self._main.conn
        problems = [f"table {t} is missing" for t in COLUMNS if t not in tables]
        if not problems:
            rows = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = %s",
                (self.schema,),
            ).fetchall()
            have: dict[str, set[str]] = {}
            for table, column in rows:
                have.setdefault(str(table), set()).add(str(column))
            for table, columns in COLUMNS.items():
                lacking = [c for c in columns if c not in have.get(table, set())]
                if lacking:
                    problems.append(f"table {table} lacks {', '.join(lacking)}")
        meta: dict[str, str] = {}
        if not problems:
            meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
            lacking = [k for k in META_KEYS if k not in meta]
            if lacking:
                problems.append(f"meta lacks {', '.join(lacking)}")
            elif not meta["dim"].isdigit():
                problems.append(f"meta dim is {meta['dim']!r}, not a number")
            elif meta["schema"] != SCHEMA_VERSION:
                raise IndexDamagedError(
                    f"index {self.name} has schema version {meta['schema']!r}; this funcpipe "
                    f"reads version {SCHEMA_VERSION} (an index made by a newer funcpipe?)"
                )
        if problems:
            raise IndexDamagedError(
                f"index {self.name} is damaged or was altered ({'; '.join(problems)}); "
                "nothing was changed. `funcpipe verify` lists what is wrong; rebuild it "
                "with `funcpipe ingest --reembed`"
            )
        return meta

    def _has_hnsw(self) -> bool:
        row = self._main.conn.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = 'vectors_hnsw'",
            (self.schema,),
        ).fetchone()
        return row is not None

    def _ensure_hnsw(self, conn: psycopg.Connection[Any] | None = None) -> None:
        (conn or self._main.conn).execute(
            "CREATE INDEX IF NOT EXISTS vectors_hnsw ON vectors "
            "USING hnsw (embedding vector_cosine_ops)"
        )
        self._hnsw = True

    # -- plumbing ---------------------------------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        if self._state is _State.CLOSED:
            raise ResourceClosedError("the index is closed")
        return self._main.conn

    def _side_conn(self) -> psycopg.Connection[Any]:
        if self._state is _State.CLOSED or self._side is None:
            raise ResourceClosedError("the index is closed (or read-only)")
        return self._side.conn

    def main_session(self) -> psycopg.Connection[Any]:
        """The session of the run's own thread (reads, chunk rows, file claims)."""
        return self._conn()

    def side_session(self) -> tuple[threading.Lock, psycopg.Connection[Any]]:
        """The embedding threads' session and the lock that takes turns on it."""
        return self._side_lock, self._side_conn()

    # -- reads ------------------------------------------------------------------------

    _DOC_COLUMNS = "doc_id, path, abs_path, file_hash, complete, reader, note, signature"

    @staticmethod
    def _doc(row: Sequence[Any]) -> StoredDocument:
        doc_id, path, abs_path, file_hash, complete, reader, note, signature = row
        return StoredDocument(
            doc_id, path, abs_path, file_hash, bool(complete), reader, note, signature
        )

    def stored_doc(self, doc_id: str) -> StoredDocument | None:
        with guard(self.target, "reading a document"):
            row = (
                self._conn()
                .execute(f"SELECT {self._DOC_COLUMNS} FROM documents WHERE doc_id = %s", (doc_id,))
                .fetchone()
            )
        return None if row is None else self._doc(row)

    def documents(self) -> Iterator[StoredDocument]:
        with guard(self.target, "listing documents"):
            rows = (
                self._conn()
                .execute(f'SELECT {self._DOC_COLUMNS} FROM documents ORDER BY abs_path COLLATE "C"')
                .fetchall()
            )
        return iter([self._doc(row) for row in rows])

    def fetch_vectors(self, content_hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vector of each of ``content_hashes`` that has one."""
        with guard(self.target, "reading vectors"):
            return fetch_vectors(self._conn(), content_hashes)

    def known_hashes(self, content_hashes: Sequence[str]) -> set[str]:
        with guard(self.target, "reading vectors"):
            rows = (
                self._conn()
                .execute(
                    "SELECT content_hash FROM vectors WHERE content_hash = ANY(%s)",
                    (list(dict.fromkeys(content_hashes)),),
                )
                .fetchall()
            )
        return {str(r[0]) for r in rows}

    def counts(self) -> IndexCounts:
        conn = self._conn()
        with guard(self.target, "counting rows"):
            n = [
                int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in ("documents", "chunks", "vectors")
            ]
        return IndexCounts(*n)

    def check(self) -> list[Finding]:
        """What is wrong inside the collection itself; [] when nothing is."""
        conn = self._conn()
        dim = self.space.dim
        checks: list[tuple[str, str, tuple[Any, ...], str]] = [
            (
                "INDEX/BAD_DIM",
                (
                    "SELECT content_hash, vector_dims(embedding) FROM vectors "
                    "WHERE vector_dims(embedding) != %s"
                ),
                (dim,),
                "vector {0} has {1} dimensions, the index holds {dim}",
            ),
            (
                "INDEX/ORPHAN_CHUNK",
                (
                    "SELECT chunk_id, doc_id FROM chunks c WHERE NOT EXISTS "
                    "(SELECT 1 FROM documents d WHERE d.doc_id = c.doc_id)"
                ),
                (),
                "chunk {0} belongs to no document ({1})",
            ),
            (
                "INDEX/MISSING_VECTOR",
                (
                    "SELECT chunk_id, content_hash FROM chunks c WHERE NOT EXISTS "
                    "(SELECT 1 FROM vectors v WHERE v.content_hash = c.content_hash)"
                ),
                (),
                "chunk {0} has no vector ({1})",
            ),
            (
                "INDEX/EMPTY_DOCUMENT",
                (
                    "SELECT doc_id, path FROM documents d WHERE complete AND NOT EXISTS "
                    "(SELECT 1 FROM chunks c WHERE c.doc_id = d.doc_id)"
                ),
                (),
                "document {1} is marked complete but has no chunks",
            ),
            (
                "INDEX/INCOMPLETE",
                "SELECT doc_id, path FROM documents WHERE NOT complete AND note = 'embed'",
                (),
                (
                    "document {1} is not stored completely: some of its chunks failed to "
                    "embed (that run's report names the errors); the next run retries them"
                ),
            ),
            (
                "INDEX/INCOMPLETE",
                "SELECT doc_id, path FROM documents WHERE NOT complete AND note = ''",
                (),
                (
                    "document {1} is not stored completely: the run that wrote it stopped "
                    "before its last chunk (interrupted, or the file changed while read)"
                ),
            ),
        ]
        findings: list[Finding] = []
        try:
            for code, query, args, template in checks:
                if code == "INDEX/BAD_DIM" and not dim:
                    continue
                for row in conn.execute(query, args):
                    findings.append(Finding(code, template.format(*row, dim=dim)))
        except psycopg.Error as exc:
            findings.append(Finding("INDEX/INTEGRITY", f"the collection cannot be read: {exc}"))
        return findings

    def search(self, query: Query) -> list[Hit]:
        """Hybrid, vector or lexical ranking in the database (see :mod:`.pg_search`)."""
        if query.vector is not None and self.space.dim and query.vector.size != self.space.dim:
            raise IndexMismatchError(
                f"the query has {query.vector.size} dimensions, the index holds {self.space.dim}"
            )
        conn = self._conn()
        with guard(self.target, "searching"):
            return pg_search.search(conn, query, hnsw=self._hnsw)

    # -- writes -----------------------------------------------------------------------

    def write(
        self, batch: Sequence[PendingChunk], vectors: Mapping[str, bytes] | None = None
    ) -> None:
        """Store ``batch`` in one transaction, or nothing of it (``IndexWriteError``).

        The documents a batch completes are marked complete, their stale chunks (of an
        older version) deleted and their file claims released in the same transaction.
        ``vectors`` are stored first, in their own transaction (:meth:`store_vectors`:
        they go through the stage table, and release this run's claims on them).
        """
        if vectors:
            self.store_vectors(vectors)
        if not batch:
            return
        run = self.run_id
        conn = self._conn()
        docs = {
            p.doc_id: (p.doc_id, _clean(p.path), _clean(p.abs_path), p.doc_size, p.doc_mtime_ns,
                       run, p.reader, p.encoding, _clean(p.title))
            for p in batch
        }  # fmt: skip
        completed = {
            p.doc_id: (p.doc_hash, p.doc_signature)
            for p in batch
            if p.last_of_doc and not p.doc_failed
        }
        failed = [p.doc_id for p in batch if p.last_of_doc and p.doc_failed]

        def attempt() -> None:
            with conn.transaction(), conn.cursor() as cur:
                self._write_rows(cur, batch, docs, completed, failed)

        with guard(self.target, "storing chunks"):
            retrying(attempt)

    def _write_rows(
        self,
        cur: psycopg.Cursor[Any],
        batch: Sequence[PendingChunk],
        docs: dict[str, tuple[Any, ...]],
        completed: dict[str, tuple[str, str | None]],
        failed: list[str],
    ) -> None:
        run = self.run_id
        cur.executemany(
            "INSERT INTO documents (doc_id, path, abs_path, size, mtime_ns, file_hash, "
            "complete, run_id, reader, encoding, title) "
            "VALUES (%s, %s, %s, %s, %s, NULL, false, %s, %s, %s, %s) "
            "ON CONFLICT (doc_id) DO UPDATE SET path = excluded.path, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, run_id = excluded.run_id, "
            "reader = excluded.reader, encoding = excluded.encoding, title = excluded.title, "
            # a row being rewritten vouches for no bytes until it completes again
            "note = '', signature = NULL",
            sorted(docs.values()),
        )
        with cur.copy(
            'COPY stage_chunks (chunk_id, doc_id, seq, start, "end", text, content_hash, '
            "run_id, section, page) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(CHUNK_TYPES)
            for p in batch:
                copy.write_row(
                    (p.chunk_id, p.doc_id, p.seq, p.start, p.end, _clean(p.text),
                     p.content_hash, run, _clean(p.section), p.page)
                )  # fmt: skip
        # A chunk met twice in one batch (a file walked through two roots) is one row.
        cur.execute(
            'INSERT INTO chunks (chunk_id, doc_id, seq, start, "end", text, content_hash, '
            "run_id, section, page) SELECT DISTINCT ON (chunk_id) * FROM stage_chunks "
            "ORDER BY chunk_id ON CONFLICT (chunk_id) DO UPDATE SET seq = excluded.seq, "
            "run_id = excluded.run_id"
        )
        if failed:
            # Stays incomplete (its old chunks stay too); say why for verify.
            cur.execute("UPDATE documents SET note = 'embed' WHERE doc_id = ANY(%s)", (failed,))
        if completed:
            ids = sorted(completed)
            cur.execute(
                "UPDATE documents d SET file_hash = u.h, complete = true, signature = u.s "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(id, h, s) "
                "WHERE d.doc_id = u.id",
                (ids, [completed[i][0] for i in ids], [completed[i][1] for i in ids]),
            )
            # Every chunk of this version is stored: drop the stale ones.
            cur.execute("DELETE FROM chunks WHERE doc_id = ANY(%s) AND run_id != %s", (ids, run))
        finished = sorted({*completed, *failed})
        if finished:
            # The files are done for the shared pass in the same transaction.
            cur.execute(
                "UPDATE file_claims SET state = 'kept', worker = NULL, expires = NULL "
                "WHERE doc_id = ANY(%s)",
                (finished,),
            )

    def refresh_signatures(self, refreshes: Sequence[SignatureRefresh]) -> None:
        """Store signatures of files read and found unchanged, where the row still holds
        that complete version (one transaction; another run may have moved it on)."""
        if not refreshes:
            return
        conn = self._conn()
        rows = [(r.signature, r.doc_id, r.file_hash, r.reader) for r in refreshes]

        def attempt() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "UPDATE documents SET signature = %s WHERE doc_id = %s AND complete "
                    "AND file_hash = %s AND reader = %s",
                    rows,
                )

        with guard(self.target, "storing signatures"):
            retrying(attempt)

    def remember(self, settings: Mapping[str, Any]) -> None:
        values = dict(settings)
        if values == self.remembered:
            return
        with guard(self.target, "recording settings"):
            self._conn().execute(
                "INSERT INTO meta (key, value) VALUES ('settings', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(values, sort_keys=True),),
            )
        self.remembered = values

    def _fix_dim(self, conn: psycopg.Connection[Any], vectors: list[bytes]) -> None:
        """Record the dimension on the first vectors (typing the column ``vector(dim)``);
        refuse any other size later. Runs inside the caller's transaction."""
        sizes = {len(v) // 4 for v in vectors}
        dim = self.space.dim or min(sizes)
        if sizes != {dim}:
            raise IndexMismatchError(
                f"index {self.name} holds {dim}-d vectors, got {sorted(sizes)}"
            )
        if self.space.dim:
            return
        row = conn.execute("SELECT value FROM meta WHERE key = 'dim' FOR UPDATE").fetchone()
        stored = int(row[0]) if row is not None else 0
        if stored == 0:
            conn.execute(f"ALTER TABLE vectors ALTER COLUMN embedding TYPE vector({dim})")
            conn.execute("UPDATE meta SET value = %s WHERE key = 'dim'", (str(dim),))
            if self.options.hnsw:
                self._ensure_hnsw(conn)
        elif stored != dim:
            raise IndexMismatchError(f"index {self.name} holds {stored}-d vectors, got {dim}-d")
        s = self.space
        self.space = IndexSpace(s.embedder, s.model, dim, s.chunker)

    def store_vectors(self, vectors: Mapping[str, bytes]) -> None:
        """Persist paid-for vectors now, in their own small transaction; thread-safe."""
        if not vectors:
            return
        conn = self._side_conn()

        def attempt() -> None:
            with conn.transaction(), conn.cursor() as cur:
                self._fix_dim(conn, list(vectors.values()))
                with cur.copy(
                    "COPY stage_vectors (content_hash, embedding) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "vector"])
                    for h in sorted(vectors):
                        copy.write_row((h, np.frombuffer(vectors[h], dtype="<f4")))
                cur.execute(
                    "INSERT INTO vectors SELECT * FROM stage_vectors ORDER BY content_hash "
                    "ON CONFLICT (content_hash) DO NOTHING"
                )
                # Paid and stored: this run's claims on them are done (see pg_share).
                cur.execute(
                    "DELETE FROM content_claims WHERE worker = %s AND content_hash = ANY(%s)",
                    (self.run_id, sorted(vectors)),
                )

        with self._side_lock, guard(self.target, "storing vectors"):
            retrying(attempt)

    def prune(self, roots: Sequence[str], keep: set[str], *, everything: bool = False) -> int:
        """Delete documents (and their chunks) under ``roots`` whose id is not in ``keep``
        (see :meth:`funcpipe_rag.index.sqlite.SqliteIndex.prune`); vectors stay."""
        prefixes = tuple(r.rstrip("/") + "/" for r in roots)
        conn = self._conn()
        with guard(self.target, "pruning deleted files"):
            rows = conn.execute("SELECT doc_id, abs_path FROM documents").fetchall()
            doomed = sorted(
                doc_id
                for doc_id, abs_path in rows
                if doc_id not in keep and (everything or abs_path.startswith(prefixes))
            )
            if doomed:
                with conn.transaction():
                    conn.execute("DELETE FROM chunks WHERE doc_id = ANY(%s)", (doomed,))
                    conn.execute("DELETE FROM documents WHERE doc_id = ANY(%s)", (doomed,))
        return len(doomed)

    def finish(self) -> None:
        """For a rebuild: make it the live collection, atomically (schemas are renamed in
        one transaction; a search sees the old collection or the new one)."""
        if not self._rebuild:
            return
        conn = self._conn()
        live = sql.Identifier(self.collection)
        with guard(self.target, "replacing the live collection"), conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(live))
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(self.schema), live)
            )
            self.schema = self.collection
            prepare_session(conn, self.schema, create=False)
        self._rebuild = False

    def share(self) -> FileShare:
        """Runs writing this collection share its corpus through claims in the database."""
        from .pg_share import PgShare

        return PgShare(self, self._ledger)

    def close(self) -> None:
        """Close the sessions, then ask the server how many of them it still counts."""
        self._state = _State.CLOSED
        try:
            if self._side is not None:
                self._side.close()
        finally:
            try:
                self._main.close()
            finally:
                self._witness.record()

    def __enter__(self) -> PgIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch_vectors(conn: psycopg.Connection[Any], content_hashes: Sequence[str]) -> dict[str, bytes]:
    """Content hash -> float32 little-endian bytes, for those of ``content_hashes`` stored."""
    with conn.cursor(binary=True) as cur:  # binary: no text parsing of every float
        rows = cur.execute(
            "SELECT content_hash, embedding FROM vectors WHERE content_hash = ANY(%s)",
            (list(dict.fromkeys(content_hashes)),),
        ).fetchall()
    return {str(h): v.to_numpy().astype("<f4").tobytes() for h, v in rows}


def _read_meta(target: str, schema: str) -> dict[str, str] | None:
    """The meta table of ``schema`` (None when there is no such collection)."""
    probe = PgConnection(target, ResourceLedger(), "funcpipe/settings", "settings")
    try:
        with guard(target, "reading its settings"):
            conn = probe.conn
            tables = _schema_tables(conn, schema)
            if not tables or "meta" not in tables:
                return None
            rows = conn.execute(
                sql.SQL("SELECT key, value FROM {}.meta").format(sql.Identifier(schema))
            ).fetchall()
            return {str(k): str(v) for k, v in rows}
    finally:
        probe.close()


class _PostgresBackend:
    """The dispatch entry of :func:`funcpipe_rag.index.open_index` for PostgreSQL."""

    def open(
        self,
        target: str,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        readonly: bool,
        rebuild: bool,
        options: IndexOptions,
    ) -> PgIndex:
        return PgIndex(target, space, ledger, readonly=readonly, rebuild=rebuild, options=options)

    def remembered(self, target: str, options: IndexOptions) -> dict[str, Any] | None:
        meta = _read_meta(target, check_collection(options.collection))
        if meta is None:
            return None
        if any(key not in meta for key in META_KEYS):
            return {}  # damaged: opening it says what is wrong
        return remembered_from_meta(meta)

    def leftover_rebuild(self, target: str, options: IndexOptions) -> str | None:
        schema = rebuild_schema(check_collection(options.collection))
        if _read_meta(target, schema) is None:
            return None
        return f"collection {schema} in {redact_url(target)}"

    def exists(self, target: str, options: IndexOptions) -> bool:
        return _read_meta(target, check_collection(options.collection)) is not None

    def discard(self, target: str, options: IndexOptions) -> None:
        schema = sql.Identifier(check_collection(options.collection))
        session = PgConnection(target, ResourceLedger(), "funcpipe/discard", "discard")
        try:
            with guard(target, "dropping a collection"):
                session.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        finally:
            session.close()


BACKEND = _PostgresBackend()

__all__ = ["BACKEND", "PgIndex", "fetch_vectors", "prepare_session"]
