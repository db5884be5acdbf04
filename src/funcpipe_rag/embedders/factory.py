"""Open the built-in embedders from a run's settings (the registry's openers), and the
names the rest of the program used before the registry existed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..config import RunSettings
from ..errors import ConfigError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..policies.retries import RetryPolicy
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from . import registry
from .base import Embedder, Vector
from .hashing import HASH_EMBEDDER_VERSION, HashEmbedder
from .http import HttpEmbedder


class InProcessHashEmbedder:
    """The default embedder: :class:`HashEmbedder` behind the :class:`Embedder` protocol."""

    name = "hash"
    concurrency = 1  # microseconds a chunk: a worker thread would cost more than it saves

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
        # One check for the whole batch (a per-row check was a NumPy call per chunk).
        finite = np.all(np.isfinite(vectors), axis=1, keepdims=False).reshape(-1)
        out: list[Result[Vector, ErrInfo]] = []
        for row, ok in zip(vectors, finite.tolist(), strict=True):
            if ok:
                out.append(Ok(row))
            else:  # cannot happen with hashing; checked because every embedder is checked
                out.append(Err(make_errinfo("EMBED/NOT_FINITE", "vector has NaN or inf")))
        return out

    def embed_query(self, text: str) -> Vector:
        if self._closed:
            raise ResourceClosedError("the embedding client is closed")
        return self._impl.embed_query(text)

    def expect_dim(self, dim: int) -> None:
        if dim != self.dim:
            raise ConfigError(f"the hash embedder makes {self.dim}-d vectors, the index {dim}-d")

    def cancel_inflight(self) -> None:
        """Nothing to cancel: a batch runs on the consuming thread, in microseconds."""

    def resume(self) -> None:
        """Nothing was cancelled."""

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


def open_hash(settings: RunSettings, ledger: ResourceLedger) -> InProcessHashEmbedder:
    """The registry's opener of ``hash``."""
    return InProcessHashEmbedder(dim=settings.dim, model=settings.model, ledger=ledger)


def open_http(settings: RunSettings, ledger: ResourceLedger) -> HttpEmbedder:
    """The registry's opener of the HTTP protocols (``openai``, ``ollama``, ``tei``)."""
    return open_http_embedder(
        settings,
        ledger,
        protocol=settings.embedder,
        url=settings.url,
        model=settings.model,
        concurrency=settings.concurrency,
    )


def open_embedder(settings: RunSettings, ledger: ResourceLedger) -> Embedder:
    """The embedder for ``settings``; the caller owns it and must close it."""
    return registry.open_embedder(settings, ledger)


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


def planned_space(settings: RunSettings) -> tuple[str, str, int]:
    """(embedder, model, dim) that a run with ``settings`` will use, without opening
    anything (see :func:`.registry.planned_space`)."""
    return registry.planned_space(settings)


def planned_content_space(settings: RunSettings) -> str:
    """The content-space key of a run with ``settings`` (:func:`.registry.content_space`)."""
    return registry.content_space(settings)
