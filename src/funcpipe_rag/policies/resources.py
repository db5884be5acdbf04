"""Context managers that close resource-holding streams on every exit path.

Which wrapper to use:

=========================  ===========================================
an existing generator      ``with_resource_stream(gen)``
a generator from a factory ``managed_stream(factory)`` (lazy: nothing runs before ``with``)
several resources          ``nested_managed([m1, m2, ...])`` (LIFO exit)
any object with close()    ``auto_close(obj)``
=========================  ===========================================

Unlike the reference sketch these wrappers never swallow a failing ``close()``: it is
recorded in the resource ledger, and raised when it is the only error; when another
exception is already in flight, that one stays primary and the cleanup failure is
attached to it as a note. ``nested_managed`` unwinds the managers already entered when
a later one fails on entry, before the exception reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from .ledger import Handle, ResourceLedger, current_ledger

T = TypeVar("T")

_ExitFn = Callable[
    [type[BaseException] | None, BaseException | None, TracebackType | None], bool | None
]


class SupportsClose(Protocol):
    def close(self) -> object: ...


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class CleanupStack:
    """An exit stack whose *first* exception stays primary.

    ``contextlib.ExitStack`` lets a failing exit callback replace the exception in
    flight. Here each step runs in LIFO order, a failing step is recorded (ledger and a
    note on the primary exception) and the remaining steps still run; the first
    exception — the one in flight, or else the first cleanup failure — is the one the
    caller sees. ``close()`` is idempotent.
    """

    def __init__(self, ledger: ResourceLedger | None = None) -> None:
        self._ledger = ledger if ledger is not None else current_ledger()
        # Invariant: _exits holds the exit steps of entered, not yet exited resources,
        # in entry order; each is popped before it runs, so a step never runs twice.
        self._exits: list[tuple[str, _ExitFn]] = []

    def enter_context(self, cm: AbstractContextManager[T], label: str = "") -> T:
        """Enter ``cm`` and schedule its ``__exit__``; on entry failure nothing is pushed."""
        value = cm.__enter__()
        self._exits.append((label or type(cm).__name__, cm.__exit__))
        return value

    def callback(self, fn: Callable[[], object], label: str = "") -> None:
        """Schedule ``fn()`` to run at exit, like ``ExitStack.callback``."""

        def _exit(*_: object) -> bool:
            fn()
            return False

        self._exits.append((label or getattr(fn, "__qualname__", "callback"), _exit))

    def unwind(self, exc: BaseException | None) -> BaseException | None:
        """Run every exit step, LIFO; return the exception the caller should see.

        Returns ``exc`` itself while it stays primary, ``None`` when a step suppressed
        it, or the first cleanup failure when there was no exception in flight.
        """
        primary = exc
        while self._exits:
            label, exit_fn = self._exits.pop()
            try:
                exc_type = None if primary is None else type(primary)
                tb = None if primary is None else primary.__traceback__
                if exit_fn(exc_type, primary, tb) and primary is not None:
                    primary = None  # suppressed, as a `with` statement would do
            except BaseException as failure:
                self._ledger.record_cleanup_failure("cleanup", label, failure)
                if primary is None:
                    primary = failure
                elif failure is not primary:
                    primary.add_note(f"funcpipe: cleanup of {label} also failed: {failure!r}")
        return primary

    def close(self) -> None:
        """Unwind with no exception in flight; raise the first cleanup failure, if any."""
        failure = self.unwind(None)
        if failure is not None:
            raise failure

    def __enter__(self) -> CleanupStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        outcome = self.unwind(exc)
        if outcome is None:
            return exc is not None  # suppressed (or nothing happened)
        if outcome is exc:
            return False  # let the original propagate with its own traceback
        raise outcome


def _close_quietly_or_raise(
    closer: Callable[[], object],
    exc: BaseException | None,
    ledger: ResourceLedger,
    kind: str,
    label: str,
) -> None:
    """Call ``closer``; a failure is recorded, then raised only if ``exc`` is None."""
    try:
        closer()
    except BaseException as failure:
        ledger.record_cleanup_failure(kind, label, failure)
        if exc is None:
            raise
        exc.add_note(f"funcpipe: closing {kind} {label!r} also failed: {_describe(failure)}")


class _ResourceStream(Generic[T], AbstractContextManager[Iterator[T]]):
    """Enter: register in the ledger, return the stream; exit: close it exactly once."""

    def __init__(
        self,
        factory: Callable[[], Iterator[T]],
        kind: str,
        label: str,
        ledger: ResourceLedger | None,
    ) -> None:
        self._factory = factory
        self._kind = kind
        self._label = label
        self._ledger = ledger
        self._stream: Iterator[T] | None = None
        self._handle: Handle | None = None

    def __enter__(self) -> Iterator[T]:
        if self._stream is not None:
            raise RuntimeError("a managed stream can be entered only once")
        ledger = self._ledger if self._ledger is not None else current_ledger()
        self._ledger = ledger
        stream = self._factory()
        self._stream = stream
        self._handle = ledger.acquire(self._kind, self._label)
        return stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream, handle, ledger = self._stream, self._handle, self._ledger
        self._handle = None
        if handle is None or ledger is None:
            return  # never entered, or already exited
        try:
            close = getattr(stream, "close", None)
            if callable(close):
                _close_quietly_or_raise(close, exc, ledger, self._kind, self._label)
        finally:
            ledger.release(handle)


def with_resource_stream(
    gen: Iterator[T],
    *,
    kind: str = "stream",
    label: str = "",
    ledger: ResourceLedger | None = None,
) -> AbstractContextManager[Iterator[T]]:
    """Close an existing stream when the ``with`` block exits, on every path.

    >>> with with_resource_stream(iter(range(3))) as it:
    ...     next(it)
    0
    """
    return _ResourceStream(lambda: gen, kind, label or type(gen).__name__, ledger)


def managed_stream(
    factory: Callable[[], Iterator[T]],
    *,
    kind: str = "stream",
    label: str = "",
    ledger: ResourceLedger | None = None,
) -> AbstractContextManager[Iterator[T]]:
    """Create the stream from ``factory`` on entry (not before) and close it on exit.

    Entering does not advance the stream: for a generator, not even its first line runs
    until the first ``next()``.
    """
    name = label or getattr(factory, "__qualname__", "stream")
    return _ResourceStream(factory, kind, name, ledger)


class _Nested(AbstractContextManager[tuple[Any, ...]]):
    def __init__(
        self, managers: Sequence[AbstractContextManager[Any]], ledger: ResourceLedger | None
    ) -> None:
        self._managers = tuple(managers)
        self._ledger = ledger
        self._stack: CleanupStack | None = None

    def __enter__(self) -> tuple[Any, ...]:
        stack = CleanupStack(self._ledger)
        values: list[Any] = []
        try:
            for manager in self._managers:
                values.append(stack.enter_context(manager))
        except BaseException as exc:
            # Unwind managers 1..k-1 now, LIFO, before the caller sees the failure.
            outcome = stack.unwind(exc)
            if outcome is None or outcome is exc:
                raise
            raise outcome from exc
        self._stack = stack
        return tuple(values)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        return stack.__exit__(exc_type, exc, tb)


def nested_managed(
    managers: Sequence[AbstractContextManager[Any]],
    *,
    ledger: ResourceLedger | None = None,
) -> AbstractContextManager[tuple[Any, ...]]:
    """Enter ``managers`` in order, exit them in reverse order on every path.

    If manager *k* fails on entry, managers 1..k-1 are exited (LIFO) before the
    exception propagates. A failing exit does not stop the others; the first exception
    stays primary.
    """
    return _Nested(managers, ledger)


class _Closing(Generic[T], AbstractContextManager[T]):
    def __init__(self, obj: T, kind: str, label: str, ledger: ResourceLedger | None) -> None:
        self._obj = obj
        self._kind = kind
        self._label = label
        self._ledger = ledger
        self._handle: Handle | None = None

    def __enter__(self) -> T:
        ledger = self._ledger if self._ledger is not None else current_ledger()
        self._ledger = ledger
        self._handle = ledger.acquire(self._kind, self._label)
        return self._obj

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle, ledger, self._handle = self._handle, self._ledger, None
        if handle is None or ledger is None:
            return
        try:
            closer: Callable[[], object] = self._obj.close  # type: ignore[attr-defined]
            _close_quietly_or_raise(closer, exc, ledger, self._kind, self._label)
        finally:
            ledger.release(handle)


def auto_close(
    obj: T,
    *,
    kind: str = "resource",
    label: str = "",
    ledger: ResourceLedger | None = None,
) -> AbstractContextManager[T]:
    """A context manager that closes ``obj`` on exit.

    An object that is already a context manager is returned as is, so its own protocol
    runs (the sketch's ``nullcontext`` would never close it). An object with
    ``close()`` is closed and counted in the ledger; anything else gets a no-op manager.
    """
    if isinstance(obj, AbstractContextManager):
        return obj
    if callable(getattr(obj, "close", None)):
        return _Closing(obj, kind, label or type(obj).__name__, ledger)
    return nullcontext(obj)
