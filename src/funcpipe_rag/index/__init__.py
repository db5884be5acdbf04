"""Index backends behind one seam: :func:`open_index` picks the backend by the target.

``"x.db"`` (any path) is an SQLite file (:mod:`.sqlite`). The orchestrators use only
:class:`~.base.VectorIndex` and the records of :mod:`.base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..policies.ledger import ResourceLedger
from .base import (
    SEARCH_MODES,
    Contribution,
    Finding,
    Hit,
    IndexCounts,
    IndexSpace,
    PendingChunk,
    Query,
    StoredDocument,
    VectorIndex,
)
from .sqlite import SqliteIndex, rebuild_path, remembered_settings


def open_index(
    target: str | Path,
    space: IndexSpace | None,
    ledger: ResourceLedger,
    *,
    readonly: bool = False,
    rebuild: bool = False,
    lock_timeout_s: float = 10.0,
) -> VectorIndex:
    """Open (creating if needed) the index at ``target`` for ``space``.

    ``space=None`` takes the space the index holds (an existing index only).
    ``readonly`` takes no lock and never writes. ``rebuild`` builds a new index beside
    the live one (resuming an interrupted rebuild); :meth:`VectorIndex.finish` swaps it
    in. The caller owns the index and must close it.
    """
    return SqliteIndex(
        Path(target),
        space,
        ledger,
        readonly=readonly,
        rebuild=rebuild,
        lock_timeout_s=lock_timeout_s,
    )


def read_remembered(target: str | Path) -> dict[str, Any] | None:
    """The settings the index at ``target`` remembers, or None when there is no index."""
    path = Path(target)
    return remembered_settings(path) if path.exists() else None


def leftover_rebuild(target: str | Path) -> Path | None:
    """The unfinished ``--reembed`` rebuild beside ``target``, if one is there."""
    path = rebuild_path(Path(target))
    return path if path.exists() else None


__all__ = [
    "SEARCH_MODES",
    "Contribution",
    "Finding",
    "Hit",
    "IndexCounts",
    "IndexSpace",
    "PendingChunk",
    "Query",
    "StoredDocument",
    "VectorIndex",
    "leftover_rebuild",
    "open_index",
    "read_remembered",
]
