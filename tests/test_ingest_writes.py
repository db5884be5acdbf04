"""The sink's writes: a free embedder's vectors stored with their chunks, on the index
writer's thread, give the same index and the same counts as vectors stored when made."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from funcpipe_rag.config import RunSettings
from funcpipe_rag.embedders import registry
from funcpipe_rag.ingest import IngestRequest, ingest
from tests.cli.helpers import prose, write_tree


def _everything(db: Path) -> list[Any]:
    conn = sqlite3.connect(db)
    try:
        return [
            conn.execute(sql).fetchall()
            for sql in (
                "SELECT doc_id, path, file_hash, complete, note FROM documents ORDER BY doc_id",
                (
                    'SELECT chunk_id, doc_id, seq, start, "end", text, content_hash, section '
                    "FROM chunks ORDER BY chunk_id"
                ),
                "SELECT content_hash, vector FROM vectors ORDER BY content_hash",
                (
                    "SELECT c.chunk_id FROM chunks_fts_docsize d JOIN chunks c ON c.id = d.id "
                    "ORDER BY c.chunk_id"
                ),
            )
        ]
    finally:
        conn.close()


def test_a_free_embedders_vectors_stored_with_their_chunks_change_nothing_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same paragraphs in many files: contents recur within a batch, across batches
    # and across chunk writes (batch 4, write 8), so reuse meets vectors not yet written.
    shared = prose(1, 3)
    tree = write_tree(
        tmp_path / "docs",
        {f"f{i:02}.md": (shared if i % 3 else "") + prose(i + 10, 2) for i in range(24)},
    )
    runs = {}
    for free in (True, False):
        kind = dataclasses.replace(registry.KINDS["hash"], free=free)
        monkeypatch.setitem(registry.KINDS, "hash", kind)
        db = tmp_path / f"free-{free}.db"
        settings = RunSettings(
            index=str(db), batch_size=4, commit_every=8, chunk_size=200, overlap=20
        )
        summary = ingest(IngestRequest(roots=(str(tree),), settings=settings))
        assert summary.status == "ok", summary.reason
        assert summary.os_after.threads == summary.os_before.threads
        runs[free] = (summary.stats, _everything(db))
    (free_stats, free_rows), (paid_stats, paid_rows) = runs[True], runs[False]
    assert free_stats.chunks_reused > 0 and free_stats.chunks_stored > 50
    assert free_rows == paid_rows
    for field in ("chunks_embedded", "chunks_reused", "chunks_stored", "files_ingested"):
        assert getattr(free_stats, field) == getattr(paid_stats, field), field
