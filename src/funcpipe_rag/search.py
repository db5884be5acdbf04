"""Query an index: embed the query in the index's own vector space, let the index rank.

The index ranks its own vectors and its own text
(:meth:`~funcpipe_rag.index.VectorIndex.search`, hybrid by default); this module puts
the query into the index's vector space and builds the :class:`~funcpipe_rag.index.Query`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import BY_NAME, RunSettings, coerce
from .embedders import registry
from .embedders.base import Vector
from .errors import ConfigError, IndexMismatchError
from .index import Hit, IndexSpace, Query, VectorIndex, open_index
from .policies.ledger import ResourceLedger

_FROM_SPACE = frozenset({"embedder", "model", "dim"})


def _embed_query(
    space: IndexSpace,
    remembered: Mapping[str, Any],
    query: str,
    url: str,
    ledger: ResourceLedger,
    settings: RunSettings,
) -> Vector:
    """The query in the index's own vector space: the registry entry, model, dimension
    and the other vector-space settings (an onnx model's pooling and prefixes) that the
    index was built with.

    Over HTTP the request has the bounds of an ingest batch (``settings``' timeouts,
    retry budget as its total deadline, answer cap), so a hostile or broken server
    cannot hold a search longer than the budget.
    """
    built = {  # embedder, model and dim come from the space itself
        name: coerce(BY_NAME[name], value, "the index")
        for name, value in remembered.items()
        if name in BY_NAME and BY_NAME[name].meta.space and name not in _FROM_SPACE
    }
    base = dataclasses.replace(settings, **built, url=url or settings.url)
    embedder = registry.open_embedder(registry.query_settings(space, base), ledger)
    try:
        vector = embedder.embed_query(query)
    finally:
        embedder.close()
    if vector.size != space.dim:
        raise IndexMismatchError(
            f"the {space.embedder} embedder gives {vector.size}-d vectors, "
            f"the index holds {space.dim}-d"
        )
    return vector


def query_vector(
    index: VectorIndex, text: str, url: str, ledger: ResourceLedger, settings: RunSettings
) -> Vector:
    """``text`` embedded the way ``index`` was built (its embedder, model and dimension)."""
    return _embed_query(index.space, index.remembered, text, url, ledger, settings)


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
    needs no embedding server. Vector scores are cosine similarities: every embedder's
    ``embed_query`` gives a unit vector. ``settings`` supplies the HTTP embedder's
    timeouts, retry budget, answer cap and encoding, and an onnx model's threads
    (built-in defaults when None); the vector space always comes from the index.
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
