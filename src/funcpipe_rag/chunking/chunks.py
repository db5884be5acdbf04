"""Chunk records and the chunking stage over validated documents.

Identity (deterministic across runs and machines, never from timestamps):

* ``content_hash`` = hash of the whitespace-normalised chunk text, the chunker
  fingerprint and the vector space (embedder, model, dimension). Two chunks with the
  same content hash get the same vector, so a stored vector is reused, never re-bought.
* ``chunk_id`` = hash of the document id, the chunk's offsets and its content hash: one
  row per position in one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..sources import Document, iter_text_pieces, open_source
from ..streams import Stage, close_quietly
from .splitter import ChunkerSettings, iter_spans


@dataclass(frozen=True, slots=True)
class ChunkWithoutEmbedding:
    """A span of one document, with offsets into its decoded text.

    ``is_last`` marks the document's final chunk, so a sink knows when a version of
    the file is complete; ``doc`` is the validated document it came from.
    """

    chunk_id: str
    doc_id: str
    path: str
    seq: int
    start: int
    end: int
    text: str
    content_hash: str
    doc: Document
    is_last: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk and its vector; ``reused`` when the vector came from the index."""

    chunk: ChunkWithoutEmbedding
    embedding: Any  # numpy float32 vector; Any keeps numpy out of this module's import
    reused: bool = False


def content_hash(text: str, chunker_fingerprint: str, space: str) -> str:
    normalised = " ".join(text.split())
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{chunker_fingerprint}\0{space}\0".encode())
    h.update(normalised.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def chunk_id(doc_id: str, start: int, end: int, c_hash: str) -> str:
    return hashlib.blake2b(f"{doc_id}:{start}:{end}:{c_hash}".encode(), digest_size=12).hexdigest()


def iter_chunks(
    docs: Iterable[Result[Document, ErrInfo]],
    settings: ChunkerSettings,
    *,
    space: str,
    ledger: ResourceLedger,
) -> Stage[Result[ChunkWithoutEmbedding, ErrInfo]]:
    """Chunk each document, streaming its text; errors pass through unchanged.

    The file stays open (and counted in the ledger) only while its chunks are being
    pulled; closing the stage mid-document closes the file.
    """
    fingerprint = settings.fingerprint()

    def chunks_of(doc: Document) -> Generator[Result[ChunkWithoutEmbedding, ErrInfo], None, None]:
        src = doc.source
        try:
            opened = open_source(src, ledger)
        except OSError as exc:
            yield Err(
                make_errinfo("READ/OPEN", "cannot reopen", stage="chunk", path=src.path, exc=exc)
            )
            return

        def make(seq: int, span: tuple[int, int, str], is_last: bool) -> ChunkWithoutEmbedding:
            start, end, text = span
            c_hash = content_hash(text, fingerprint, space)
            cid = chunk_id(src.doc_id, start, end, c_hash)
            return ChunkWithoutEmbedding(
                cid, src.doc_id, src.path, seq, start, end, text, c_hash, doc, is_last
            )

        try:
            # One span of lookahead tells which chunk is the document's last.
            spans = iter_spans(iter_text_pieces(opened), settings)
            previous = next(spans, None)
            seq = 0
            while previous is not None:
                current = next(spans, None)
                yield Ok(make(seq, previous, current is None))
                previous, seq = current, seq + 1
        except (OSError, UnicodeDecodeError) as exc:
            # The file changed between validation and chunking.
            yield Err(
                make_errinfo(
                    "READ/CHANGED", "file changed while read", stage="chunk", path=src.path, exc=exc
                )
            )
        finally:
            opened.close()

    def gen() -> Generator[Result[ChunkWithoutEmbedding, ErrInfo], None, None]:
        try:
            for r in docs:
                if isinstance(r, Ok):
                    inner = chunks_of(r.value)
                    try:
                        yield from inner
                    finally:
                        inner.close()
                else:
                    yield r
        finally:
            close_quietly(docs)

    return Stage(gen(), (docs,))
