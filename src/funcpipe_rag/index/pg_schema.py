"""The tables of a PostgreSQL index, and the checks that decide whether to trust one.

One *collection* is one schema in the database, holding one vector space::

    meta(key, value)             schema version, embedder, model, dim, chunker, settings
    documents(doc_id, ...)       as in SQLite (see :mod:`.sqlite`), signature included
                                 (schema 2), plus ``tsv``, the lexemes of the title and
                                 the path's words (generated; GIN index; schema 3)
    chunks(chunk_id, ...)        as in SQLite, plus an index on content_hash, and
                                 ``tsv``, the text's lexemes (PostgreSQL keeps this
                                 generated column in step with every write; GIN index)
    vectors(content_hash, embedding vector(dim))   pgvector; one row per distinct content
    file_claims(doc_id, ...)     the corpus of the current shared pass: who works on which
                                 file, until when (lease), and how it ended (kept/dropped)
    content_claims(content_hash, worker, expires)  who is paying for which content now
    workers(worker, walked, heartbeat)             the runs of the current pass

``vectors.embedding`` is ``vector`` without a dimension until the first vector fixes it
(an HTTP model's dimension arrives with its first answer), then ``vector(dim)``.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

SCHEMA_VERSION = "3"
TEXT_CONFIG = "english"
"""The text-search configuration of ``chunks.tsv`` and of lexical queries (Snowball
English stemming, as the SQLite index's FTS5 table stems with Porter)."""
_COLLECTION = re.compile(r"[a-z_][a-z0-9_]{0,46}")

TABLES = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE documents (
    doc_id text PRIMARY KEY,
    path text NOT NULL,
    abs_path text NOT NULL,
    size bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    file_hash text,
    complete boolean NOT NULL DEFAULT false,
    run_id text NOT NULL,
    reader text NOT NULL DEFAULT '',
    encoding text NOT NULL DEFAULT '',
    title text NOT NULL DEFAULT '',
    note text NOT NULL DEFAULT '',
    signature text,
    tsv tsvector GENERATED ALWAYS AS ({document_tsv}) STORED
);
CREATE INDEX documents_fts ON documents USING gin (tsv);
CREATE TABLE chunks (
    chunk_id text PRIMARY KEY,
    doc_id text NOT NULL,
    seq integer NOT NULL,
    start integer NOT NULL,
    "end" integer NOT NULL,
    text text NOT NULL,
    content_hash text NOT NULL,
    run_id text NOT NULL,
    section text NOT NULL DEFAULT '',
    page integer,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('{text_config}', text)) STORED
);
CREATE INDEX chunks_by_doc ON chunks (doc_id);
CREATE INDEX chunks_by_content ON chunks (content_hash);
CREATE INDEX chunks_fts ON chunks USING gin (tsv);
CREATE TABLE vectors (content_hash text PRIMARY KEY, embedding {vector_type} NOT NULL);
CREATE TABLE file_claims (
    doc_id text PRIMARY KEY,
    seq bigserial NOT NULL,
    path text NOT NULL,
    fs_path bytea NOT NULL,
    abs_path text NOT NULL,
    size bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    state text NOT NULL DEFAULT 'todo',
    worker text,
    expires timestamptz
);
CREATE INDEX file_claims_open ON file_claims (seq) WHERE state IN ('todo', 'taken');
CREATE TABLE content_claims (
    content_hash text PRIMARY KEY,
    worker text NOT NULL,
    expires timestamptz NOT NULL
);
CREATE TABLE workers (
    worker text PRIMARY KEY,
    walked boolean NOT NULL DEFAULT false,
    heartbeat timestamptz NOT NULL
)
"""

# The words of a document's title and path: the path's separators become spaces first
# (PostgreSQL's parser would read "kitchen/quick-tomato-soup.md" as one file name), as
# SQLite's tokeniser splits it.
DOCUMENT_TSV = f"to_tsvector('{TEXT_CONFIG}', title || ' ' || translate(path, '/._-', '    '))"
# What an existing collection must hold to be trusted (the tables above, by name).
COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "documents": (
        "doc_id", "path", "abs_path", "size", "mtime_ns", "file_hash", "complete", "run_id",
        "reader", "encoding", "title", "note", "signature", "tsv",
    ),
    "chunks": (
        "chunk_id", "doc_id", "seq", "start", "end", "text", "content_hash", "run_id",
        "section", "page", "tsv",
    ),
    "vectors": ("content_hash", "embedding"),
    "file_claims": (
        "doc_id", "seq", "path", "fs_path", "abs_path", "size", "mtime_ns", "state", "worker",
        "expires",
    ),
    "content_claims": ("content_hash", "worker", "expires"),
    "workers": ("worker", "walked", "heartbeat"),
}  # fmt: skip
META_KEYS = ("schema", "embedder", "model", "dim", "chunker")

# version -> the statements that bring a collection of that version one version up, and
# the version they bring it to. 1 -> 2: each document's stat signature
# (funcpipe_rag.signature); old rows get NULL, untrusted, so their files are read once.
# 2 -> 3: the lexemes of each document's title and path words (generated from the rows).
MIGRATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "1": (("ALTER TABLE documents ADD COLUMN signature text",), "2"),
    "2": (
        (
            (
                "ALTER TABLE documents ADD COLUMN IF NOT EXISTS tsv tsvector "
                f"GENERATED ALWAYS AS ({DOCUMENT_TSV}) STORED"
            ),
            "CREATE INDEX IF NOT EXISTS documents_fts ON documents USING gin (tsv)",
        ),
        "3",
    ),
}

# Staging tables of one session, emptied at every commit: binary COPY fills them, then
# one INSERT ... ON CONFLICT moves the rows (COPY alone cannot skip or update a row).
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_chunks (
    chunk_id text, doc_id text, seq integer, start integer, "end" integer, text text,
    content_hash text, run_id text, section text, page integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_vectors (content_hash text, embedding {vector_type})
    ON COMMIT DELETE ROWS
"""
CHUNK_TYPES = ["text", "text", "int4", "int4", "int4", "text", "text", "text", "text", "int4"]


def check_collection(name: str) -> str:
    """``name`` if it is a plain lower-case identifier (it names a schema), else raise."""
    if not _COLLECTION.fullmatch(name):
        raise ConfigError(
            f"collection must be lower-case letters, digits and _ (at most 47, not starting "
            f"with a digit), got {name!r}"
        )
    return name


def rebuild_schema(collection: str) -> str:
    """Where ``--reembed`` builds the new collection beside the live one."""
    return f"{collection}_reembed"


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


__all__ = [
    "CHUNK_TYPES",
    "COLUMNS",
    "DOCUMENT_TSV",
    "META_KEYS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STAGING",
    "TABLES",
    "check_collection",
    "rebuild_schema",
    "statements",
]
