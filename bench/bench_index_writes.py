"""What keeping the search structures in step costs the write path.

The chunks of a real corpus (``/work/corpus/small``, or ``FUNCPIPE_BENCH_WRITE_CORPUS``)
are written into fresh indexes with ``SqliteIndex.write`` in batches of 256 (the
default ``commit_every``), as a run writes them; their vectors were stored before and
are not timed. Variants, in the same run: everything as shipped (full-text index by
triggers, vector blocks), no full-text index (its triggers dropped after the index was
made), no vector blocks (their refresh turned into a no-op), and neither. Best of 3.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from funcpipe_rag.chunking.chunks import ChunkWithoutEmbedding, iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings
from funcpipe_rag.embedders.hashing import HashEmbedder
from funcpipe_rag.index import IndexSpace, PendingChunk, sqlite_vectors
from funcpipe_rag.index.sqlite import SqliteIndex
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import extract_documents, read_files
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import WalkOptions, iter_paths

Row = dict[str, Any]
CORPUS = Path(os.environ.get("FUNCPIPE_BENCH_WRITE_CORPUS", "/work/corpus/small"))
BATCH = 256
SPACE = IndexSpace("hash", "hash-ngram-v1", 384, "")


def _chunks(ledger: ResourceLedger) -> list[ChunkWithoutEmbedding]:
    settings = ChunkerSettings(chunk_size=800, overlap=100)
    stage = iter_chunks(
        extract_documents(read_files(iter_paths([str(CORPUS)], WalkOptions()), ledger), ledger),
        settings,
        space="bench",
    )
    try:
        return [r.value for r in stage if isinstance(r, Ok)]
    finally:
        stage.close()


def _pending(c: ChunkWithoutEmbedding) -> PendingChunk:
    src = c.doc.source
    return PendingChunk(
        chunk_id=c.chunk_id, doc_id=c.doc_id, path=c.path, abs_path=src.abs_path, seq=c.seq,
        start=c.start, end=c.end, text=c.text, content_hash=c.content_hash,
        doc_size=src.size, doc_mtime_ns=src.mtime_ns, doc_hash=c.doc.file_hash,
        last_of_doc=c.is_last, doc_failed=False, reader=c.doc.reader,
    )  # fmt: skip


@contextlib.contextmanager
def _without_blocks(off: bool) -> Iterator[None]:
    real = sqlite_vectors.refresh
    if off:
        sqlite_vectors.refresh = lambda conn, touched, new_block: None
    try:
        yield
    finally:
        sqlite_vectors.refresh = real


def _write_all(db: Path, pending: list[PendingChunk], vectors: dict[str, bytes],
               fts: bool, blocks: bool) -> float:  # fmt: skip
    ledger = ResourceLedger()
    index = SqliteIndex(db, SPACE, ledger)
    try:
        if not fts:  # from another connection: the trust check happens at open only
            conn = sqlite3.connect(db)
            for trigger in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
                conn.execute(f"DROP TRIGGER {trigger}")
            conn.commit()
            conn.close()
        index.store_vectors(vectors)
        with _without_blocks(not blocks):
            t0 = time.perf_counter()
            for i in range(0, len(pending), BATCH):
                index.write(pending[i : i + BATCH])
            return time.perf_counter() - t0
    finally:
        index.close()


def bench_index_writes() -> list[Row]:
    ledger = ResourceLedger()
    chunks = _chunks(ledger)
    pending = [_pending(c) for c in chunks]
    embedder = HashEmbedder(dim=384)
    vectors: dict[str, bytes] = {}
    for i in range(0, len(chunks), 512):
        part = chunks[i : i + 512]
        for c, v in zip(part, embedder.embed_texts([c.text for c in part]), strict=True):
            vectors[c.content_hash] = v.astype("<f4").tobytes()
    variants = (
        ("as shipped: full-text index + vector blocks", True, True),
        ("no vector blocks", True, False),
        ("no full-text index", False, True),
        ("neither (the write path before search structures)", False, False),
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-writes-") as tmp:
        seconds: dict[str, float] = {}
        for label, fts, blocks in variants:
            best = float("inf")
            for attempt in range(3):
                db = Path(tmp) / f"{fts}-{blocks}-{attempt}.db"
                best = min(best, _write_all(db, pending, vectors, fts, blocks))
                size = db.stat().st_size
            seconds[label] = best
            rows.append(
                {
                    "name": f"index writes: {label}",
                    "chunks": len(pending),
                    "seconds": round(best, 3),
                    "chunks_per_s": round(len(pending) / best),
                    "index_mb": round(size / 2**20, 1),
                }
            )
        base = seconds[variants[-1][0]]
        for row, (label, _, _) in zip(rows, variants, strict=True):
            row["ratio_vs_neither"] = round(base / seconds[label], 3)
    return rows
