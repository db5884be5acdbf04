"""An interrupt never leaves a resource without an owner, and is never lost.

The CLI's signal handler raises where the main thread is, through ``raise_or_defer``;
code making a resource defers it until the resource is bound where a ``finally``
closes it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from funcpipe_rag.ignores import read_ignore_files
from funcpipe_rag.policies.interrupts import deferred_interrupts, raise_or_defer
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers.files import VerifiedStream, new_hasher, read_bytes
from funcpipe_rag.result import Err
from tests.readers.parsing import source


class Stop(BaseException):
    pass


def test_outside_a_section_the_interrupt_is_raised_at_once() -> None:
    with pytest.raises(Stop):
        raise_or_defer(Stop(), None)


def test_inside_sections_it_is_raised_when_the_outermost_one_ends() -> None:
    reached: list[str] = []
    with pytest.raises(Stop), deferred_interrupts():
        with deferred_interrupts():
            raise_or_defer(Stop(), None)
            reached.append("inner")
        reached.append("outer")  # the resource gets its owner before the raise
    assert reached == ["inner", "outer"]
    with deferred_interrupts():  # and it is raised once: the next section is quiet
        pass


def test_a_failure_inside_the_section_does_not_hide_the_interrupt() -> None:
    with pytest.raises(Stop) as caught, deferred_interrupts():
        raise_or_defer(Stop(), None)
        raise OSError("the open failed")
    assert isinstance(caught.value.__context__, OSError)


def test_a_second_interrupt_while_one_is_kept_is_dropped() -> None:
    first, second = Stop("first"), Stop("second")
    with pytest.raises(Stop) as caught, deferred_interrupts():
        raise_or_defer(first, None)
        raise_or_defer(second, None)
    assert caught.value is first


def test_sections_belong_to_their_thread() -> None:
    """A worker thread inside a section does not hold back the main thread's interrupt."""
    inside, leave = threading.Event(), threading.Event()

    def worker() -> None:
        with deferred_interrupts():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert inside.wait(10)
        with pytest.raises(Stop):
            raise_or_defer(Stop(), None)
    finally:
        leave.set()
        t.join()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def _timer_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    # SIGPROF: pytest-timeout has SIGALRM.
    previous = signal.signal(signal.SIGPROF, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _read_whole(path: Path) -> Callable[[ResourceLedger], object]:
    src = source(path)
    return lambda ledger: read_bytes(src, ledger)


def _stream_again(path: Path) -> Callable[[ResourceLedger], object]:
    src = source(path)
    h = new_hasher()
    h.update(path.read_bytes())
    expected = h.hexdigest()

    def read(ledger: ResourceLedger) -> None:
        for _ in VerifiedStream(src, expected, ledger).blocks():
            pass

    return read


def _ignore_files(path: Path) -> Callable[[ResourceLedger], object]:
    (path.parent / ".gitignore").write_text("*.tmp\n")
    return lambda _ledger: read_ignore_files(str(path.parent))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
@pytest.mark.parametrize("opener", [_read_whole, _stream_again, _ignore_files])
def test_a_signal_while_a_file_opens_leaks_nothing_and_is_never_a_read_failure(
    tmp_path: Path, opener: Callable[[Path], Callable[[ResourceLedger], object]]
) -> None:
    """Real timer signals whose handler is the CLI's (``raise_or_defer``) land at a
    different moment of a file's open, read and close each round: a signal that arrives
    during the ``open`` system call is handled right after it returns, before any name
    holds the descriptor. Every round must come out as the interrupt, with every
    descriptor closed and the ledger balanced — never a leak, never a READ/OPEN."""
    path = tmp_path / "a.md"
    path.write_text("text\n")
    read = opener(path)

    def handler(_signum: int, frame: FrameType | None) -> None:
        raise_or_defer(KeyboardInterrupt(), frame)

    failures: list[str] = []
    leaks: list[str] = []
    interrupted = 0
    with _timer_signals(handler):
        for i in range(300):
            ledger = ResourceLedger()  # one per round: a round's leak is its own
            before = _fds()
            try:
                signal.setitimer(signal.ITIMER_PROF, 1e-5 * (1 + i % 40))
                while True:  # read until the signal lands
                    got = read(ledger)
                    if isinstance(got, Err):
                        failures.append(f"{got.error.code}: {got.error.cause}")
                        break
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            if (after := _fds()) != before or ledger.snapshot().open_total:
                leaks.append(f"round {i}: fds {before} -> {after}, {ledger.snapshot().open_labels}")
    assert failures == []
    assert leaks == []
    assert interrupted == 300
