"""The work share of a single writer: the run walks everything itself, in one round.

An SQLite index has one writer at a time (its run lock), and a ``--no-index`` run has no
store to share, so there is nothing to claim: the walk is the one round, every content
is paid for by this run, and the run that finished its walk prunes with what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from .base import ContentClaims, FileStream


class LocalShare:
    """:class:`~.base.FileShare` for one run alone."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    @property
    def content_claims(self) -> ContentClaims | None:
        return None

    def rounds(self, walk: Callable[[], FileStream]) -> Generator[FileStream, None, None]:
        yield walk()

    def round_done(self) -> None:
        return None

    def finish(self, prune: Callable[[set[str]], int]) -> int:
        return prune(self.seen)

    def close(self) -> None:
        return None


__all__ = ["LocalShare"]
