"""A content hash is paid for at most once per run, whatever the timing.

Identical chunks (licences, boilerplate) meet inside one batch and across batches in
flight together; only the first occurrence may be sent, and every later one takes its
vector (or its failure).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from funcpipe_rag.chunking.chunks import ChunkWithoutEmbedding
from funcpipe_rag.embedders.base import Vector, embed_chunks
from funcpipe_rag.readers.base import Document
from funcpipe_rag.result import Err, ErrInfo, Ok, Result, make_errinfo
from funcpipe_rag.walk import SourceFile

_SRC = SourceFile("a.txt", "a.txt", "doc", 1, 0, "/a.txt")
_DOC = Document(_SRC, "hash", "text/1")


def chunk(i: int, content: str) -> Result[ChunkWithoutEmbedding, ErrInfo]:
    return Ok(
        ChunkWithoutEmbedding(
            f"c{i}", "doc", "a.txt", i, i, i + 1, content, f"h-{content}", _DOC, False
        )
    )


class CountingEmbedder:
    """Counts every text it is sent; answers after a random pause (so batches in flight
    finish in any order); fails the texts in ``poisoned``."""

    name, model, dim = "count", "m", 4
    concurrency = 1

    def __init__(self, seed: int, poisoned: frozenset[str] = frozenset()) -> None:
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._poisoned = poisoned

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        with self._lock:
            self.sent.update(texts)
            pause = self._rng.random() * 0.003
        time.sleep(pause)
        return [
            Err(make_errinfo("EMBED/HTTP_500", "poisoned"))
            if t in self._poisoned
            else Ok(np.full(4, float(len(t)), dtype=np.float32))
            for t in texts
        ]

    def embed_query(self, text: str) -> Vector:
        return np.full(4, float(len(text)), dtype=np.float32)

    def expect_dim(self, dim: int) -> None:
        assert dim == self.dim

    def cancel_inflight(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self) -> None:
        pass


class Store:
    """An index stand-in: what ``persist`` stored, ``lookup`` finds."""

    def __init__(self) -> None:
        self.vectors: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def fetch(self, hashes: Sequence[str]) -> dict[str, bytes]:
        with self._lock:
            return {h: self.vectors[h] for h in hashes if h in self.vectors}

    def persist(self, vectors: dict[str, bytes]) -> None:
        with self._lock:
            self.vectors.update(vectors)


contents = st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    texts=contents,
    batch_size=st.integers(1, 9),
    window=st.integers(1, 6),
    threaded=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_every_content_is_sent_once_and_every_chunk_gets_its_vector(
    texts: list[str], batch_size: int, window: int, threaded: bool, seed: int
) -> None:
    embedder = CountingEmbedder(seed)
    store = Store()
    pool = ThreadPoolExecutor(max_workers=window) if threaded else None
    try:
        stage = embed_chunks(
            [chunk(i, t) for i, t in enumerate(texts)],
            embedder,
            batch_size=batch_size,
            lookup=store.fetch,
            persist=store.persist,
            executor=pool,
            window=window if threaded else 1,
        )
        out = list(stage)
        stage.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    assert embedder.sent == Counter(set(texts))  # each distinct content once, no more
    assert [r.value.chunk.text for r in out if isinstance(r, Ok)] == texts  # order kept
    for r in out:
        assert isinstance(r, Ok)
        assert float(r.value.embedding[0]) == len(r.value.chunk.text)
    fresh = [r.value.chunk.text for r in out if isinstance(r, Ok) and not r.value.reused]
    assert sorted(fresh) == sorted(set(texts))  # the first occurrence paid, the rest reused


@settings(max_examples=40, deadline=None)
@given(texts=contents, batch_size=st.integers(1, 9), window=st.integers(1, 6))
def test_without_a_store_a_content_in_flight_is_still_sent_once(
    texts: list[str], batch_size: int, window: int
) -> None:
    """No index to remember: duplicates in one batch or in the window still go once."""
    embedder = CountingEmbedder(seed=1)
    with ThreadPoolExecutor(max_workers=window) as pool:
        stage = embed_chunks(
            [chunk(i, t) for i, t in enumerate(texts)],
            embedder,
            batch_size=batch_size,
            executor=pool,
            window=window,
        )
        out = list(stage)
        stage.close()
    span = batch_size * window  # chunks that can be in flight together
    for t, n in embedder.sent.items():
        positions = [i for i, x in enumerate(texts) if x == t]
        # Sent again only after a gap longer than the window could hold.
        assert n <= 1 + (positions[-1] - positions[0]) // span
    assert all(isinstance(r, Ok) for r in out)


def test_a_failed_first_occurrence_fails_its_duplicates_without_paying_again() -> None:
    embedder = CountingEmbedder(seed=2, poisoned=frozenset({"b"}))
    store = Store()
    with ThreadPoolExecutor(max_workers=3) as pool:
        stage = embed_chunks(
            [chunk(i, t) for i, t in enumerate("abababab")],
            embedder,
            batch_size=2,
            lookup=store.fetch,
            persist=store.persist,
            executor=pool,
            window=3,
        )
        out = list(stage)
        stage.close()
    assert embedder.sent["a"] == 1
    failed = [r.error for r in out if isinstance(r, Err)]
    assert [e.code for e in failed] == ["EMBED/HTTP_500"] * 4
    # The failure was not stored, so only batches past the window ask again.
    assert embedder.sent["b"] <= 2
