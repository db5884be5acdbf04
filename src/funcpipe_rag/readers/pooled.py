"""Extraction through a parser pool: a few files ahead, results in input order.

Files of the pool's formats are handed to it as soon as they are read, up to its
capacity, so parsing runs in the workers while the run chunks and embeds the files
before them; every other file is extracted in process when its turn comes. At most
``2 x capacity`` files are held (read, waiting for their turn), so memory stays bounded
whatever the mix of formats.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable

from ..policies.ledger import ResourceLedger
from ..result import ErrInfo, Ok, Result
from ..streams import close_quietly
from .base import Extraction, RawFile
from .pool import ParserPool, ParseTicket


def extract_pooled(
    raws: Iterable[Result[RawFile, ErrInfo]], ledger: ResourceLedger, pool: ParserPool
) -> Generator[Result[Extraction, ErrInfo], None, None]:
    """Each raw file through its reader (the pool's formats in the pool), in order."""
    window = 2 * pool.capacity
    # Invariant: pending holds, in input order, the files read and not yet yielded;
    # `tickets` of them are in the pool.
    pending: deque[Result[RawFile, ErrInfo] | ParseTicket] = deque()
    tickets = 0

    def settle(item: Result[RawFile, ErrInfo] | ParseTicket) -> Result[Extraction, ErrInfo]:
        if isinstance(item, ParseTicket):
            return pool.result(item)
        if isinstance(item, Ok):
            return item.value.reader.extract(item.value, ledger)
        return item

    try:
        for r in raws:
            if isinstance(r, Ok) and pool.takes(r.value.reader):
                pending.append(pool.submit(r.value))
                tickets += 1
            else:
                pending.append(r)
            # Read further ahead only while the head waits for a parse and there is room.
            while pending and (
                not isinstance(pending[0], ParseTicket)
                or tickets >= pool.capacity
                or len(pending) >= window
            ):
                head = pending.popleft()
                tickets -= isinstance(head, ParseTicket)
                yield settle(head)
        while pending:
            yield settle(pending.popleft())
    finally:
        close_quietly(raws)


__all__ = ["extract_pooled"]
