"""What every embedder offers, and the batching stage that drives one.

An embedder turns a batch of texts into one ``Result`` per text (so a single bad input
can fail alone) and owns whatever it holds (an HTTP client, a pool): ``close()`` is
idempotent, and use after close raises ``ResourceClosedError``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
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


def vector_from_bytes(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype="<f4")


def embed_chunks(
    chunks: Iterable[Result[ChunkWithoutEmbedding, ErrInfo]],
    embedder: Embedder,
    *,
    batch_size: int,
    lookup: VectorLookup | None = None,
) -> Stage[Result[Chunk, ErrInfo]]:
    """Embed chunks in batches, reusing vectors the index already holds.

    Results leave in input order; errors pass through in place. A chunk whose content
    hash ``lookup`` finds is not sent to the embedder (``Chunk.reused``), and equal
    contents inside one batch are sent once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def embed_one_batch(
        batch: tuple[Result[ChunkWithoutEmbedding, ErrInfo], ...],
    ) -> list[Result[Chunk, ErrInfo]]:
        oks = [r.value for r in batch if isinstance(r, Ok)]
        known = lookup([c.content_hash for c in oks]) if lookup is not None and oks else {}
        todo: dict[str, str] = {}
        for c in oks:
            if c.content_hash not in known:
                todo.setdefault(c.content_hash, c.text)
        fresh: dict[str, Result[Vector, ErrInfo]] = {}
        if todo:
            outcomes = embedder.embed_batch(list(todo.values()))
            fresh = dict(zip(todo.keys(), outcomes, strict=True))
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
        try:
            for batch in batches:
                yield from embed_one_batch(batch)
        finally:
            batches.close()
            close_quietly(chunks)

    return Stage(gen(), (chunks,))
