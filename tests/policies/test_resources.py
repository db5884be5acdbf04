"""Laws of the resource wrappers (DESIGN.md §5): cleanup on all paths, no GC reliance,
laziness, LIFO composition, equivalence, and cleanup failures that are never lost."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.policies.breakers import short_circuit_on_err_truncate
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.policies.resources import (
    CleanupStack,
    auto_close,
    managed_stream,
    nested_managed,
    with_resource_stream,
)
from funcpipe_rag.result import Err, Ok
from tests.fakes import Probe, tracked

Wrap = Callable[[Iterator[Any], ResourceLedger], contextlib.AbstractContextManager[Iterator[Any]]]
WRAPPERS: dict[str, Wrap] = {
    "with_resource_stream": lambda g, led: with_resource_stream(g, ledger=led),
    "managed_stream": lambda g, led: managed_stream(lambda: g, ledger=led),
}


@contextlib.contextmanager
def gc_off_keep_refs(keep: list[object]) -> Iterator[list[object]]:
    """No garbage collector, and every object handed to ``keep`` stays referenced."""
    gc.disable()
    try:
        yield keep
    finally:
        gc.enable()


def consume(how: str, it: Iterator[Any], items: list[int]) -> None:
    if how == "normal":
        assert list(it) == items
    elif how == "partial":
        for _ in range(min(3, len(items))):
            next(it)
    elif how == "consumer-exception":
        with pytest.raises(ValueError, match="consumer"):
            for _ in it:
                raise ValueError("consumer")
            raise ValueError("consumer")  # empty input: still leave by an exception
    else:  # pragma: no cover
        raise AssertionError(how)


PATHS = ["normal", "partial", "consumer-exception"]


@pytest.mark.parametrize("gc_off", [False, True], ids=["gc-on", "gc-off"])
@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@given(items=st.lists(st.integers(), max_size=20), how=st.sampled_from(PATHS))
def test_cleanup_on_all_paths(wrapper: str, gc_off: bool, items: list[int], how: str) -> None:
    probe, ledger, keep = Probe(), ResourceLedger(), []
    ctx = gc_off_keep_refs(keep) if gc_off else contextlib.nullcontext(keep)
    with ctx:
        gen = tracked(items, probe)
        keep.append(gen)
        with WRAPPERS[wrapper](gen, ledger) as it:
            keep.append(it)
            consume(how, it, items)
        assert probe.closed or not probe.started
        assert ledger.snapshot().open_total == 0
        assert ledger.snapshot().by_kind["stream"].acquired == 1


@pytest.mark.parametrize("gc_off", [False, True], ids=["gc-on", "gc-off"])
@given(items=st.lists(st.integers(), min_size=1, max_size=20), data=st.data())
def test_cleanup_on_producer_exception(gc_off: bool, items: list[int], data: Any) -> None:
    fail_at = data.draw(st.integers(0, len(items) - 1))
    probe, ledger, keep = Probe(), ResourceLedger(), []
    with gc_off_keep_refs(keep) if gc_off else contextlib.nullcontext(keep):
        gen = tracked(items, probe, fail_at=fail_at)
        keep.append(gen)
        with pytest.raises(RuntimeError, match="producer failed"):  # noqa: SIM117
            with with_resource_stream(gen, ledger=ledger) as it:
                list(it)
        assert probe.closed
        assert ledger.snapshot().open_total == 0


@pytest.mark.parametrize("gc_off", [False, True], ids=["gc-on", "gc-off"])
@given(flags=st.lists(st.booleans(), max_size=50))
def test_cleanup_on_breaker_trip(gc_off: bool, flags: list[bool]) -> None:
    probe, keep = Probe(), []
    with gc_off_keep_refs(keep) if gc_off else contextlib.nullcontext(keep):
        src = tracked([Err("E") if f else Ok(i) for i, f in enumerate(flags)], probe)
        with with_resource_stream(src) as s:
            broken = short_circuit_on_err_truncate(s)
            keep += [src, s, broken]
            out = list(broken)
        assert probe.closed
        expected = flags.index(True) + 1 if True in flags else len(flags)
        assert len(out) == expected


def test_manager_lazy_entry() -> None:
    probe = Probe()
    entered: list[str] = []

    def factory() -> Iterator[int]:
        entered.append("factory")
        return tracked(iter([42]), probe)

    mgr = managed_stream(factory)
    assert entered == []
    with mgr as it:
        assert entered == ["factory"]
        assert not probe.started, "entering the manager advanced the stream"
        assert next(it) == 42


@given(st.lists(st.integers()))
def test_managed_equivalence(items: list[int]) -> None:
    with managed_stream(lambda: iter(items)) as it:
        assert list(it) == items
    with with_resource_stream(iter(items)) as it:
        assert list(it) == items


class Recorder:
    def __init__(self, name: str, log: list[str], *, fail_enter: bool = False) -> None:
        self.name, self.log, self.fail_enter = name, log, fail_enter

    def __enter__(self) -> str:
        if self.fail_enter:
            self.log.append(f"enter-fail {self.name}")
            raise OSError(f"{self.name} cannot open")
        self.log.append(f"enter {self.name}")
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.log.append(f"exit {self.name}")


@given(n=st.integers(1, 8), raise_inside=st.booleans())
def test_nested_manager_lifo(n: int, raise_inside: bool) -> None:
    log: list[str] = []
    managers = [Recorder(str(i), log) for i in range(n)]
    with contextlib.suppress(KeyError), nested_managed(managers) as values:
        assert values == tuple(str(i) for i in range(n))
        if raise_inside:
            raise KeyError("inside")
    assert log == [f"enter {i}" for i in range(n)] + [f"exit {i}" for i in reversed(range(n))]


@given(n=st.integers(1, 8), data=st.data())
def test_nested_entry_failure_unwinds_already_entered(n: int, data: Any) -> None:
    k = data.draw(st.integers(0, n - 1))
    log: list[str] = []
    managers = [Recorder(str(i), log, fail_enter=(i == k)) for i in range(n)]
    mgr = nested_managed(managers)
    with pytest.raises(OSError, match=f"{k} cannot open") as info:  # noqa: SIM117
        with mgr:
            pytest.fail("body must not run")
    # Managers 0..k-1 exited in reverse order *before* the exception reached us.
    assert log == (
        [f"enter {i}" for i in range(k)]
        + [f"enter-fail {k}"]
        + [f"exit {i}" for i in reversed(range(k))]
    )
    assert info.value.args == (f"{k} cannot open",)


class FailingClose:
    def __init__(self) -> None:
        self.calls = 0

    def __iter__(self) -> FailingClose:
        return self

    def __next__(self) -> int:
        raise StopIteration

    def close(self) -> None:
        self.calls += 1
        raise OSError("close failed")


def test_failing_close_alone_is_raised_and_recorded() -> None:
    ledger = ResourceLedger()
    stream = FailingClose()
    with pytest.raises(OSError, match="close failed"):  # noqa: SIM117
        with with_resource_stream(stream, ledger=ledger, kind="file", label="x"):
            pass
    snap = ledger.snapshot()
    assert [(f.kind, f.label) for f in snap.cleanup_failures] == [("file", "x")]
    assert snap.open_total == 0
    assert stream.calls == 1


def test_failing_close_during_another_exception_keeps_the_original_primary() -> None:
    ledger = ResourceLedger()
    with pytest.raises(KeyError) as info:  # noqa: SIM117
        with with_resource_stream(FailingClose(), ledger=ledger):
            raise KeyError("original")
    assert any("close failed" in note for note in info.value.__notes__)
    assert len(ledger.snapshot().cleanup_failures) == 1


def test_cleanup_stack_runs_every_step_and_keeps_the_first_failure() -> None:
    ledger = ResourceLedger()
    order: list[str] = []

    def step(name: str, fail: bool) -> Callable[[], None]:
        def run() -> None:
            order.append(name)
            if fail:
                raise OSError(name)

        return run

    stack = CleanupStack(ledger)
    stack.callback(step("a", True), "a")
    stack.callback(step("b", False), "b")
    stack.callback(step("c", True), "c")
    with pytest.raises(OSError, match=r"^c") as info:
        stack.close()
    assert order == ["c", "b", "a"]  # LIFO, and a failure did not stop the rest
    assert any("cleanup of a also failed" in n for n in info.value.__notes__)
    assert [f.label for f in ledger.snapshot().cleanup_failures] == ["c", "a"]
    stack.close()  # idempotent: nothing left to run
    assert order == ["c", "b", "a"]


def test_auto_close() -> None:
    ledger = ResourceLedger()

    class Closable:
        closed = 0

        def close(self) -> None:
            self.closed += 1

    obj = Closable()
    with auto_close(obj, kind="file", ledger=ledger) as got:
        assert got is obj
        assert ledger.snapshot().open_total == 1
    assert obj.closed == 1
    assert ledger.snapshot().open_total == 0

    log: list[str] = []
    rec = Recorder("cm", log)
    with auto_close(rec) as value:  # a context manager keeps its own protocol
        assert value == "cm"
    assert log == ["enter cm", "exit cm"]

    with auto_close(5) as five:
        assert five == 5


def test_a_managed_stream_cannot_be_entered_twice() -> None:
    mgr = managed_stream(lambda: iter([1]))
    with mgr:
        pass
    with pytest.raises(RuntimeError, match="only once"), mgr:
        pass
