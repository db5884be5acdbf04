"""Query an index: embed the query in the index's own vector space, rank by cosine.

The index ranks its own vectors (:meth:`~funcpipe_rag.index.VectorIndex.search`); this
module only puts the query into the index's vector space.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .config import RunSettings
from .embedders.base import Vector
from .embedders.factory import InProcessHashEmbedder, open_http_embedder
from .errors import ConfigError, EmbeddingUnavailableError, IndexMismatchError
from .index import Hit, IndexSpace, open_index
from .policies.ledger import ResourceLedger
from .result import Err


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
    index_target: str | Path,
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
    settings = settings or RunSettings()
    opened = open_index(index_target, None, ledger, readonly=True, options=settings.index_options())
    with contextlib.closing(opened) as index:
        q = _embed_query(index.space, query, url, ledger, settings)
        return index.search(q, k)


__all__ = ["Hit", "search_index"]
