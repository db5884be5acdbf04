"""Build the embedder a run's settings ask for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import RunSettings
from ..errors import ConfigError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from .base import Embedder, Vector
from .hashing import HASH_EMBEDDER_VERSION, HashEmbedder


class InProcessHashEmbedder:
    """The default embedder: :class:`HashEmbedder` behind the :class:`Embedder` protocol."""

    name = "hash"

    def __init__(self, *, dim: int, model: str, ledger: ResourceLedger) -> None:
        self._impl = HashEmbedder(dim=dim, model=model or HASH_EMBEDDER_VERSION)
        self.model = self._impl.model
        self.dim = self._impl.dim
        self._ledger = ledger
        self._handle = ledger.acquire("embedder", f"hash:{self.model}:{self.dim}")
        self._closed = False

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        if self._closed:
            raise ResourceClosedError("the embedding client is closed")
        vectors = self._impl.embed_texts(texts)
        out: list[Result[Vector, ErrInfo]] = []
        for row in vectors:
            if np.isfinite(row).all():
                out.append(Ok(row))
            else:  # cannot happen with hashing; checked because every embedder is checked
                out.append(Err(make_errinfo("EMBED/NOT_FINITE", "vector has NaN or inf")))
        return out

    def embed_query(self, text: str) -> Vector:
        return self._impl.embed_query(text)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ledger.release(self._handle)


def open_embedder(settings: RunSettings, ledger: ResourceLedger) -> Embedder:
    """The embedder for ``settings``; the caller owns it and must close it."""
    if settings.embedder == "hash":
        return InProcessHashEmbedder(dim=settings.dim, model=settings.model, ledger=ledger)
    raise ConfigError(
        f"--embedder {settings.embedder} is not available in this version (HTTP embedders "
        "arrive with the managed-connections work); use --embedder hash"
    )
