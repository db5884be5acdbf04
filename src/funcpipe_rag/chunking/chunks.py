"""Chunk records and the chunking stage over extracted documents.

Identity (deterministic across runs and machines, never from timestamps):

* ``content_hash`` = hash of the whitespace-normalised chunk text, the chunker
  fingerprint and the vector space (embedder, model, dimension). Two chunks with the
  same content hash get the same vector, so a stored vector is reused, never re-bought.
* ``chunk_id`` = hash of the document id, the reader (name and version), the chunk's
  offsets and its content hash: one row per position in one reading of one file.

The chunker never opens a file: it consumes the text pieces a reader extracted, and
offsets are character offsets into that extracted text. A chunk carries the section
and page of the piece it starts in. A piece marked ``boundary`` starts a new section: the
text before it and the text from it on are chunked apart, so no chunk straddles two
sections (a reader marks headings this way; plain text has no boundaries).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..readers.base import Document, Extraction, ReadError, TextPiece
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from ..streams import Stage, close_quietly
from .splitter import ChunkerSettings, iter_spans


@dataclass(frozen=True, slots=True)
class ChunkWithoutEmbedding:
    """A span of one document, with offsets into its extracted text.

    ``is_last`` marks the document's final chunk, so a sink knows when a version of
    the file is complete; ``doc`` is the document it came from.
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
    section: str = ""
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk and its vector; ``reused`` when the vector was already paid for (in the
    index, or earlier in this run)."""

    chunk: ChunkWithoutEmbedding
    embedding: Any  # numpy float32 vector; Any keeps numpy out of this module's import
    reused: bool = False


def content_hash(text: str, chunker_fingerprint: str, space: str) -> str:
    normalised = " ".join(text.split())
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{chunker_fingerprint}\0{space}\0".encode())
    h.update(normalised.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def chunk_id(doc_id: str, reader: str, start: int, end: int, c_hash: str) -> str:
    key = f"{doc_id}:{reader}:{start}:{end}:{c_hash}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


class _Structure:
    """The pieces of one document, cut into sections at hard boundaries, and where each
    piece starts in the extracted text, so a chunk can name its section.

    Chunk starts only grow, so marks before the current piece are dropped as it goes.
    """

    def __init__(self, pieces: Iterator[TextPiece]) -> None:
        self._pieces = pieces
        # Invariant: _marks holds (offset, piece) of every piece read whose successor
        # starts after the last position asked about, in text order.
        self._marks: deque[tuple[int, TextPiece]] = deque()
        self.offset = 0  # characters of text handed out so far
        self._pending: TextPiece | None = None  # a boundary piece read ahead
        self.done = False

    def section(self) -> Generator[str, None, None]:
        """The texts of the next section: up to (not including) the next piece that is
        a boundary, unless the section is still empty. Sets ``done`` at the end."""
        first, self._pending = self._pending, None
        started = False
        if first is not None:
            started = True
            yield self._mark(first)
        for piece in self._pieces:
            if piece.boundary and started:
                self._pending = piece
                return
            started = started or bool(piece.text)
            yield self._mark(piece)
        self.done = True

    def _mark(self, piece: TextPiece) -> str:
        self._marks.append((self.offset, piece))
        self.offset += len(piece.text)
        return piece.text

    def at(self, position: int) -> TextPiece | None:
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= position:
            marks.popleft()
        return marks[0][1] if marks else None


def _sectioned_spans(
    structure: _Structure, settings: ChunkerSettings
) -> Generator[tuple[int, int, str], None, None]:
    """The chunks of each section in turn, with offsets into the whole text.

    Each section is cut by :func:`iter_spans` on its own, so no chunk (and no overlap)
    spans a boundary; a text without boundaries is one section, cut exactly as before.
    """
    while not structure.done:
        base = structure.offset
        texts = structure.section()
        try:
            for start, end, text in iter_spans(texts, settings):
                yield base + start, base + end, text
            for _ in texts:  # iter_spans reads to the end; this makes sure of it
                pass
        finally:
            texts.close()


def iter_chunks(
    docs: Iterable[Result[Extraction, ErrInfo]],
    settings: ChunkerSettings,
    *,
    space: str,
) -> Stage[Result[ChunkWithoutEmbedding, ErrInfo]]:
    """Chunk each document's text, streaming it; errors pass through unchanged.

    A streamed file that turns out to have changed since it was hashed ends in one
    ``READ/CHANGED`` in place of its last chunk, so it is never stored as complete. A
    document with no text at all is ``SKIP/NO_TEXT``. Closing the stage mid-document
    closes the document's pieces (and any file they read).
    """
    fingerprint = settings.fingerprint()

    def chunks_of(ex: Extraction) -> Generator[Result[ChunkWithoutEmbedding, ErrInfo], None, None]:
        doc = ex.document
        src = doc.source
        structure = _Structure(ex.pieces)

        def make(seq: int, span: tuple[int, int, str], is_last: bool) -> ChunkWithoutEmbedding:
            start, end, text = span
            c_hash = content_hash(text, fingerprint, space)
            where = structure.at(start)
            return ChunkWithoutEmbedding(
                chunk_id(src.doc_id, doc.reader, start, end, c_hash),
                src.doc_id,
                src.path,
                seq,
                start,
                end,
                text,
                c_hash,
                doc,
                is_last,
                where.section if where is not None else "",
                where.page if where is not None else None,
            )

        spans = _sectioned_spans(structure, settings)
        try:
            # One span of lookahead tells which chunk is the document's last.
            previous = next(spans, None)
            if previous is None:
                yield Err(
                    make_errinfo(
                        "SKIP/NO_TEXT",
                        "no text to index",
                        stage="chunk",
                        path=src.path,
                        doc_id=src.doc_id,
                    )
                )
                return
            seq = 0
            while previous is not None:
                current = next(spans, None)
                yield Ok(make(seq, previous, current is None))
                previous, seq = current, seq + 1
        except ReadError as exc:
            yield Err(
                make_errinfo(
                    exc.code,
                    exc.msg,
                    stage="chunk",
                    path=src.path,
                    exc=exc.__cause__,
                    doc_id=src.doc_id,
                )
            )
        except (OSError, UnicodeDecodeError) as exc:
            # A streamed file changed after it was hashed: never a complete document.
            yield Err(
                make_errinfo(
                    "READ/CHANGED",
                    "file changed while it was read",
                    stage="chunk",
                    path=src.path,
                    exc=exc,
                    doc_id=src.doc_id,
                )
            )
        finally:
            spans.close()
            close_quietly(ex.pieces)

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
