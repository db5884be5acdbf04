"""Vector blocks: the SQLite index's vectors laid out for a fast, lean scan.

A search must score every stored vector. Reading them one row at a time costs
interpreter work per row (about half a second for 150,000 chunks, measured when this
layout was chosen) before any arithmetic, so the vectors of stored chunks are also
kept in blocks: one row of ``vector_blocks`` holds up to a few hundred vectors as one
contiguous, unit-length float32 matrix, and their ``vids`` (the rowids of those vectors
in ``vectors``, distinct within a block). A scan reads a block, scores it with one
matrix product and keeps the best few; the memory it allocates stays flat at any index
size (the file pages it reads are mapped: see the README on RSS). A read-only index
that stays open scans a copy of the blocks held in memory instead
(:mod:`.sqlite_block_cache`).

Invariant (kept in the transaction that changes chunk rows, checked by ``verify``):
block ``b`` holds exactly the distinct contents of the chunk rows whose ``block`` is
``b``. A write puts its new chunk rows in one new block; deleting rows rewrites the
blocks they were in, and a block left with few contents is folded into a new one, so
blocks stay large after many edits. The ``vectors`` table stays the store of paid-for
vectors (reused, never deleted); blocks hold only what chunks use now.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where vectors are touched: an index opened
    import numpy as np  # only to plan or verify a tree never loads it
    import numpy.typing as npt

    Block = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]

SCHEMA = (
    (
        "CREATE TABLE vector_blocks (block INTEGER PRIMARY KEY, vids BLOB NOT NULL, "
        "vectors BLOB NOT NULL)"
    ),
)
COLUMNS = ("block", "vids", "vectors")
MIN_BLOCK = 64  # a rewritten block with fewer contents than this is folded into a new one
PACK = 256  # contents per block when an existing index is packed (the v3 migration)


def next_block(conn: sqlite3.Connection) -> int:
    """A block number no chunk row and no block uses yet."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(block) FROM vector_blocks), 0), "
        "coalesce((SELECT max(block) FROM chunks), 0)) + 1"
    ).fetchone()
    return int(row[0])


def blocks_of(conn: sqlite3.Connection, where: str, args: Sequence[object]) -> set[int]:
    """The blocks of the chunk rows selected by ``where`` (call before deleting them)."""
    sql = f"SELECT DISTINCT block FROM chunks WHERE {where}"
    return {b for (b,) in conn.execute(sql, tuple(args)) if b is not None}


def refresh(conn: sqlite3.Connection, touched: Iterable[int], new_block: int) -> None:
    """Make ``touched`` blocks (and ``new_block``) match their chunk rows again.

    A touched block left with fewer than :data:`MIN_BLOCK` contents gives its rows to
    ``new_block``, so many small edits do not leave many small blocks behind.
    """
    blocks = set(touched) - {new_block}
    for b in sorted(blocks):
        (n,) = conn.execute(
            "SELECT count(DISTINCT content_hash) FROM chunks WHERE block = ?", (b,)
        ).fetchone()
        if 0 < n < MIN_BLOCK:
            conn.execute("UPDATE chunks SET block = ? WHERE block = ?", (new_block, b))
    for b in sorted(blocks | {new_block}):
        _rewrite(conn, b)


def _rewrite(conn: sqlite3.Connection, block: int) -> None:
    import numpy as np

    rows = conn.execute(
        "SELECT rowid, vector FROM vectors WHERE content_hash IN "
        "(SELECT content_hash FROM chunks WHERE block = ?) ORDER BY rowid",
        (block,),
    ).fetchall()
    if not rows:
        conn.execute("DELETE FROM vector_blocks WHERE block = ?", (block,))
        return
    vids = np.fromiter((r[0] for r in rows), dtype="<i8", count=len(rows))
    matrix = unit_rows(b"".join(r[1] for r in rows), len(rows))
    conn.execute(
        "INSERT OR REPLACE INTO vector_blocks(block, vids, vectors) VALUES (?, ?, ?)",
        (block, vids.tobytes(), matrix.tobytes()),
    )


def unit_rows(blob: bytes, n: int) -> npt.NDArray[np.float32]:
    """``n`` packed little-endian float32 vectors as unit-length rows (a zero row stays
    zero: it has no direction and scores 0 against every query)."""
    import numpy as np

    matrix = np.frombuffer(blob, dtype="<f4").reshape(n, -1).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.maximum(norms, 1e-12)
    return matrix


def pack_all(conn: sqlite3.Connection) -> None:
    """Assign every chunk row a block and build all blocks (an index without them)."""
    conn.execute("DELETE FROM vector_blocks")
    conn.execute(f"UPDATE chunks SET block = (id - 1) / {PACK} + 1")
    for (b,) in conn.execute("SELECT DISTINCT block FROM chunks").fetchall():
        _rewrite(conn, b)


@dataclass(frozen=True, slots=True)
class Scored:
    """A content a vector scan nominated: its vector's rowid and its cosine."""

    vid: int
    score: float


def scan(
    blocks: Iterable[Block],
    query: npt.NDArray[np.float32],
    n: int,
    allowed: npt.NDArray[np.int64] | None = None,
) -> list[Scored]:
    """The ``n`` distinct contents closest to the unit vector ``query``, best first
    (ties: the smaller vid first).

    ``blocks`` are (vids, unit matrix) pairs: :func:`read_blocks` of one snapshot, or a
    copy of them held in memory (:mod:`.sqlite_block_cache`); the answer depends only
    on their contents. Only positive cosines nominate (a content orthogonal to the
    query is no evidence). ``allowed`` (sorted vids) restricts the scan to those
    contents. Exact: every block is scored; a block's best ``n`` can hold any of the
    overall best ``n``, because its contents are distinct. Memory: one block plus a
    pool of a few ``n`` candidates.
    """
    import numpy as np

    if allowed is not None and not allowed.size:
        return []
    q = np.ascontiguousarray(query, dtype=np.float32)
    pool_vids: list[npt.NDArray[np.int64]] = []
    pool_scores: list[npt.NDArray[np.float32]] = []
    pooled = 0
    floor = np.float32(0.0)
    for vids, matrix in blocks:
        scores = matrix @ q
        keep = scores >= floor if floor > 0 else scores > 0
        if allowed is not None:
            at = np.minimum(np.searchsorted(allowed, vids), allowed.size - 1)
            keep &= allowed[at] == vids
        idx = np.flatnonzero(keep)
        if idx.size > n:
            idx = idx[np.argpartition(-scores[idx], n - 1)[:n]]
        if idx.size:
            pool_vids.append(vids[idx])
            pool_scores.append(scores[idx])
            pooled += idx.size
        if pooled > 8 * n:  # keep the pool small: the best n so far, and a floor
            best_vids, best_scores = _best(pool_vids, pool_scores, n)
            pool_vids, pool_scores, pooled = [best_vids], [best_scores], best_vids.size
            if best_vids.size == n:
                floor = best_scores[-1]
    best_vids, best_scores = _best(pool_vids, pool_scores, n)
    return [Scored(int(v), float(s)) for v, s in zip(best_vids, best_scores, strict=True)]


def _best(
    vids: list[npt.NDArray[np.int64]], scores: list[npt.NDArray[np.float32]], n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The best ``n`` distinct vids of a pool (each at its best score), best first."""
    import numpy as np

    if not vids:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    all_vids, all_scores = np.concatenate(vids), np.concatenate(scores)
    order = np.lexsort((all_vids, -all_scores))  # by score down, then vid up
    all_vids, all_scores = all_vids[order], all_scores[order]
    _, first = np.unique(all_vids, return_index=True)  # each vid's best place
    keep = np.sort(first)[:n]
    return all_vids[keep], all_scores[keep]


def read_blocks(conn: sqlite3.Connection, dim: int) -> Iterator[Block]:
    """Every block of the current snapshot as (vids, ``dim``-column unit matrix), read
    lazily (one block's bytes at a time)."""
    # One SELECT over the table: an incremental blob handle per block copies once
    # instead of twice, but opening one compiles a statement, and measured slower.
    import numpy as np

    for vids_blob, vectors_blob in conn.execute("SELECT vids, vectors FROM vector_blocks"):
        vids = np.frombuffer(vids_blob, dtype="<i8")
        yield vids, np.frombuffer(vectors_blob, dtype="<f4").reshape(vids.size, dim)


def check(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(code detail) pairs for every way the blocks differ from the chunk rows."""
    import numpy as np

    problems: list[tuple[str, str]] = []
    # A chunk without a vector (INDEX/MISSING_VECTOR) cannot be in a block: not counted.
    (orphans,) = conn.execute(
        "SELECT count(*) FROM chunks WHERE (block IS NULL OR block NOT IN "
        "(SELECT block FROM vector_blocks)) AND content_hash IN (SELECT content_hash FROM vectors)"
    ).fetchone()
    if orphans:
        problems.append(("INDEX/BLOCKS_MISMATCH", f"{orphans} chunk rows are in no vector block"))
    for block, vids_blob, vectors_blob in conn.execute(
        "SELECT block, vids, vectors FROM vector_blocks ORDER BY block"
    ):
        vids = np.frombuffer(vids_blob, dtype="<i8")
        want = [
            r[0]
            for r in conn.execute(
                "SELECT rowid FROM vectors WHERE content_hash IN "
                "(SELECT content_hash FROM chunks WHERE block = ?) ORDER BY rowid",
                (block,),
            )
        ]
        if list(vids) != want:
            problems.append(
                (
                    "INDEX/BLOCKS_MISMATCH",
                    f"vector block {block} holds {vids.size} contents, its chunks use {len(want)}",
                )
            )
            continue
        if vids.size and len(vectors_blob) % (4 * vids.size):
            problems.append(("INDEX/BLOCKS_MISMATCH", f"vector block {block} has a torn matrix"))
            continue
        stored = conn.execute(
            "SELECT vector FROM vectors WHERE rowid IN (SELECT value FROM json_each(?)) "
            "ORDER BY rowid",
            (f"[{','.join(str(v) for v in want)}]",),
        ).fetchall()
        expected = unit_rows(b"".join(r[0] for r in stored), len(stored))
        got = np.frombuffer(vectors_blob, dtype="<f4").reshape(vids.size, -1)
        if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-6):
            problems.append(
                ("INDEX/BLOCKS_MISMATCH", f"vector block {block} differs from the stored vectors")
            )
    return problems


__all__ = [
    "COLUMNS",
    "MIN_BLOCK",
    "SCHEMA",
    "Scored",
    "blocks_of",
    "check",
    "next_block",
    "pack_all",
    "read_blocks",
    "refresh",
    "scan",
    "unit_rows",
]
