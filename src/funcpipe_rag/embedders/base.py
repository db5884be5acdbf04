"""What every embedder offers, and the batching stage that drives one.

An embedder turns a batch of texts into one ``Result`` per text (so a single bad input
can fail alone) and owns whatever it holds (an HTTP client, a pool): ``close()`` is
idempotent, and use after close raises ``ResourceClosedError``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..chunking.chunks import Chunk, ChunkWithoutEmbedding
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..streams import Stage, batched, close_quietly

Vector = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str
    model: str
    dim: int

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]: ...

    def close(self) -> None: ...


VectorLookup = Callable[[Sequence[str]], dict[str, bytes]]
VectorSink = Callable[[dict[str, bytes]], None]


def vector_from_bytes(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype="<f4")


class _Done:
    """A finished result standing in for a future when there is no executor."""

    __slots__ = ("_value",)

    def __init__(self, value: list[Result[Vector, ErrInfo]]) -> None:
        self._value = value

    def result(self) -> list[Result[Vector, ErrInfo]]:
        return self._value

    def cancel(self) -> bool:
        return False


_Pending = tuple[
    tuple[Result[ChunkWithoutEmbedding, ErrInfo], ...],
    dict[str, bytes],
    list[str],
    "Future[list[Result[Vector, ErrInfo]]] | _Done",
]


def embed_chunks(
    chunks: Iterable[Result[ChunkWithoutEmbedding, ErrInfo]],
    embedder: Embedder,
    *,
    batch_size: int,
    lookup: VectorLookup | None = None,
    executor: Executor | None = None,
    window: int = 1,
    persist: VectorSink | None = None,
    grace_s: float = 2.0,
) -> Stage[Result[Chunk, ErrInfo]]:
    """Embed chunks in batches, reusing vectors the index already holds.

    Results leave in input order; errors pass through in place. A chunk whose content
    hash ``lookup`` finds is not sent to the embedder (``Chunk.reused``), and equal
    contents inside one batch are sent once. With an ``executor``, up to ``window``
    batches are in flight at once (``lookup`` still runs on the consuming thread, so
    an SQLite connection is never shared).

    ``persist`` receives the fresh vectors of every batch as soon as it is answered
    (content hash -> float32 bytes), before its chunks move on: paid work is saved
    even if the process dies before those chunks are stored.

    Closed early, the stage cancels queued batches, gives the batches in flight
    ``grace_s`` seconds to finish (their vectors are persisted: they are paid for),
    asks the embedder to fail the rest at once (``cancel_inflight``, when it has one),
    waits for them, and only then closes its upstream: no request outlives the stage.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")

    def submit(batch: tuple[Result[ChunkWithoutEmbedding, ErrInfo], ...]) -> _Pending:
        oks = [r.value for r in batch if isinstance(r, Ok)]
        known = lookup([c.content_hash for c in oks]) if lookup is not None and oks else {}
        todo: dict[str, str] = {}
        for c in oks:
            if c.content_hash not in known:
                todo.setdefault(c.content_hash, c.text)
        texts = list(todo.values())
        future: Future[list[Result[Vector, ErrInfo]]] | _Done
        if not texts:
            future = _Done([])
        elif executor is None:
            future = _Done(embedder.embed_batch(texts))
            if persist is not None:
                _persist(dict(zip(todo, future.result(), strict=True)), persist)
        else:
            future = executor.submit(_embed_and_persist, embedder, texts, list(todo), persist)
        return batch, known, list(todo.keys()), future

    def finish(pending: _Pending) -> list[Result[Chunk, ErrInfo]]:
        batch, known, keys, future = pending
        fresh = dict(zip(keys, future.result(), strict=True))
        out: list[Result[Chunk, ErrInfo]] = []
        for r in batch:
            if not isinstance(r, Ok):
                out.append(r)
                continue
            c = r.value
            if c.content_hash in known:
                out.append(Ok(Chunk(c, vector_from_bytes(known[c.content_hash]), reused=True)))
                continue
            got = fresh[c.content_hash]
            if isinstance(got, Ok):
                out.append(Ok(Chunk(c, got.value)))
            else:
                e = got.error
                ctx = {**e.ctx, "doc_id": c.doc_id, "chunk_id": c.chunk_id}
                out.append(Err(make_errinfo(e.code, e.msg, stage="embed", path=c.path, **ctx)))
        return out

    def gen() -> Generator[Result[Chunk, ErrInfo], None, None]:
        batches = batched(chunks, batch_size)
        # Invariant: in_flight holds submitted batches in input order, at most `window`.
        in_flight: deque[_Pending] = deque()
        try:
            for batch in batches:
                in_flight.append(submit(batch))
                while len(in_flight) >= window:
                    yield from finish(in_flight.popleft())
            while in_flight:
                yield from finish(in_flight.popleft())
        finally:
            if in_flight:
                _abandon(in_flight, embedder, grace_s)
            batches.close()
            close_quietly(chunks)

    return Stage(gen(), (chunks,))


def _embed_and_persist(
    embedder: Embedder, texts: list[str], keys: list[str], persist: VectorSink | None
) -> list[Result[Vector, ErrInfo]]:
    """Runs on a worker thread: the thread that receives an answer persists it before
    anything else, so a signal unwinding the main thread cannot drop paid vectors."""
    outcomes = embedder.embed_batch(texts)
    if persist is not None:
        _persist(dict(zip(keys, outcomes, strict=True)), persist)
    return outcomes


def _persist(fresh: Mapping[str, Result[Vector, ErrInfo]], persist: VectorSink) -> None:
    vectors = {k: r.value.astype("<f4").tobytes() for k, r in fresh.items() if isinstance(r, Ok)}
    if vectors:
        persist(vectors)


def _abandon(in_flight: deque[_Pending], embedder: Embedder, grace_s: float) -> None:
    """Cancel queued batches, give running ones ``grace_s`` to finish (their workers
    persist what they receive), fail the rest at once, and wait for all of them."""
    running = [p[3] for p in in_flight if not p[3].cancel()]
    futures = [f for f in running if isinstance(f, Future)]
    if futures and grace_s > 0:
        wait(futures, timeout=grace_s)
    cancel = getattr(embedder, "cancel_inflight", None)
    if callable(cancel) and any(not f.done() for f in futures):
        cancel()
    for future in running:
        with contextlib.suppress(Exception):
            future.result()
    resume = getattr(embedder, "resume", None)
    if callable(resume):
        resume()
