"""Interrupts that wait until a new resource has an owner.

The CLI turns SIGINT and SIGTERM into an exception raised wherever the main thread is
(``KeyboardInterrupt``, :class:`~funcpipe_rag.errors.RunInterrupted`): the run unwinds
through its ``finally`` blocks and releases everything it holds. One kind of moment
cannot unwind cleanly: after a call created a resource and before a name inside a
``try`` owns it. CPython runs a signal handler as soon as a C call returns, so a signal
that arrives during the ``open`` system call is raised exactly there, and the descriptor
``os.open`` returned is never closed (1 run in 20 of the Ctrl-C test of the ONNX CLI
leaked the file it was opening, ledger balanced, one descriptor more).

Two tools close those moments:

- code that creates a resource does it inside ``with deferred_interrupts():`` and binds
  it where its ``finally`` will close it before the section ends;
- a function that must run whole once called (closing a resource, counting it in the
  ledger) is :func:`uninterruptible`. A section entered inside the function would not
  do: the function's own first instruction is a moment a signal is handled at.

A signal handler calls :func:`raise_or_defer`: outside both it raises at once; inside,
it keeps the exception, and the outermost section raises it on its way out. Sections are
per thread; handlers run on the main thread, so only its sections defer. Keep them
short: a section must never wait on anything unbounded (a lock another run holds, a
network peer), or Ctrl-C waits with it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class _Sections(threading.local):
    depth = 0
    pending: BaseException | None = None


_SECTIONS = _Sections()


class _Deferred:
    """The section: stateless, the depth and the kept exception live per thread."""

    __slots__ = ()

    def __enter__(self) -> None:
        _SECTIONS.depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sections = _SECTIONS
        sections.depth -= 1
        if sections.depth == 0 and (pending := sections.pending) is not None:
            sections.pending = None
            # Raised over an exception in flight too: the interrupt is what the caller
            # must see (the other one becomes its __context__).
            raise pending


_DEFERRED = _Deferred()


def deferred_interrupts() -> _Deferred:
    """A section in which :func:`raise_or_defer` keeps an interrupt for later."""
    return _DEFERRED


def uninterruptible(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` runs whole once called; an interrupt meanwhile is raised when it returns."""

    @functools.wraps(fn)
    def whole(*args: P.args, **kwargs: P.kwargs) -> R:
        with _DEFERRED:
            return fn(*args, **kwargs)

    return whole


# Frames whose first instruction comes before the section is entered: a signal handled
# there is kept too (every function made by `uninterruptible` shares this code object).
_ENTRY_CODE: frozenset[CodeType] = frozenset(
    {uninterruptible(len).__code__, _Deferred.__enter__.__code__}
)


def raise_or_defer(exc: BaseException, frame: FrameType | None) -> None:
    """For a signal handler given ``frame``: raise ``exc``, or keep it for the end of the
    current section.

    A second interrupt while one is kept is dropped: the first is already on its way.
    """
    sections = _SECTIONS
    if sections.depth > 0 or (frame is not None and frame.f_code in _ENTRY_CODE):
        if sections.pending is None:
            sections.pending = exc
        return
    sections.pending = None  # one kept just as its section ended is this same stop
    raise exc


__all__ = ["deferred_interrupts", "raise_or_defer", "uninterruptible"]
