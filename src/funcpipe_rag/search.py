"""Query an index: embed the query in the index's own vector space, rank by cosine.

The index ranks its own vectors (:meth:`~funcpipe_rag.index.VectorIndex.search`); this
module only puts the query into the index's vector space.
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
from .index import Hit, IndexSpace, open_index
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

    Scores are cosine similarities: every embedder's ``embed_query`` gives a unit
    vector. ``settings`` supplies the HTTP embedder's timeouts, retry budget, answer
    cap and encoding, and an onnx model's threads (built-in defaults when None); the
    vector space always comes from the index.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if not query.strip():
        raise ConfigError("the query is empty")
    ledger = ledger if ledger is not None else ResourceLedger()
    with contextlib.closing(open_index(index_path, None, ledger, readonly=True)) as index:
        q = _embed_query(
            index.space, index.remembered, query, url, ledger, settings or RunSettings()
        )
        return index.search(q, k)


__all__ = ["Hit", "search_index"]
