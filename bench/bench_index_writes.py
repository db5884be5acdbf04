"""What keeping the search structures in step costs the write path.

The chunks of a real corpus (``/work/corpus/small``, or ``FUNCPIPE_BENCH_WRITE_CORPUS``)
are written into fresh indexes with ``SqliteIndex.write`` in batches of 256 (the
default ``commit_every``), as a run writes them; their vectors were stored before and
are not timed. Variants, in the same run: everything as shipped (new rows indexed by
one ``INSERT ... SELECT`` per batch, deletes by triggers; vector blocks), the full-text
index fed by a per-row insert trigger instead (the alternative that was measured), as
shipped but without the triggers that keep the documents' title and path index (schema
5) in step, no full-text index, no vector blocks (their refresh a no-op), and neither
(the schema-3 tables and indexes kept). Best of 3 rounds, the variants alternating in
each; wall and CPU seconds (this process's CPU: the writes run on its thread, and CPU
time moves less with the load of a shared machine).

Then the whole ``funcpipe ingest`` of the same corpus (fresh process, fresh index, hash
embedder), this branch against main before it (40c1a61, from ``git archive``), twice
each, alternating: the write-path cost as a run sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from funcpipe_rag.chunking.chunks import ChunkWithoutEmbedding, iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings
from funcpipe_rag.embedders.hashing import HashEmbedder
from funcpipe_rag.index import IndexSpace, PendingChunk, sqlite_lexical, sqlite_vectors
from funcpipe_rag.index.sqlite import SqliteIndex
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import extract_documents, read_files
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import WalkOptions, iter_paths

Row = dict[str, Any]
REPO = Path(__file__).resolve().parents[1]
BEFORE = "40c1a61"  # main before the search structures
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
def _patched(blocks: bool, fts: str) -> Iterator[None]:
    real_refresh, real_index = sqlite_vectors.refresh, sqlite_lexical.index_rows_after
    if not blocks:
        sqlite_vectors.refresh = lambda conn, touched, new_block: None
    if fts != "batch":
        sqlite_lexical.index_rows_after = lambda conn, last: None
    try:
        yield
    finally:
        sqlite_vectors.refresh, sqlite_lexical.index_rows_after = real_refresh, real_index


def _write_all(db: Path, pending: list[PendingChunk], vectors: dict[str, bytes],
               fts: str, blocks: bool, doc_fts: bool = True) -> float:  # fmt: skip
    """``fts``: "batch" (as shipped), "trigger" (a per-row insert trigger) or "none";
    ``doc_fts`` False drops the title and path index's triggers."""
    ledger = ResourceLedger()
    index = SqliteIndex(db, SPACE, ledger)
    try:
        # From another connection: the trust check happens at open only.
        conn = sqlite3.connect(db)
        if not doc_fts:
            for trigger in sqlite_lexical.DOC_TRIGGERS:
                conn.execute(f"DROP TRIGGER {trigger}")
        if fts == "none":
            for trigger in sqlite_lexical.TRIGGERS:
                conn.execute(f"DROP TRIGGER {trigger}")
        if fts == "trigger":
            conn.execute(
                "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN INSERT INTO "
                "chunks_fts(rowid, text) VALUES (new.id, new.text); END"
            )
        conn.commit()
        conn.close()
        index.store_vectors(vectors)
        with _patched(blocks, fts):
            t0 = time.perf_counter()
            for i in range(0, len(pending), BATCH):
                index.write(pending[i : i + BATCH])
            return time.perf_counter() - t0
    finally:
        index.close()


def bench_index_writes() -> list[Row]:
    if not CORPUS.is_dir():
        raise SystemExit(
            f"{CORPUS} is missing: build the real corpus with "
            "/work/shared/tools/build_real_corpus.py, or set FUNCPIPE_BENCH_WRITE_CORPUS"
        )
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
        ("as shipped: full-text index (batch insert) + vector blocks", "batch", True, True),
        ("full-text index by a per-row insert trigger + vector blocks", "trigger", True, True),
        ("as shipped without the title/path index triggers", "batch", True, False),
        ("full-text index (batch insert), no vector blocks", "batch", False, True),
        ("vector blocks, no full-text index", "none", True, True),
        ("neither (schema-3 tables and indexes kept)", "none", False, True),
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-writes-") as tmp:
        # Variants alternate within each round (the machine is shared: load drifts), and
        # each index is deleted once measured (a full corpus's index is hundreds of MB).
        seconds = {v[0]: float("inf") for v in variants}
        cpu = dict(seconds)
        sizes: dict[str, int] = {}
        for attempt in range(3):
            for label, fts, blocks, doc_fts in variants:
                db = Path(tmp) / f"{fts}-{blocks}-{doc_fts}-{attempt}.db"
                c0 = time.process_time()
                wall = _write_all(db, pending, vectors, fts, blocks, doc_fts)
                cpu[label] = min(cpu[label], time.process_time() - c0)
                seconds[label] = min(seconds[label], wall)
                sizes[label] = db.stat().st_size
                for leftover in Path(tmp).glob(db.name + "*"):
                    leftover.unlink()
        for label, *_ in variants:
            rows.append(
                {
                    "name": f"index writes: {label}",
                    "chunks": len(pending),
                    "seconds": round(seconds[label], 3),
                    "cpu_s": round(cpu[label], 3),
                    "chunks_per_s": round(len(pending) / seconds[label]),
                    "index_mb": round(sizes[label] / 2**20, 1),
                }
            )
        base = seconds[variants[-1][0]]
        base_cpu = cpu[variants[-1][0]]
        for row, (label, *_) in zip(rows, variants, strict=True):
            row["ratio_vs_neither"] = round(base / seconds[label], 3)
            row["cpu_ratio_vs_neither"] = round(base_cpu / cpu[label], 3)
        rows += _end_to_end(Path(tmp))
    return rows


def _ingest(tmp: Path, label: str, pythonpath: Path | None, attempt: int) -> float:
    db, report = tmp / f"e2e-{label}-{attempt}.db", tmp / f"e2e-{label}-{attempt}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, "-m", "funcpipe_rag.cli", "ingest", str(CORPUS), "--index", str(db)]
    cmd += ["--quiet", "--report", "none", "--report-file", str(report)]
    subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, check=False)
    doc: dict[str, Any] = json.loads(report.read_text())
    return float(doc["timing"]["chunks_per_s"])


def _end_to_end(tmp: Path) -> list[Row]:
    src = tmp / BEFORE
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    rates: dict[str, list[float]] = {"this branch": [], BEFORE: []}
    for attempt in range(2):
        rates["this branch"].append(_ingest(tmp, "new", None, attempt))
        rates[BEFORE].append(_ingest(tmp, "old", src / "src", attempt))
    best = {k: max(v) for k, v in rates.items()}
    return [
        {
            "name": f"ingest e2e, {label} ({CORPUS})",
            "chunks_per_s": round(rate),
            "ratio_vs_before": round(rate / best[BEFORE], 3),
        }
        for label, rate in best.items()
    ]
