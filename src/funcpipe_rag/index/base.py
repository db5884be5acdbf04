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

import math
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from ..result import ErrInfo, Result
from ..streams import Stage
from ..walk import SourceFile

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]


def __getattr__(name: str) -> Any:
    # numpy only when vectors are touched: plan, verify and config never import it.
    if name == "Vector":
        import numpy as np
        import numpy.typing as npt

        return npt.NDArray[np.float32]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    # the trusted stat signature of the stored version's bytes (funcpipe_rag.signature);
    # None: untrusted (racy, or stored before signatures were kept) -> read to compare
    signature: str | None = None

    def unchanged(self, file_hash: str, reader: str) -> bool:
        """Stored completely from these very bytes, by this version of its reader."""
        return self.complete and self.file_hash == file_hash and self.reader == reader

    def unchanged_unread(self, signature: str | None, readers: frozenset[str]) -> bool:
        """Stored completely, and the file's stat signature now (under this run's reader
        line-up) is the trusted one stored with it, its reader one of ``readers`` (their
        ids): the file may be taken as unchanged without reading it."""
        return (
            self.complete
            and self.signature is not None
            and self.signature == signature
            and self.reader in readers
        )


@dataclass(frozen=True, slots=True)
class SignatureRefresh:
    """A file read again and found unchanged whose stored signature is missing or stale:
    store ``signature`` if the row still holds this complete version (``file_hash``,
    ``reader``), so the next run need not read it."""

    doc_id: str
    file_hash: str
    reader: str
    signature: str


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
    doc_signature: str | None = None  # stored when the document completes


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


SEARCH_MODES = ("hybrid", "vector", "lexical")
"""How a query is ranked: by both rankings fused (the default), by cosine, or by BM25."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One search: what to look for, how to rank it, and which hits to keep.

    ``vector`` is the query in the index's own vector space (unit length); the vector
    and hybrid modes need it, lexical mode does not. ``paths`` are globs: a hit must
    come from a file whose path matches one (see :func:`.ranking.path_matcher`).
    Hits scoring below ``min_score`` (on the scale of ``mode``, see
    :class:`Contribution`) are dropped.

    >>> Query(text="tomato soup", vector=v)                       # hybrid, top 5
    >>> Query(text="wal checkpoint", mode="lexical", k=10)
    >>> Query(text="retries", vector=v, mode="vector", paths=("ops/*",), min_score=0.2)
    """

    text: str
    vector: Vector | None = None
    mode: str = "hybrid"
    k: int = 5
    paths: tuple[str, ...] = ()
    min_score: float = 0.0
    fusion: str = "combsum"  # how hybrid fuses: "combsum" or "rrf" (see .ranking.fuse)

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise ConfigError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {self.mode!r}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if not self.text.strip():
            raise ConfigError("the query is empty")
        if self.mode != "lexical" and self.vector is None:
            raise ConfigError(f"a {self.mode} search needs the query's vector")
        if self.fusion not in ("combsum", "rrf"):
            raise ConfigError(f"fusion must be combsum or rrf, got {self.fusion!r}")
        if not math.isfinite(self.min_score):
            raise ConfigError(f"min_score must be a finite number, got {self.min_score!r}")

    @property
    def ranks_vectors(self) -> bool:
        return self.mode in ("hybrid", "vector")

    @property
    def ranks_text(self) -> bool:
        return self.mode in ("hybrid", "lexical")


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one ranking said about a hit.

    ``score`` is the ranking's own: a cosine in [-1, 1] for ``vector``, a BM25 score
    (higher is better, above 0, unbounded; plus the document's title and path evidence,
    see :func:`.ranking.lexical`) for ``lexical``. ``rank`` is the hit's place
    in that ranking (1 = best). Both are None when the ranking did not nominate the hit
    among its best candidates (``CANDIDATES``, or 4 k). ``share`` is what it added to a
    hybrid score (0 outside hybrid).
    """

    mode: str
    rank: int | None
    score: float | None
    share: float = 0.0

    def to_jsonable(self) -> dict[str, Any]:
        score = None if self.score is None else round(self.score, 6)
        return {"rank": self.rank, "score": score, "share": round(self.share, 6)}


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a distinct chunk content, where it is, and why it ranked.

    Identical content stored in several places is one hit: ``path`` / ``start`` /
    ``end`` / ``chunk_id`` name its first place (by path, then offset) and ``paths``
    lists every file that holds it, ``path`` first. Offsets are character offsets into
    the file's extracted text. ``chunk_ids`` names every place (``chunk_id`` first).
    """

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
    mode: str = "vector"
    content_hash: str = ""
    paths: tuple[str, ...] = ()
    chunk_ids: tuple[str, ...] = ()
    contributions: tuple[Contribution, ...] = ()

    def to_jsonable(self) -> dict[str, Any]:
        """The ``--json`` record of a hit (schema ``funcpipe.hit/1``)."""
        return {
            "schema": "funcpipe.hit/1",
            "score": round(self.score, 6),
            "mode": self.mode,
            "contributions": {c.mode: c.to_jsonable() for c in self.contributions},
            "chunk_id": self.chunk_id,
            "content_hash": self.content_hash,
            "path": self.path,
            "paths": list(self.paths or (self.path,)),
            "chunk_ids": list(self.chunk_ids or (self.chunk_id,)),
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
    own transaction); :meth:`write` stores a batch of chunk rows (and the free vectors
    it made) in one transaction and raises :class:`~funcpipe_rag.errors.IndexWriteError`
    when it cannot — then nothing of the batch is stored. A damaged store raises
    :class:`~funcpipe_rag.errors.IndexDamagedError`, never a driver exception.
    """

    space: IndexSpace
    # Whether :meth:`write` may run on a thread of its own while the run's thread reads
    # (``stored_doc``, ``fetch_vectors``): the run then writes chunk rows in the
    # background (:mod:`.writer`). False: the run writes on its own thread.
    writes_beside_reads: bool

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

    def write(
        self, batch: Sequence[PendingChunk], vectors: Mapping[str, bytes] | None = None
    ) -> None:
        """Store ``batch`` in one transaction, or nothing of it. ``vectors``: those of
        its contents not stored yet (a free embedder's, remade at no cost if lost),
        stored before its rows: in the same transaction where the store can."""
        ...

    def refresh_signatures(self, refreshes: Sequence[SignatureRefresh]) -> None:
        """Store the signatures of files found unchanged by reading them (own
        transaction); a row that moved on since (another version) is left alone."""
        ...

    def prune(self, roots: Sequence[str], keep: set[str], *, everything: bool = False) -> int:
        """Forget documents under ``roots`` (absolute display paths) not in ``keep``."""
        ...

    def counts(self) -> IndexCounts: ...

    def check(self) -> list[Finding]:
        """Everything wrong inside the store itself; [] when consistent."""
        ...

    def search(self, query: Query) -> list[Hit]:
        """The best ``query.k`` distinct contents for ``query``, best first.

        The store ranks in its own engine, in one snapshot: its vectors by exact cosine
        (the best ``max(100, 4 k)`` distinct contents with a positive cosine), its text
        by BM25 over :class:`.ranking.TextQuery` (any term, or adjacent terms as a
        phrase; the best rows, as many again, collapsed by content; each row helped by
        its document's title and path, :func:`.ranking.lexical`), restricted first to files matching
        ``query.paths`` (:func:`.ranking.path_matcher`). ``hybrid`` fuses the two with
        :func:`.ranking.fuse`, so every backend scores alike. Hits scoring below
        ``query.min_score`` are dropped; text is read for the hits kept. Only chunks
        stored now are returned; identical contents are one :class:`Hit` naming every
        place that holds them (within ``query.paths``).
        """
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
    "SEARCH_MODES",
    "ContentClaims",
    "Contribution",
    "FileShare",
    "FileStream",
    "Finding",
    "HashClaim",
    "Hit",
    "IndexCounts",
    "IndexSpace",
    "PendingChunk",
    "Query",
    "SignatureRefresh",
    "StoredDocument",
    "Vector",
    "VectorIndex",
]
