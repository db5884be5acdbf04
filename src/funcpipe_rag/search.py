"""Query an index: embed the query in the index's own vector space, rank by cosine.

Brute force with NumPy: vectors are L2-normalised, so one matrix-vector product gives
every cosine score; ``argpartition`` picks the top ``k`` without sorting all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedders.factory import InProcessHashEmbedder
from .errors import ConfigError
from .index import open_index
from .policies.ledger import ResourceLedger


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


def search_index(
    index_path: Path, query: str, *, k: int = 5, ledger: ResourceLedger | None = None
) -> list[Hit]:
    """The ``k`` chunks closest to ``query``, best first."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if not query.strip():
        raise ConfigError("the query is empty")
    ledger = ledger if ledger is not None else ResourceLedger()
    with open_index(index_path, None, ledger, readonly=True) as index:
        space = index.space
        if space.embedder != "hash":
            raise ConfigError(
                f"index {index_path} was built with --embedder {space.embedder}; searching it "
                "needs that embedder, which this version cannot reach yet"
            )
        embedder = InProcessHashEmbedder(dim=space.dim, model=space.model, ledger=ledger)
        try:
            q = embedder.embed_query(query)
        finally:
            embedder.close()
        rows = list(index.iter_rows())
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(r[5] for r in rows), dtype="<f4").reshape(len(rows), space.dim)
    scores = matrix @ q
    top = min(k, len(rows))
    best = np.argpartition(-scores, top - 1)[:top]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [
        Hit(float(scores[i]), rows[i][0], rows[i][1], rows[i][2], rows[i][3], rows[i][4])
        for i in best
    ]


__all__ = ["Hit", "search_index"]
