"""Query an index: embed the query in the index's own vector space, let the index rank.

The index ranks its own vectors and its own text
(:meth:`~funcpipe_rag.index.VectorIndex.search`, hybrid by default); this module puts
the query into the index's vector space and builds the :class:`~funcpipe_rag.index.Query`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .config import RunSettings
from .embedders.base import Vector
from .embedders.factory import InProcessHashEmbedder, open_http_embedder
from .errors import ConfigError, EmbeddingUnavailableError, IndexMismatchError
from .index import Hit, IndexSpace, Query, VectorIndex, open_index
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


def query_vector(
    index: VectorIndex, text: str, url: str, ledger: ResourceLedger, settings: RunSettings
) -> Vector:
    """``text`` embedded the way ``index`` was built (its embedder, model and dimension)."""
    return _embed_query(index.space, text, url, ledger, settings)


def search_index(
    index_target: str | Path,
    query: str,
    *,
    k: int = 5,
    mode: str = "hybrid",
    paths: tuple[str, ...] = (),
    min_score: float = 0.0,
    url: str = "",
    ledger: ResourceLedger | None = None,
    settings: RunSettings | None = None,
) -> list[Hit]:
    """The best ``k`` distinct contents for ``query``, best first.

    ``mode`` is ``hybrid`` (BM25 and cosine rankings fused), ``vector`` (cosine) or
    ``lexical`` (BM25); ``paths`` keeps hits from files matching one of these globs;
    hits scoring below ``min_score`` are dropped. Lexical search embeds nothing, so it
    needs no embedding server. ``settings`` supplies the HTTP embedder's timeouts, retry
    budget, answer cap and encoding (built-in defaults when None); the vector space
    always comes from the index.
    """
    if not query.strip():
        raise ConfigError("the query is empty")
    ledger = ledger if ledger is not None else ResourceLedger()
    settings = settings or RunSettings()
    opened = open_index(index_target, None, ledger, readonly=True, options=settings.index_options())
    with contextlib.closing(opened) as index:
        vector = None
        if mode != "lexical":
            vector = query_vector(index, query, url, ledger, settings)
        return index.search(
            Query(text=query, vector=vector, mode=mode, k=k, paths=paths, min_score=min_score)
        )


__all__ = ["Hit", "query_vector", "search_index"]
