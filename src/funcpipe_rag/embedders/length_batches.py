"""Group texts of similar token length, so a padded batch wastes little work.

A transformer pads every row of a batch to the batch's longest row and computes the
padding too. Sorting a bounded window of texts (the batch the embedding stage hands
over) by length and cutting it into small batches keeps each one's padding small; the
caller puts every result back at its input position. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence


def by_length(lengths: Sequence[int], *, max_rows: int, max_tokens: int) -> list[list[int]]:
    """The positions ``0 .. len(lengths) - 1`` in batches of similar length.

    Positions are sorted by length, shortest first (a stable sort: equal lengths keep
    their input order), and cut into consecutive batches of at most ``max_rows``
    positions whose padded size, rows x longest length, stays within ``max_tokens``
    (a text longer than that alone is still a batch of one). Every position appears in
    exactly one batch.
    """
    if max_rows < 1 or max_tokens < 1:
        raise ValueError(f"max_rows and max_tokens must be >= 1, got {max_rows}, {max_tokens}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for pos in order:
        # Sorted ascending, so this text is the longest the batch would hold.
        if current and (len(current) >= max_rows or (len(current) + 1) * lengths[pos] > max_tokens):
            batches.append(current)
            current = []
        current.append(pos)
    if current:
        batches.append(current)
    return batches


__all__ = ["by_length"]
