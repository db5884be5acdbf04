"""How to open an index, beyond its target and vector space: one record for every backend.

Each backend reads what applies to it and ignores the rest: SQLite the lock timeout;
PostgreSQL the collection, the HNSW switch and the work-sharing lease and claim size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexOptions:
    """Backend options, resolved from settings (``RunSettings.index_options()``).

    >>> IndexOptions()
    >>> IndexOptions(lock_timeout_s=0.5)
    >>> IndexOptions(collection="docs_minilm", hnsw=True, lease_s=10.0)
    """

    lock_timeout_s: float = 10.0
    collection: str = "funcpipe"
    hnsw: bool = False
    lease_s: float = 30.0
    claim_files: int = 8


__all__ = ["IndexOptions"]
