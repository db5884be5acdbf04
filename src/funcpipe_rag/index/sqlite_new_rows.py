"""Which rows a writing SQLite index may hold, in a table that was empty at open.

Why: a run asks the index, for every file, whether it stored the file already
(``stored_doc``) and, for every embedding batch, which of its contents have a vector
(``fetch_vectors``), so nothing is read or paid for twice. Into a new index nearly every
answer is "no", and each costs an SQL probe on the read connection: 5-9% of the
consuming thread's time in a hash-embedder ingest of the real corpus (py-spy). A table
that was empty when the run opened the index, which this run alone writes (the run
lock), holds exactly the rows this run added since; a filter of their keys answers
"surely not stored" without SQL, and the rest are looked up as before.

:class:`NewKeys` is a Bloom filter: a fixed bit array, so memory stays flat at any run
size. It never says "absent" of a key that was added (a lookup then answers exactly as
the SQL alone would); a false "maybe" only costs the SQL probe it saves otherwise (at
the default 512 KiB, two bits a key: about 1 in 450 at 100,000 keys, 1 in 7 at a
million). Python's ``hash`` is salted per process, which is fine here: the filter lives
and dies with the process's open index, and nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class NewKeys:
    """Keys added since the table was empty: ``might_hold`` leaves out only keys never
    added. Adds and tests may come from different threads (bytearray items change under
    the GIL); add a key before the transaction storing its row commits, so a committed
    row is always covered.

    ``bits`` is the size of the filter (a power of two).
    """

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: int = 1 << 22) -> None:
        if bits < 8 or bits & (bits - 1):
            raise ValueError(f"bits must be a power of two >= 8, got {bits}")
        self._bits = bytearray(bits >> 3)
        self._mask = bits - 1

    def add_all(self, keys: Iterable[str]) -> None:
        bits, mask = self._bits, self._mask
        for key in keys:
            h = hash(key)
            a, b = h & mask, (h >> 32) & mask
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)

    def might_hold(self, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` that may have been added (in order)."""
        bits, mask = self._bits, self._mask
        out = []
        for key in keys:
            h = hash(key)
            a, b = h & mask, (h >> 32) & mask
            if bits[a >> 3] >> (a & 7) & 1 and bits[b >> 3] >> (b & 7) & 1:
                out.append(key)
        return out


__all__ = ["NewKeys"]
