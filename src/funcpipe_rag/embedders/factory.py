"""Build the embedder a run's settings ask for."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..config import RunSettings
from ..errors import ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..policies.retries import RetryPolicy
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from .base import Embedder, Vector
from .hashing import HASH_EMBEDDER_VERSION, HashEmbedder
from .http import HttpEmbedder


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


def api_key_from_env(embedder: str, env: Mapping[str, str] | None = None) -> str | None:
    """``FUNCPIPE_API_KEY``, else ``OPENAI_API_KEY`` for the openai protocol; else None."""
    env = os.environ if env is None else env
    key = env.get("FUNCPIPE_API_KEY") or (
        env.get("OPENAI_API_KEY") if embedder == "openai" else None
    )
    return key or None


def open_embedder(settings: RunSettings, ledger: ResourceLedger) -> Embedder:
    """The embedder for ``settings``; the caller owns it and must close it."""
    if settings.embedder == "hash":
        return InProcessHashEmbedder(dim=settings.dim, model=settings.model, ledger=ledger)
    return open_http_embedder(
        settings,
        ledger,
        protocol=settings.embedder,
        url=settings.url,
        model=settings.model,
        concurrency=settings.concurrency,
    )


def open_http_embedder(
    settings: RunSettings,
    ledger: ResourceLedger,
    *,
    protocol: str,
    url: str,
    model: str,
    concurrency: int,
) -> HttpEmbedder:
    """An :class:`HttpEmbedder` with the timeouts, retry budget, answer cap and encoding
    of ``settings`` (an ingest run's, or a search's for its one query)."""
    policy = RetryPolicy(
        max_attempts=settings.max_attempts, max_delay=8.0, max_elapsed=settings.retry_budget
    )
    return HttpEmbedder(
        protocol=protocol,
        url=url,
        model=model,
        ledger=ledger,
        api_key=api_key_from_env(protocol),
        concurrency=concurrency,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.timeout,
        retry=policy,
        encoding_format=settings.encoding_format,
        max_answer_mb=settings.max_answer_mb,
    )


def content_space(embedder: Embedder) -> str:
    """What a content hash must include of the vector space.

    The hash embedder's dimension is the user's choice, so it is part of the key; an
    HTTP model fixes its own dimension, which is only known after the first answer.
    """
    if embedder.name == "hash":
        return f"hash:{embedder.model}:{embedder.dim}"
    return f"{embedder.name}:{embedder.model}"


def planned_space(settings: RunSettings) -> tuple[str, str, int]:
    """(embedder, model, dim) that a run with ``settings`` will use, without opening
    anything; dim is 0 for HTTP embedders (learned from the first answer)."""
    if settings.embedder == "hash":
        return "hash", settings.model or HASH_EMBEDDER_VERSION, settings.dim
    return settings.embedder, settings.model or "default", 0


def planned_content_space(settings: RunSettings) -> str:
    """:func:`content_space` of the embedder ``settings`` would open."""
    name, model, dim = planned_space(settings)
    return f"hash:{model}:{dim}" if name == "hash" else f"{name}:{model}"
