"""What every embedder offers, and the batching stage that drives one.

An embedder turns a batch of texts into one ``Result`` per text (so a single bad input
can fail alone) and owns whatever it holds (an HTTP client, a model session): ``close()``
is idempotent, and use after close raises ``ResourceClosedError``. Which embedders exist
and how each is opened is the registry's business (:mod:`.registry`); the orchestrators
know only this protocol.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from ..chunking.chunks import Chunk, ChunkWithoutEmbedding
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..streams import Stage, batched, close_quietly

if TYPE_CHECKING:
    from ..index.base import ContentClaims

Vector = npt.NDArray[np.float32]


class Embedder(Protocol):
    """One embedding model behind one resource.

    ``name`` / ``model`` / ``dim`` identify the vector space (``dim`` is 0 until known:
    an HTTP model's arrives with its first answer). ``concurrency`` is how many batches
    are worth having in flight at once: above 1 the embedding stage runs that many on
    worker threads, so ``embed_batch`` must then be thread-safe.
    """

    name: str
    model: str
    dim: int

    @property
    def concurrency(self) -> int: ...

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        """One result per text, in input order; a failure is an ``Err``, never raised."""
        ...

    def embed_query(self, text: str) -> Vector:
        """One search query as a unit vector in the same space as the passages;
        raises :class:`~funcpipe_rag.errors.EmbeddingUnavailableError` when it cannot."""
        ...

    def expect_dim(self, dim: int) -> None:
        """The index holds ``dim``-d vectors: fix the dimension now, or raise
        :class:`~funcpipe_rag.errors.ConfigError` if this model's differs."""
        ...

    def cancel_inflight(self) -> None:
        """Make the batches running on other threads fail at once (``Err``s) and start
        no new work until :meth:`resume`; the embedding stage calls it when it is closed
        early. An embedder whose batches cannot be interrupted does nothing."""
        ...

    def resume(self) -> None:
        """Accept work again after :meth:`cancel_inflight`."""
        ...

    def close(self) -> None: ...


VectorLookup = Callable[[Sequence[str]], dict[str, bytes]]
VectorSink = Callable[[dict[str, bytes]], None]


def vector_from_bytes(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype="<f4")


@dataclass(frozen=True, slots=True)
class _Answer:
    """The outcome of each content hash a batch was to pay for, in request order;
    ``borrowed`` ones were paid for by another run and taken from the store."""

    outcomes: list[Result[Vector, ErrInfo]]
    borrowed: frozenset[str] = frozenset()


class _Done:
    """A finished result standing in for a future when there is no executor."""

    __slots__ = ("_value",)

    def __init__(self, value: _Answer) -> None:
        self._value = value

    def result(self) -> _Answer:
        return self._value

    def cancel(self) -> bool:
        return False


@dataclass(slots=True)
class _Pending:
    """One submitted batch: what it holds, what it reuses, what it waits for."""

    batch: tuple[Result[ChunkWithoutEmbedding, ErrInfo], ...]
    known: dict[str, bytes]  # content hash -> vector found by ``lookup``
    keys: list[str]  # content hashes this batch pays for, in request order
    waits: set[str]  # content hashes a batch still in flight pays for
    answered: dict[str, Result[Vector, ErrInfo]]  # ... or a recent batch already got
    future: Future[_Answer] | _Done


class _Paid:
    """The content hashes paid for in this run's in-flight window.

    Invariant: ``owner`` maps each hash a batch in flight pays for to that batch;
    ``answers`` holds the outcomes of the last ``window`` finished batches, enough for
    every batch still in flight that waits on one of them (it was submitted while its
    payer was in flight, so at most ``window - 1`` batches after it). A batch that
    finds its hash already answered copies the answer when it is submitted.
    """

    def __init__(self, window: int) -> None:
        self.owner: dict[str, int] = {}
        self.answers: dict[str, tuple[int, Result[Vector, ErrInfo]]] = {}
        self._finished: deque[tuple[int, list[str]]] = deque()
        self._window = window

    def pending_or_answered(self, content_hash: str) -> bool:
        return content_hash in self.owner or content_hash in self.answers

    def answered(self, seq: int, fresh: Mapping[str, Result[Vector, ErrInfo]]) -> None:
        for key, outcome in fresh.items():
            self.owner.pop(key, None)
            self.answers[key] = (seq, outcome)
        self._finished.append((seq, list(fresh)))
        while len(self._finished) > self._window:
            old_seq, keys = self._finished.popleft()
            for key in keys:
                if self.answers.get(key, (None,))[0] == old_seq:
                    del self.answers[key]


def embed_chunks(
    chunks: Iterable[Result[ChunkWithoutEmbedding, ErrInfo]],
    embedder: Embedder,
    *,
    batch_size: int,
    lookup: VectorLookup | None = None,
    executor: Executor | None = None,
    window: int = 1,
    persist: VectorSink | None = None,
    claims: ContentClaims | None = None,
    grace_s: float = 2.0,
) -> Stage[Result[Chunk, ErrInfo]]:
    """Embed chunks in batches, paying for each content hash at most once.

    Results leave in input order; errors pass through in place. A chunk is sent to the
    embedder only if no one paid for its content yet: not the index (``lookup``), not
    an earlier chunk of its batch, not a batch still in flight. Every later occurrence
    takes the first one's vector (``Chunk.reused``); the first one's failure is its
    failure too. With a ``lookup`` whose store ``persist`` fills, that holds for the
    whole run; without one, within the in-flight window.

    With an ``executor``, up to ``window`` batches are in flight at once (``lookup``
    still runs on the consuming thread, so an SQLite connection is never shared).

    ``persist`` receives the fresh vectors of every batch as soon as it is answered
    (content hash -> float32 bytes), before its chunks move on: paid work is saved
    even if the process dies before those chunks are stored.

    ``claims`` extends "paid once" to other runs filling the same store: a batch claims
    its contents before paying, pays only for those it holds, and waits for the vectors
    of those another run is paying for right now (:class:`~..index.base.ContentClaims`).

    Closed early, the stage cancels queued batches, gives the batches in flight
    ``grace_s`` seconds to finish (their vectors are persisted: they are paid for),
    asks the embedder to fail the rest at once (``cancel_inflight``), waits for them,
    and only then closes its upstream: no request outlives the stage.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    paid = _Paid(window)
    cancel = threading.Event()  # set when the stage closes: stop waiting on other runs

    def submit(seq: int, batch: tuple[Result[ChunkWithoutEmbedding, ErrInfo], ...]) -> _Pending:
        oks = [r.value for r in batch if isinstance(r, Ok)]
        unseen = [c.content_hash for c in oks if not paid.pending_or_answered(c.content_hash)]
        known = lookup(unseen) if lookup is not None and unseen else {}
        todo: dict[str, str] = {}
        waits: set[str] = set()
        answered: dict[str, Result[Vector, ErrInfo]] = {}
        for c in oks:
            h = c.content_hash
            if h in known or h in todo or h in waits or h in answered:
                continue
            if h in paid.owner:
                waits.add(h)
            elif h in paid.answers:
                answered[h] = paid.answers[h][1]
            else:
                todo[h] = c.text
        for h in todo:
            paid.owner[h] = seq
        texts = list(todo.values())
        future: Future[_Answer] | _Done
        if not texts:
            future = _Done(_Answer([]))
        elif executor is None:
            future = _Done(_pay(embedder, texts, list(todo), persist, claims, cancel))
        else:
            future = executor.submit(_pay, embedder, texts, list(todo), persist, claims, cancel)
        return _Pending(batch, known, list(todo), waits, answered, future)

    def finish(seq: int, pending: _Pending) -> list[Result[Chunk, ErrInfo]]:
        answer = pending.future.result()
        fresh = dict(zip(pending.keys, answer.outcomes, strict=True))
        # The first occurrence of a fresh hash is the one that paid (unless another run did).
        first = set(fresh) - answer.borrowed
        out: list[Result[Chunk, ErrInfo]] = []
        for r in pending.batch:
            if not isinstance(r, Ok):
                out.append(r)
                continue
            c = r.value
            h = c.content_hash
            if h in pending.known:
                out.append(Ok(Chunk(c, vector_from_bytes(pending.known[h]), reused=True)))
                continue
            if h in first:
                first.discard(h)
                got, reused = fresh[h], False
            elif h in fresh:
                got, reused = fresh[h], True
            elif h in pending.answered:
                got, reused = pending.answered[h], True
            else:
                got, reused = paid.answers[h][1], True
            if isinstance(got, Ok):
                out.append(Ok(Chunk(c, got.value, reused=reused)))
            else:
                e = got.error
                ctx = {**e.ctx, "doc_id": c.doc_id, "chunk_id": c.chunk_id}
                out.append(Err(make_errinfo(e.code, e.msg, stage="embed", path=c.path, **ctx)))
        paid.answered(seq, fresh)  # after the waits above were served: this may evict
        return out

    def gen() -> Generator[Result[Chunk, ErrInfo], None, None]:
        batches = batched(chunks, batch_size)
        # Invariant: in_flight holds submitted batches in input order, at most `window`.
        in_flight: deque[tuple[int, _Pending]] = deque()
        try:
            for seq, batch in enumerate(batches):
                in_flight.append((seq, submit(seq, batch)))
                while len(in_flight) >= window:
                    yield from finish(*in_flight.popleft())
            while in_flight:
                yield from finish(*in_flight.popleft())
        finally:
            cancel.set()
            if in_flight:
                _abandon([p for _, p in in_flight], embedder, grace_s)
            batches.close()
            close_quietly(chunks)

    return Stage(gen(), (chunks,))


def _pay(
    embedder: Embedder,
    texts: list[str],
    keys: list[str],
    persist: VectorSink | None,
    claims: ContentClaims | None,
    cancel: threading.Event,
    poll_s: float = 0.05,
) -> _Answer:
    """Pay for ``texts`` (content hashes ``keys``); runs on a worker thread when there is
    an executor. The thread that receives an answer persists it before anything else,
    so a signal unwinding the main thread cannot drop paid vectors.

    With ``claims``, only the contents this run holds a claim on are paid for (the
    claims are released once their vectors are stored, or failed); the others are being
    paid for by another run: poll until their vectors are stored or their payer's claim
    lapses and this run takes it over.
    """
    if claims is None:
        outcomes = embedder.embed_batch(texts)
        if persist is not None:
            _persist(dict(zip(keys, outcomes, strict=True)), persist)
        return _Answer(outcomes)
    text_of = dict(zip(keys, texts, strict=True))
    got: dict[str, Result[Vector, ErrInfo]] = {}
    borrowed: set[str] = set()
    waiting = list(keys)
    while waiting:
        claim = claims.claim(waiting)
        for h, blob in claim.stored.items():
            got[h] = Ok(vector_from_bytes(blob))
            borrowed.add(h)
        mine = [h for h in waiting if h in claim.mine]
        if mine:
            stored: set[str] = set()
            try:
                outcomes = embedder.embed_batch([text_of[h] for h in mine])
                fresh = dict(zip(mine, outcomes, strict=True))
                if persist is not None:
                    _persist(fresh, persist)  # the store lets go of the claims it stores
                    stored = {h for h, r in fresh.items() if isinstance(r, Ok)}
                got.update(fresh)
            finally:
                claims.release([h for h in mine if h not in stored])
        waiting = [h for h in waiting if h not in got]
        if waiting and cancel.wait(poll_s):
            stopped = make_errinfo(
                "EMBED/CANCELLED", "the run stopped while another run paid for it", stage="embed"
            )
            got.update(dict.fromkeys(waiting, Err(stopped)))
            break
    return _Answer([got[h] for h in keys], frozenset(borrowed))


def _persist(fresh: Mapping[str, Result[Vector, ErrInfo]], persist: VectorSink) -> None:
    vectors = {k: r.value.astype("<f4").tobytes() for k, r in fresh.items() if isinstance(r, Ok)}
    if vectors:
        persist(vectors)


def _abandon(in_flight: list[_Pending], embedder: Embedder, grace_s: float) -> None:
    """Cancel queued batches, give running ones ``grace_s`` to finish (their workers
    persist what they receive), fail the rest at once, and wait for all of them."""
    running = [p.future for p in in_flight if not p.future.cancel()]
    futures = [f for f in running if isinstance(f, Future)]
    if futures and grace_s > 0:
        wait(futures, timeout=grace_s)
    if any(not f.done() for f in futures):
        embedder.cancel_inflight()
    for future in running:
        with contextlib.suppress(Exception):
            future.result()
    embedder.resume()
