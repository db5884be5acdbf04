"""Lazy stream helpers that close their upstream when they are closed.

``map``, ``filter``, ``itertools.chain`` and a bare ``for x in upstream: yield f(x)``
generator do not close ``upstream`` when they are closed themselves, and a generator
that was never started runs no ``finally`` at all when closed. Every helper here
returns a :class:`Stage`: closing it closes its own generator and then, explicitly,
every upstream it consumes — so closing the last stage of a pipeline closes the whole
pipeline synchronously, without help from reference counting or the garbage collector.

Creating a stage does no work and touches no upstream item (laziness).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def close_quietly(obj: object) -> None:
    """Call ``obj.close()`` if it has one (plain iterators like ``list_iterator`` don't)."""
    close = getattr(obj, "close", None)
    if callable(close):
        close()


class Stage(Iterator[T]):
    """An iterator over a generator that also owns the upstreams it reads from.

    ``close()`` closes the generator first (running its ``finally``), then each
    upstream in reverse order — even when the generator never started, which is the
    case a plain generator gets wrong. A failing upstream close does not stop the
    others; the first failure is raised once all have run. ``close()`` is idempotent.

    ``iter(stage)`` returns the inner generator, so a ``for`` loop over a stage runs at
    generator speed (one C-level ``next`` per item, no Python ``__next__`` frame);
    whoever holds the stage keeps the duty to close the stage itself.
    """

    __slots__ = ("_gen", "_upstreams")

    def __init__(self, gen: Generator[T, None, None], upstreams: tuple[object, ...] = ()) -> None:
        self._gen = gen
        self._upstreams = upstreams

    def __iter__(self) -> Iterator[T]:
        return self._gen

    def __next__(self) -> T:
        return next(self._gen)

    def close(self) -> None:
        failure: BaseException | None = None
        for part in (self._gen, *reversed(self._upstreams)):
            try:
                close_quietly(part)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def _closing(gen: Generator[T, None, None], *upstreams: object) -> Stage[T]:
    return Stage(gen, upstreams)


def smap(f: Callable[[T], U], xs: Iterable[T]) -> Stage[U]:
    """``map(f, xs)`` that closes ``xs`` when closed."""

    def gen() -> Generator[U, None, None]:
        try:
            for x in xs:
                yield f(x)
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def sfilter(pred: Callable[[T], bool], xs: Iterable[T]) -> Stage[T]:
    """``filter(pred, xs)`` that closes ``xs`` when closed."""

    def gen() -> Generator[T, None, None]:
        try:
            for x in xs:
                if pred(x):
                    yield x
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def flat_map(f: Callable[[T], Iterable[U]], xs: Iterable[T]) -> Stage[U]:
    """Yield every item of ``f(x)`` for each ``x``; inner iterables are closed too."""

    def gen() -> Generator[U, None, None]:
        try:
            for x in xs:
                inner = f(x)
                try:
                    yield from inner
                finally:
                    close_quietly(inner)
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def tap(f: Callable[[T], object], xs: Iterable[T]) -> Stage[T]:
    """Call ``f(x)`` for its effect on each item, yielding the items unchanged."""

    def gen() -> Generator[T, None, None]:
        try:
            for x in xs:
                f(x)
                yield x
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def take(n: int, xs: Iterable[T]) -> Stage[T]:
    """The first ``n`` items; ``xs`` is closed as soon as the n-th item is yielded."""
    if n < 0:
        raise ValueError(f"take: n must be >= 0, got {n}")

    def gen() -> Generator[T, None, None]:
        try:
            if n == 0:
                return
            for i, x in enumerate(xs, 1):
                if i == n:
                    close_quietly(xs)  # release upstream before handing out the last item
                    yield x
                    return
                yield x
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def batched(xs: Iterable[T], n: int) -> Stage[tuple[T, ...]]:
    """Tuples of ``n`` consecutive items (the last may be shorter)."""
    if n < 1:
        raise ValueError(f"batched: n must be >= 1, got {n}")

    def gen() -> Generator[tuple[T, ...], None, None]:
        try:
            it = iter(xs)
            while batch := tuple(itertools.islice(it, n)):
                yield batch
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)


def chain(*streams: Iterable[T]) -> Stage[T]:
    """``itertools.chain`` that closes every stream, the unstarted ones included."""

    def gen() -> Generator[T, None, None]:
        try:
            for s in streams:
                yield from s
                close_quietly(s)
        finally:
            for s in reversed(streams):
                close_quietly(s)

    return _closing(gen(), *streams)


def chain_from(streams: Iterable[Iterable[T]]) -> Stage[T]:
    """Flatten a stream of streams; the current inner stream and the outer are closed."""
    return flat_map(lambda s: s, streams)


def guard(xs: Iterable[T]) -> Stage[T]:
    """Wrap any iterable so that closing the wrapper closes it (identity otherwise)."""

    def gen() -> Generator[T, None, None]:
        try:
            yield from xs
        finally:
            close_quietly(xs)

    return _closing(gen(), xs)
