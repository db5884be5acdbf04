"""Query an index: embed the query in the index's own vector space, rank by cosine.

Brute force with NumPy: vectors are L2-normalised, so one matrix-vector product gives
every cosine score; ``argpartition`` picks the top ``k`` without sorting all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunSettings
from .embedders.base import Vector
from .embedders.factory import InProcessHashEmbedder, open_http_embedder
from .errors import ConfigError, EmbeddingUnavailableError, IndexMismatchError
from .index import IndexSpace, open_index
from .policies.ledger import ResourceLedger
from .result import Err


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: where the chunk is and how close it is to the query."""

    score: float
    chunk_id: str
    path: str
    start: int
    end: int
    text: str

    def to_jsonable(self) -> dict[str, object]:
        return {
            "score": round(self.score, 6),
            "chunk_id": self.chunk_id,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


def _embed_query(
    space: IndexSpace, query: str, url: str, ledger: ResourceLedger, settings: RunSettings
) -> Vector:
    """The query in the index's own vector space: same embedder, model and dimension.

    Over HTTP the request has the bounds of an ingest batch (``settings``' timeouts,
    retry budget as its total deadline, answer cap), so a hostile or broken server
    cannot hold a search longer than the budget.
    """
    if space.embedder == "hash":
        local = InProcessHashEmbedder(dim=space.dim, model=space.model, ledger=ledger)
        try:
            return local.embed_query(query)
        finally:
            local.close()
    if not url:
        raise ConfigError(
            f"the index was built with --embedder {space.embedder} (model {space.model}); "
            "give the server's --url (or FUNCPIPE_URL) to embed the query"
        )
    remote = open_http_embedder(
        settings,
        ledger,
        protocol=space.embedder,
        url=url,
        model="" if space.model == "default" else space.model,
        concurrency=1,
    )
    try:
        (result,) = remote.embed_batch([query])
    finally:
        remote.close()
    if isinstance(result, Err):
        raise EmbeddingUnavailableError(f"cannot embed the query: {result.error.msg}")
    if result.value.size != space.dim:
        raise IndexMismatchError(
            f"the server answers {result.value.size}-d, the index holds {space.dim}-d"
        )
    vector: Vector = result.value / max(float(np.linalg.norm(result.value)), 1e-12)
    return vector


def search_index(
    index_path: Path,
    query: str,
    *,
    k: int = 5,
    url: str = "",
    ledger: ResourceLedger | None = None,
    settings: RunSettings | None = None,
) -> list[Hit]:
    """The ``k`` chunks closest to ``query``, best first.

    Scores are cosine similarities: the hash embedder's vectors are unit length, and
    remote vectors are normalised here before ranking. ``settings`` supplies the HTTP
    embedder's timeouts, retry budget, answer cap and encoding (built-in defaults when
    None); the vector space always comes from the index.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if not query.strip():
        raise ConfigError("the query is empty")
    ledger = ledger if ledger is not None else ResourceLedger()
    with open_index(index_path, None, ledger, readonly=True) as index:
        space = index.space
        q = _embed_query(space, query, url, ledger, settings or RunSettings())
        rows = list(index.iter_rows())
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(r[5] for r in rows), dtype="<f4").reshape(len(rows), space.dim)
    if space.embedder != "hash":  # remote models need not return unit vectors
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    scores = matrix @ q
    top = min(k, len(rows))
    best = np.argpartition(-scores, top - 1)[:top]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [
        Hit(float(scores[i]), rows[i][0], rows[i][1], rows[i][2], rows[i][3], rows[i][4])
        for i in best
    ]


__all__ = ["Hit", "search_index"]
