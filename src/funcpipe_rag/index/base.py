"""The index seam: what ingest, search, verify and plan need from a vector store.

The orchestrators know only :class:`VectorIndex` and the named records below; SQLite
(:mod:`.sqlite`) and PostgreSQL (:mod:`.postgres`) are the backends behind
:func:`funcpipe_rag.index.open_index`. A store owns its storage *and* its ranking:
:meth:`VectorIndex.search` ranks in the store's own engine (numpy over SQLite blobs;
pgvector in the database). A store also says how runs writing it share the work
(:meth:`VectorIndex.share`): alone behind a lock (SQLite), or through claims on files and
contents that many runs take from one database (PostgreSQL).

Identity the index relies on (see :mod:`funcpipe_rag.chunking.chunks`): a vector is
stored once per ``content_hash``; a chunk row is one position in one document; a
document is ``complete`` only once every chunk of the version whose bytes hashed to
``file_hash`` is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..result import ErrInfo, Result
from ..streams import Stage
from ..walk import SourceFile

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class IndexSpace:
    """The vector space an index holds; two runs may share an index only if equal.

    ``dim`` is 0 until known (an HTTP model's dimension arrives with its first answer).
    """

    embedder: str
    model: str
    dim: int
    chunker: str

    def as_meta(self) -> dict[str, str]:
        return {
            "embedder": self.embedder,
            "model": self.model,
            "dim": str(self.dim),
            "chunker": self.chunker,
        }

    @property
    def key(self) -> str:
        return f"{self.embedder}:{self.model}:{self.dim or '?'}"

    def conflict(self, other: IndexSpace) -> str | None:
        """Why ``other`` cannot share an index built for this space, or None."""
        same_dim = not self.dim or not other.dim or self.dim == other.dim
        if (self.embedder, self.model, self.chunker) == (
            other.embedder,
            other.model,
            other.chunker,
        ) and same_dim:
            return None
        return (
            f"it holds {self.key} chunked {self.chunker}; "
            f"this run uses {other.key} chunked {other.chunker}"
        )


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document row: where the file was and which version of it is stored."""

    doc_id: str
    path: str
    abs_path: str
    file_hash: str | None  # set once the version is stored completely
    complete: bool
    reader: str = ""  # name/version of the reader that extracted it
    note: str = ""  # why it is not complete, when known ("embed": chunks failed to embed)

    def unchanged(self, file_hash: str, reader: str) -> bool:
        """Stored completely from these very bytes, by this version of its reader."""
        return self.complete and self.file_hash == file_hash and self.reader == reader


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A chunk to write, with what its document row needs."""

    chunk_id: str
    doc_id: str
    path: str
    abs_path: str
    seq: int
    start: int
    end: int
    text: str
    content_hash: str  # its vector is in the index already (store_vectors)
    doc_size: int
    doc_mtime_ns: int
    doc_hash: str
    last_of_doc: bool
    doc_failed: bool
    reader: str = ""
    encoding: str = ""
    title: str = ""
    section: str = ""
    page: int | None = None


@dataclass(frozen=True, slots=True)
class IndexCounts:
    documents: int
    chunks: int
    vectors: int


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``verify`` found wrong: a stable code and a sentence about it."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: where the chunk is and how close it is to the query."""

    score: float
    chunk_id: str
    path: str
    start: int
    end: int
    text: str
    title: str = ""
    section: str = ""
    page: int | None = None
    reader: str = ""
    encoding: str = ""

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 6),
            "chunk_id": self.chunk_id,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "section": self.section,
            "page": self.page,
            "reader": self.reader,
            "encoding": self.encoding,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class HashClaim:
    """The answer to "may this run pay for these contents?" (:meth:`ContentClaims.claim`).

    ``mine``: this run holds the claim and pays. ``stored``: someone already paid; here is
    the vector. Every other hash asked about is being paid for by another run right now:
    wait for it and ask again.
    """

    mine: frozenset[str]
    stored: Mapping[str, bytes] = field(default_factory=dict)


class ContentClaims(Protocol):
    """Exactly-once payment across runs filling one index together: before paying for a
    content hash a run claims it; the holder pays, stores and releases; the others wait
    and take the stored vector. A claim of a run that died lapses (its lease)."""

    def claim(self, content_hashes: Sequence[str]) -> HashClaim:
        """Claim what no live run holds; re-check the store for what is paid already."""
        ...

    def release(self, content_hashes: Sequence[str]) -> None:
        """Give up claims that were not paid off (failed: another run may try again).
        Storing a vector (:meth:`VectorIndex.store_vectors`) lets go of its claim."""
        ...


FileStream = Stage[Result[SourceFile, ErrInfo]]


class FileShare(Protocol):
    """Which files this run works on, when several runs fill one index from one corpus.

    The run processes the streams :meth:`rounds` yields, one after the other: the first
    walks the corpus (claiming files as it goes, where runs share the work); later ones
    take files that other runs left unfinished (their lease lapsed). Every file a round
    yields ends in the pipeline; :attr:`seen` collects those that still exist as
    documents (ingested, unchanged or failed: kept at the prune). After a round that
    went through completely and whose chunks are stored, the run calls
    :meth:`round_done`. A single-writer index (SQLite) has one round: the walk itself.
    """

    seen: set[str]

    @property
    def content_claims(self) -> ContentClaims | None:
        """Claims that make a content paid once across runs; None for a single writer."""
        ...

    def rounds(self, walk: Callable[[], FileStream]) -> Generator[FileStream, None, None]: ...

    def round_done(self) -> None: ...

    def finish(self, prune: Callable[[set[str]], int]) -> int:
        """Once the whole corpus is done, run ``prune(ids to keep)`` exactly once (in
        the run that completes the corpus) and return what it returned; else 0."""
        ...

    def close(self) -> None:
        """Hand back what this run claimed and did not finish; safe to call twice."""
        ...


class VectorIndex(Protocol):
    """A store of documents, chunks and vectors of one vector space.

    Writes: :meth:`store_vectors` persists paid-for vectors at once (thread-safe, its
    own transaction); :meth:`write` stores a batch of chunk rows in one transaction and
    raises :class:`~funcpipe_rag.errors.IndexWriteError` when it cannot — then nothing
    of the batch is stored. A damaged store raises
    :class:`~funcpipe_rag.errors.IndexDamagedError`, never a driver exception.
    """

    space: IndexSpace

    @property
    def remembered(self) -> Mapping[str, Any]:
        """What the index remembers of the settings it was built with (the URL without
        credentials); a later run uses them as its defaults."""
        ...

    @property
    def name(self) -> str:
        """What to call the index in messages (a path, or a URL without credentials)."""
        ...

    def stored_doc(self, doc_id: str) -> StoredDocument | None: ...

    def documents(self) -> Iterator[StoredDocument]: ...

    def fetch_vectors(self, content_hashes: Sequence[str]) -> dict[str, bytes]: ...

    def known_hashes(self, content_hashes: Sequence[str]) -> set[str]: ...

    def store_vectors(self, vectors: Mapping[str, bytes]) -> None: ...

    def write(self, batch: Sequence[PendingChunk]) -> None: ...

    def prune(self, roots: Sequence[str], keep: set[str], *, everything: bool = False) -> int:
        """Forget documents under ``roots`` (absolute display paths) not in ``keep``."""
        ...

    def counts(self) -> IndexCounts: ...

    def check(self) -> list[Finding]:
        """Everything wrong inside the store itself; [] when consistent."""
        ...

    def search(self, query: Vector, k: int) -> list[Hit]:
        """The ``k`` chunks closest to the unit vector ``query`` by cosine, best first."""
        ...

    def remember(self, settings: Mapping[str, Any]) -> None:
        """Record the settings of the run writing the index (see ``remembered``)."""
        ...

    def finish(self) -> None:
        """The run walked everything: make a rebuild (``--reembed``) the live index."""
        ...

    def share(self) -> FileShare:
        """How this run shares the corpus with other runs writing this index."""
        ...

    def close(self) -> None: ...


__all__ = [
    "ContentClaims",
    "FileShare",
    "FileStream",
    "Finding",
    "HashClaim",
    "Hit",
    "IndexCounts",
    "IndexSpace",
    "PendingChunk",
    "StoredDocument",
    "Vector",
    "VectorIndex",
]
