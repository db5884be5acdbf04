"""Vector blocks kept in the process for a searcher that stays open (read-only indexes).

A vector scan reads every block. Through the memory map that costs about 40 ms of
copying per query on a 150,000-chunk 384-d index, and every page it touches stays
mapped, so a process that runs many queries ends up with most of the file in its RSS
(2.3x the vectors' bytes measured, ``python -m bench search``). A searcher that runs a
second query is taken to be long-lived: its blocks are then read once into memory
(the same bytes the scan would copy anyway, about 1x the vectors' bytes), the map is
dropped, and later queries only multiply. Pages read from then on go through SQLite's
bounded page cache, so RSS stays flat.

Staleness: the copy is tagged with ``PRAGMA data_version`` read as the first statement
of the search's read transaction. That statement opens the transaction's snapshot, and
SQLite changes the value whenever another connection committed since this connection's
previous snapshot; a read-only connection never changes the file itself. Same value,
same file contents: the copy is used. Any other value drops it, and the scan reads the
file again (through the map, as a single query does); the copy is made again only once
the index has stayed unchanged from one search to the next, so a searcher beside a
running ingest does not re-read everything on every query.

A first search (``funcpipe search``: one query per process) reads through the map as
before and keeps nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import sqlite_vectors as vectors

if TYPE_CHECKING:
    from .sqlite_vectors import Block

MAX_BYTES = 1 << 30
"""Blocks larger than this in total are never copied (the map lets the OS drop clean
pages under memory pressure; a private copy it cannot)."""


class BlockCache:
    """The vector blocks of one read-only connection, held across its searches.

    Call :meth:`begin` as the first statement of every search's read transaction, then
    :meth:`blocks` for the scan. Not thread-safe: the index serialises its searches.
    """

    def __init__(self, mmap_bytes: int, max_bytes: int = MAX_BYTES) -> None:
        self._mmap_bytes = mmap_bytes
        self._max_bytes = max_bytes
        # Invariant: _blocks is None or holds the blocks as of data_version _version.
        self._blocks: list[Block] | None = None
        self._version: int | None = None
        self._seen: int | None = None  # data_version of the previous search
        self._now: int | None = None  # data_version of the current search
        self._mapped = True  # the connection opens with its map on

    @property
    def held(self) -> bool:
        """True while a copy of the blocks is held."""
        return self._blocks is not None

    def begin(self, conn: sqlite3.Connection) -> None:
        """Open the search's snapshot and learn whether the held copy still matches it."""
        ((version,),) = conn.execute("PRAGMA data_version").fetchall()
        self._seen, self._now = self._now, int(version)
        if self._blocks is not None and self._version != self._now:
            self._blocks = self._version = None

    def blocks(self, conn: sqlite3.Connection, dim: int) -> Iterable[Block]:
        """The blocks of this search's snapshot: the held copy, a new one, or the file."""
        if self._blocks is not None:
            return self._blocks
        if self._now is None or self._seen != self._now or not self._fits(conn):
            self._map(conn, True)  # a plain scan: the map reads ~4x faster than read()
            return vectors.read_blocks(conn, dim)
        # Drop the map before copying: the copy plus every mapped page would double the
        # peak. Reading through the page cache is slower, but happens once.
        self._map(conn, False)
        self._blocks = _copy(conn, dim)
        self._version = self._now
        return self._blocks

    def _map(self, conn: sqlite3.Connection, on: bool) -> None:
        # Safe inside the read transaction: SQLite remaps only when no page is fetched
        # through the map (between statements), and unmapping releases those pages.
        if on != self._mapped:
            conn.execute(f"PRAGMA mmap_size = {self._mmap_bytes if on else 0}").fetchall()
            self._mapped = on

    def _fits(self, conn: sqlite3.Connection) -> bool:
        ((size,),) = conn.execute(
            "SELECT coalesce(sum(length(vectors)), 0) FROM vector_blocks"
        ).fetchall()
        return int(size) <= self._max_bytes

    def clear(self) -> None:
        """Forget the copy (the connection is closing)."""
        self._blocks = self._version = self._seen = self._now = None


def _copy(conn: sqlite3.Connection, dim: int) -> list[Block]:
    """Every block, as views into two arrays allocated once.

    Not the blocks' own ``bytes``: a few hundred KB each, they come from the heap, which
    keeps freed memory, so RSS would stay up after the copy is dropped (measured: 282 MB
    after close). Arrays this large are mapped by the allocator and given back on free.
    """
    import numpy as np

    ((rows,),) = conn.execute(
        "SELECT coalesce(sum(length(vids)), 0) / 8 FROM vector_blocks"
    ).fetchall()
    all_vids = np.empty(int(rows), dtype=np.int64)
    matrix = np.empty((int(rows), dim), dtype=np.float32)
    blocks: list[Block] = []
    at = 0
    for vids, block in vectors.read_blocks(conn, dim):
        end = at + vids.size
        all_vids[at:end] = vids
        matrix[at:end] = block
        blocks.append((all_vids[at:end], matrix[at:end]))
        at = end
    assert at == all_vids.size  # one snapshot: the sum and the rows agree
    return blocks


__all__ = ["MAX_BYTES", "BlockCache"]
