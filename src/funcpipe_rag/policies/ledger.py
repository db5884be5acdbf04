"""The resource ledger: every managed resource registers on acquire and on release.

A ledger counts, per *kind* (``http_client``, ``http_connection``, ``file``,
``stream``, ``index_db``, ``worker_pool``, ...), how many resources were acquired and
released and which are still open, with a label for each open one. It also records
cleanup failures, so a ``close()`` that raised is never lost silently.

The operating system is the second witness: :func:`os_snapshot` counts this
process's open file descriptors, sockets, threads and child processes, so a report can
put "the ledger says 0 open" beside "the OS agrees". A server the run talks to can be a
third: a resource that holds sessions on it records the server's own count of this run's
sessions before it opened them and after it closed them
(:meth:`ResourceLedger.record_remote`; ``pg_sessions``, from PostgreSQL's
``pg_stat_activity``).

Thread-safe: HTTP connection pools acquire and release from worker threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .interrupts import uninterruptible


@dataclass(frozen=True, slots=True)
class KindCounts:
    """Acquired / released / open counts of one resource kind."""

    acquired: int
    released: int

    @property
    def open(self) -> int:
        return self.acquired - self.released

    def to_jsonable(self) -> dict[str, int]:
        return {"acquired": self.acquired, "released": self.released, "open": self.open}


@dataclass(frozen=True, slots=True)
class CleanupFailure:
    """A cleanup step that raised: which resource, and the exception as text."""

    kind: str
    label: str
    error: str


@dataclass(frozen=True, slots=True)
class RemoteCount:
    """A server's own count of this run's sessions on it: before the run opened any, and
    after it closed them all; -1 where the server could not be asked."""

    before: int
    after: int

    @property
    def leaked(self) -> bool:
        return self.before >= 0 and self.after > self.before

    def plus(self, other: RemoteCount) -> RemoteCount:
        def add(a: int, b: int) -> int:
            return -1 if a < 0 or b < 0 else a + b

        return RemoteCount(add(self.before, other.before), add(self.after, other.after))

    def to_jsonable(self) -> dict[str, int]:
        return {"before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """A point-in-time copy of a ledger, safe to keep and to serialise."""

    by_kind: dict[str, KindCounts]
    open_labels: tuple[tuple[str, str], ...]
    cleanup_failures: tuple[CleanupFailure, ...] = ()
    remote: dict[str, RemoteCount] = field(default_factory=dict)

    @property
    def open_total(self) -> int:
        return sum(c.open for c in self.by_kind.values())

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "by_kind": {k: c.to_jsonable() for k, c in sorted(self.by_kind.items())},
            "open_total": self.open_total,
            "open": [{"kind": k, "label": label} for k, label in self.open_labels],
            "cleanup_failures": [
                {"kind": f.kind, "label": f.label, "error": f.error} for f in self.cleanup_failures
            ],
            "remote": {name: c.to_jsonable() for name, c in sorted(self.remote.items())},
        }


@dataclass(frozen=True, slots=True)
class Handle:
    """The receipt of one acquisition; give it back to :meth:`ResourceLedger.release`."""

    ident: int
    kind: str
    label: str


@dataclass(slots=True)
class ResourceLedger:
    """Counts acquisitions and releases by kind; releasing a handle twice counts once.

    >>> ledger = ResourceLedger()
    >>> h = ledger.acquire("file", "a.txt")
    >>> ledger.release(h); ledger.release(h)
    >>> ledger.snapshot().open_total
    0
    """

    _acquired: dict[str, int] = field(default_factory=dict)
    _released: dict[str, int] = field(default_factory=dict)
    # Invariant: _open holds exactly the handles acquired and not yet released, so
    # sum(_acquired) - sum(_released) == len(_open) at every point outside the lock.
    _open: dict[int, Handle] = field(default_factory=dict)
    _failures: list[CleanupFailure] = field(default_factory=list)
    _remote: dict[str, RemoteCount] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, kind: str, label: str = "") -> Handle:
        """Count a new resource. Where an interrupt may land (the CLI's main thread), make
        the resource, count it and bind it in one section
        (:func:`~funcpipe_rag.policies.interrupts.deferred_interrupts`)."""
        with self._lock:
            handle = Handle(next(self._ids), kind, label)
            acquired = self._acquired.get(kind, 0) + 1
            # No call between the two updates: an interrupt cannot land between them.
            self._acquired[kind] = acquired
            self._open[handle.ident] = handle
            return handle

    @uninterruptible  # an interrupt between the two updates would lose a release
    def release(self, handle: Handle) -> None:
        """Mark ``handle`` released; a second release of the same handle is a no-op."""
        with self._lock:
            if self._open.pop(handle.ident, None) is not None:
                self._released[handle.kind] = self._released.get(handle.kind, 0) + 1

    def record_cleanup_failure(self, kind: str, label: str, exc: BaseException) -> None:
        with self._lock:
            self._failures.append(CleanupFailure(kind, label, f"{type(exc).__name__}: {exc}"))

    def record_remote(self, name: str, count: RemoteCount) -> None:
        """Add a server's count of this run's sessions (see :class:`RemoteCount`)."""
        with self._lock:
            known = self._remote.get(name)
            self._remote[name] = count if known is None else known.plus(count)

    def snapshot(self) -> LedgerSnapshot:
        with self._lock:
            kinds = self._acquired.keys() | self._released.keys()
            return LedgerSnapshot(
                by_kind={
                    k: KindCounts(self._acquired.get(k, 0), self._released.get(k, 0)) for k in kinds
                },
                open_labels=tuple((h.kind, h.label) for h in self._open.values()),
                cleanup_failures=tuple(self._failures),
                remote=dict(self._remote),
            )

    @contextlib.contextmanager
    def tracking(self, kind: str, label: str = "") -> Iterator[Handle]:
        """Register a resource for the duration of a ``with`` block."""
        handle = self.acquire(kind, label)
        try:
            yield handle
        finally:
            self.release(handle)


# The process-wide fallback keeps library calls outside any run counted somewhere.
_DEFAULT_LEDGER = ResourceLedger()
_CURRENT: ContextVar[ResourceLedger | None] = ContextVar("funcpipe_ledger", default=None)


def current_ledger() -> ResourceLedger:
    """The ledger of the current run (see :func:`use_ledger`), else the process default.

    A context variable, so worker threads see the default unless they are started in a
    copied context; resources acquired in threads should take the ledger explicitly.
    """
    ledger = _CURRENT.get()
    return _DEFAULT_LEDGER if ledger is None else ledger


@contextlib.contextmanager
def use_ledger(ledger: ResourceLedger) -> Iterator[ResourceLedger]:
    """Make ``ledger`` the current one inside the ``with`` block."""
    token = _CURRENT.set(ledger)
    try:
        yield ledger
    finally:
        _CURRENT.reset(token)


@dataclass(frozen=True, slots=True)
class OsSnapshot:
    """What the operating system says this process holds; -1 where it cannot tell.

    ``children`` counts child processes, exited but unreaped ones (zombies) included.
    """

    fds: int
    sockets: int
    threads: int
    children: int = -1


def _children() -> int:
    """This process's children (Linux ``/proc``), or -1 where it cannot tell."""
    task_dir = f"/proc/{os.getpid()}/task"
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return -1
    counted, n = False, 0
    for tid in tids:  # each thread lists the children it started
        try:
            with open(f"{task_dir}/{tid}/children", encoding="ascii") as f:
                n += len(f.read().split())
                counted = True
        except OSError:
            continue  # the thread ended, or the kernel has no `children` files
    if counted:
        return n
    me = str(os.getpid())
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                    # "pid (comm) state ppid ...": the name may hold spaces and parens.
                    if f.read().rsplit(")", 1)[-1].split()[1] == me:
                        n += 1
            except (OSError, IndexError):
                continue
    return n


def os_snapshot() -> OsSnapshot:
    """Count open file descriptors and sockets (Linux ``/proc``), live threads and
    child processes."""
    fds = sockets = -1
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        fds = sockets = 0
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue  # the descriptor listdir itself used is gone already
            fds += 1
            if target.startswith("socket:"):
                sockets += 1
    return OsSnapshot(
        fds=fds, sockets=sockets, threads=threading.active_count(), children=_children()
    )
