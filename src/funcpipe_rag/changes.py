"""Which walked files a run must read: the unchanged-file check of ingest and ``--plan``.

With ``change_check = "stat"`` a file whose stat signature equals the trusted one stored
with its complete document, under the same reader line-up, is unchanged without being
opened (:mod:`funcpipe_rag.signature` says why that is safe). Every other file is read
and hashed, and is unchanged only if its bytes hash as stored, read by the same reader
version: ``change_check = "content"`` does that for every file. A file read and found
unchanged whose stored signature is missing (racy, or an older index) or stale (its
inode or ctime moved, its bytes did not) gets its new trusted signature stored, so the
next run need not read it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TypeVar

from .errors import IndexWriteError
from .index import SignatureRefresh, StoredDocument, VectorIndex
from .readers import DocumentReader, RawFile, reader_id, reader_lineup
from .signature import signature, stat_key
from .streams import Stage, close_quietly
from .walk import SourceFile

_REFRESH_BATCH = 512
T = TypeVar("T")


class ChangeCheck:
    """The unchanged-file decisions of one run against ``index`` (None: all is new)."""

    def __init__(
        self,
        index: VectorIndex | None,
        readers: Sequence[DocumentReader],
        *,
        by_stat: bool,
        refresh: bool = False,
        lookup: Callable[[str], StoredDocument | None] | None = None,
    ) -> None:
        """``lookup`` finds a stored document (default: ``index.stored_doc``); with
        ``refresh``, signatures of files read and found unchanged are stored."""
        self._index = index
        self._lookup = (
            lookup
            if lookup is not None
            else (index.stored_doc if index is not None else lambda _: None)
        )
        self._by_stat = by_stat and index is not None
        self._refresh = refresh and self._by_stat
        self._lineup = reader_lineup(readers)
        self._ids = frozenset(reader_id(r) for r in readers)
        # The document looked up last, kept for the read that follows a failed stat check.
        self._last: tuple[str, StoredDocument | None] = ("", None)
        self._pending: list[SignatureRefresh] = []

    def _stored(self, doc_id: str, *, keep: bool) -> StoredDocument | None:
        last, self._last = self._last, ("", None)
        doc = last[1] if last[0] == doc_id else self._lookup(doc_id)
        if keep:
            self._last = (doc_id, doc)
        return doc

    def unchanged_unread(self, src: SourceFile) -> StoredDocument | None:
        """The stored document when ``src`` is unchanged by its stat signature, else None
        (read it). A file the walk did not stat (a claim taken from a shared index) is
        stat-ed now."""
        if not self._by_stat:
            return None
        key = src.stat_key
        if not key:
            try:
                key = stat_key(os.stat(src.fs_path))
            except OSError:
                return None  # the read reports it
        doc = self._stored(src.doc_id, keep=True)
        if doc is None or not doc.unchanged_unread(signature(key, self._lineup), self._ids):
            return None
        return doc

    def unchanged_read(self, raw: RawFile) -> bool:
        """Whether a file read and hashed is stored unchanged; queues its signature when
        the stored one is missing or stale."""
        doc = self._stored(raw.source.doc_id, keep=False)
        if doc is None or not doc.unchanged(raw.file_hash, raw.reader_id):
            return False
        sig = raw.source.signature
        if self._refresh and sig is not None and sig != doc.signature:
            self._pending.append(SignatureRefresh(doc.doc_id, raw.file_hash, doc.reader, sig))
            if len(self._pending) >= _REFRESH_BATCH:
                self.flush()
        return True

    def flushed(self, raws: Iterable[T]) -> Stage[T]:
        """``raws`` unchanged; the queued signatures are stored when it ends (not when
        it is closed early: an interrupted run has better things to do)."""

        def gen() -> Generator[T, None, None]:
            try:
                yield from raws
                self.flush()
            finally:
                close_quietly(raws)

        return Stage(gen(), (raws,))

    def flush(self) -> None:
        """Store the queued signatures. They only spare later reads: a store that cannot
        take them now is left as it is (a chunk write would report it)."""
        pending, self._pending = self._pending, []
        if pending and self._index is not None:
            with contextlib.suppress(IndexWriteError):
                self._index.refresh_signatures(pending)


__all__ = ["ChangeCheck"]
