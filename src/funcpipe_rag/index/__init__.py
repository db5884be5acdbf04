"""Index backends behind one seam: :func:`open_index` picks the backend by the target.

``postgresql://...`` (or ``postgres://...``) is a PostgreSQL database with pgvector
(:mod:`.postgres`, needs the ``postgres`` extra); any other target is a path to an SQLite
file (:mod:`.sqlite`). The orchestrators use only :class:`~.base.VectorIndex`, the records
of :mod:`.base` and the functions here, which dispatch through :data:`BACKENDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..embedders.urls import redact_url
from ..errors import ConfigError
from ..policies.ledger import ResourceLedger
from .base import (
    SEARCH_MODES,
    ContentClaims,
    Contribution,
    FileShare,
    Finding,
    Hit,
    IndexCounts,
    IndexSpace,
    PendingChunk,
    Query,
    SignatureRefresh,
    StoredDocument,
    VectorIndex,
)
from .options import IndexOptions
from .sqlite import BACKEND as sqlite_backend

_PG_SCHEMES = ("postgresql://", "postgres://")


class Backend(Protocol):
    """What a backend module offers the dispatch below."""

    def open(
        self,
        target: str,
        space: IndexSpace | None,
        ledger: ResourceLedger,
        *,
        readonly: bool,
        rebuild: bool,
        options: IndexOptions,
    ) -> VectorIndex: ...

    def remembered(self, target: str, options: IndexOptions) -> dict[str, Any] | None: ...

    def leftover_rebuild(self, target: str, options: IndexOptions) -> str | None: ...

    def exists(self, target: str, options: IndexOptions) -> bool: ...

    def discard(self, target: str, options: IndexOptions) -> None: ...


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(_PG_SCHEMES)


def _backend(target: str | Path) -> Backend:
    if is_postgres(target):
        try:
            from .postgres import BACKEND as postgres_backend
        except ImportError as exc:  # psycopg or pgvector missing
            raise ConfigError(
                "a postgresql:// index needs the postgres extra: "
                f"pip install 'funcpipe[postgres]' ({exc.name or exc} is missing)"
            ) from None
        return postgres_backend
    return sqlite_backend


def index_name(target: str | Path) -> str:
    """What to call the index in messages and reports: a URL without its password."""
    return redact_url(str(target)) if is_postgres(target) else str(Path(target))


def open_index(
    target: str | Path,
    space: IndexSpace | None,
    ledger: ResourceLedger,
    *,
    readonly: bool = False,
    rebuild: bool = False,
    options: IndexOptions | None = None,
) -> VectorIndex:
    """Open (creating if needed) the index at ``target`` for ``space``.

    ``space=None`` takes the space the index holds (an existing index only).
    ``readonly`` never writes (and takes no lock). ``rebuild`` builds a new index beside
    the live one (resuming an interrupted rebuild); :meth:`VectorIndex.finish` swaps it
    in. The caller owns the index and must close it.
    """
    return _backend(target).open(
        str(target),
        space,
        ledger,
        readonly=readonly,
        rebuild=rebuild,
        options=options or IndexOptions(),
    )


def index_exists(target: str | Path, options: IndexOptions | None = None) -> bool:
    """Whether anything was ever ingested at ``target`` (a file, a collection)."""
    return _backend(target).exists(str(target), options or IndexOptions())


def discard_index(target: str | Path, options: IndexOptions | None = None) -> None:
    """Delete the index at ``target`` and everything it holds (scratch indexes only)."""
    _backend(target).discard(str(target), options or IndexOptions())


def read_remembered(
    target: str | Path, options: IndexOptions | None = None
) -> dict[str, Any] | None:
    """The settings the index at ``target`` remembers, or None when there is no index."""
    return _backend(target).remembered(str(target), options or IndexOptions())


def leftover_rebuild(target: str | Path, options: IndexOptions | None = None) -> str | None:
    """Where an unfinished ``--reembed`` rebuild of ``target`` lies, if one does."""
    return _backend(target).leftover_rebuild(str(target), options or IndexOptions())


__all__ = [
    "SEARCH_MODES",
    "ContentClaims",
    "Contribution",
    "FileShare",
    "Finding",
    "Hit",
    "IndexCounts",
    "IndexOptions",
    "IndexSpace",
    "PendingChunk",
    "Query",
    "SignatureRefresh",
    "StoredDocument",
    "VectorIndex",
    "discard_index",
    "index_exists",
    "index_name",
    "is_postgres",
    "leftover_rebuild",
    "open_index",
    "read_remembered",
]
