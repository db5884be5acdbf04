"""Index writes on one thread of their own, in order, a bounded number ahead.

Why: most of a chunk write is the database's own work (B-tree inserts, full-text
tokenising, the write-ahead log at ``COMMIT``), during which the SQLite driver releases
the GIL. On its own thread it overlaps the reading, chunking and embedding of the next
batches on a second core (measured: see the README's real-corpus hash row).

What the caller can rely on:

* **In order.** One thread runs the writes first in, first out, and the caller learns
  of each stored batch (``on_stored``) in the order it submitted them, on its own
  thread: it counts and prints a batch only once it is stored.
* **Bounded.** At most ``depth`` batches are submitted and not yet reported; a submit
  beyond that waits for the oldest.
* **Stops at the first failure.** A batch behind a failed one is not written (as a
  synchronous writer that raised would not have written it). The failure is raised to
  the caller once, when it collects that batch; the batches behind it are never
  reported stored.
* **Joined on every exit path.** :meth:`close` waits for the thread even when a signal
  interrupts it (Ctrl-C while joining) and then re-raises: nothing runs on the index
  after ``close`` returns, so the index can be closed next.

An index whose writes cannot run beside the run's reads
(``VectorIndex.writes_beside_reads`` false: PostgreSQL's one main session) is written
on the caller's thread, at submit, with the same reports.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from ..policies.ledger import Handle, ResourceLedger
from .base import PendingChunk, VectorIndex

T = TypeVar("T")


class _NotWritten(Exception):
    """A batch behind a failed one: never written, never reported."""


class IndexWriter(Generic[T]):
    """Writes batches to ``index`` on one thread; ``on_stored(tag)`` runs (on the caller's
    thread, in submission order) for each batch once it is stored.

    The thread starts with the first submit and is counted in the ledger as a
    ``worker_pool`` until :meth:`close` has joined it.
    """

    def __init__(
        self,
        index: VectorIndex,
        ledger: ResourceLedger,
        on_stored: Callable[[T], None],
        *,
        depth: int = 2,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._index = index
        self._ledger = ledger
        self._on_stored = on_stored
        self._depth = depth
        self._pool: ThreadPoolExecutor | None = None
        self._handle: Handle | None = None
        # Invariant: _inflight holds the submitted batches not yet reported, in order.
        self._inflight: deque[tuple[Future[None], T]] = deque()
        self._failed = threading.Event()  # set on the writer thread by a failed write
        self.broken = False  # a failure was raised to the caller: submit no more

    def submit(self, batch: Sequence[PendingChunk], vectors: Mapping[str, bytes], tag: T) -> None:
        """Queue one write: ``batch`` with the ``vectors`` it made (see
        :meth:`VectorIndex.write`); reports the batches already stored, and waits for
        the oldest while more than ``depth`` are in flight."""
        future: Future[None]
        if self._index.writes_beside_reads:
            if self._pool is None:
                self._handle = self._ledger.acquire("worker_pool", "index writer")
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funcpipe-write")
            future = self._pool.submit(self._write, list(batch), dict(vectors))
        else:
            future = Future()
            try:
                self._write(list(batch), dict(vectors))
            except Exception as exc:  # reported when collected, as from the thread
                future.set_exception(exc)
            else:
                future.set_result(None)
        self._inflight.append((future, tag))
        self._collect(len(self._inflight) - self._depth)

    def drain(self) -> None:
        """Wait until every submitted batch is stored, reporting each; raises the first
        failure."""
        self._collect(len(self._inflight))

    def _collect(self, at_least: int) -> None:
        """Report stored batches in order: at least ``at_least`` (waiting for them), then
        any others already done."""
        inflight = self._inflight
        while inflight and (at_least > 0 or inflight[0][0].done()):
            future, tag = inflight[0]
            try:
                # A signal (KeyboardInterrupt) raised while waiting here propagates with
                # the batch still in flight: it is being stored, and the run's last
                # drain reports it. Only the write's own failure is a failure.
                future.result()
            except _NotWritten:
                inflight.popleft()  # behind the failure already raised: never reported
                continue
            except Exception:
                inflight.popleft()
                self.broken = True
                raise
            inflight.popleft()
            at_least -= 1
            self._on_stored(tag)

    def _write(self, batch: list[PendingChunk], vectors: dict[str, bytes]) -> None:
        if self._failed.is_set():
            raise _NotWritten
        try:
            self._index.write(batch, vectors)
        except Exception:
            self._failed.set()
            raise

    def close(self) -> None:
        """Let the queued writes finish, join the thread, release it; idempotent.

        Batches not reported by now stay unreported (a run that is stopping: they may
        be stored, never claimed). A signal while joining is raised after the join.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        self._inflight.clear()
        interrupted: BaseException | None = None
        while True:
            try:
                pool.shutdown(wait=True)
                break
            except BaseException as exc:  # Ctrl-C / SIGTERM while joining: join anyway
                interrupted = interrupted or exc
        if self._handle is not None:
            self._ledger.release(self._handle)
            self._handle = None
        if interrupted is not None:
            raise interrupted


__all__ = ["IndexWriter"]
