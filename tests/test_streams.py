"""Every streaming helper, closed early, closes its upstream — started or not."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag import streams
from tests.fakes import Probe, tracked

HELPERS: dict[str, Callable[[Iterable[int]], Any]] = {
    "smap": lambda xs: streams.smap(lambda x: x + 1, xs),
    "sfilter": lambda xs: streams.sfilter(lambda x: True, xs),
    "flat_map": lambda xs: streams.flat_map(lambda x: [x, x], xs),
    "tap": lambda xs: streams.tap(lambda x: None, xs),
    "take": lambda xs: streams.take(50, xs),
    "batched": lambda xs: streams.batched(xs, 3),
    "chain": lambda xs: streams.chain(xs, iter([1])),
    "chain_from": lambda xs: streams.chain_from(streams.smap(lambda x: [x], xs)),
    "guard": streams.guard,
}


@pytest.mark.parametrize("started", [True, False], ids=["started", "never-started"])
@pytest.mark.parametrize("name", sorted(HELPERS))
def test_closing_a_helper_closes_its_upstream(name: str, started: bool) -> None:
    probe = Probe()
    source = tracked(range(100), probe)
    if not started:
        next(source)  # the upstream is live, the helper itself has not run yet
    stage = HELPERS[name](source)
    if started:
        next(stage)
    stage.close()
    assert probe.closed, f"{name} left its upstream open"


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_closing_closes_without_gc(name: str) -> None:
    keep: list[object] = []
    probe = Probe()
    gc.disable()
    try:
        source = tracked(range(100), probe)
        first = HELPERS["smap"](source)
        second = HELPERS[name](first)
        keep += [source, first, second]
        next(second)
        second.close()
        assert probe.closed
    finally:
        gc.enable()


def test_creating_stages_does_no_work() -> None:
    probe = Probe()
    source = tracked(range(10), probe)
    pipeline = streams.batched(streams.smap(str, streams.sfilter(bool, source)), 2)
    assert not probe.started
    pipeline.close()


@given(st.lists(st.integers()), st.integers(0, 20))
def test_helpers_are_equivalent_to_builtins(xs: list[int], n: int) -> None:
    assert list(streams.smap(abs, iter(xs))) == list(map(abs, xs))
    assert list(streams.sfilter(lambda x: x > 0, iter(xs))) == [x for x in xs if x > 0]
    assert list(streams.take(n, iter(xs))) == xs[:n]
    assert [x for b in streams.batched(iter(xs), max(n, 1)) for x in b] == xs
    assert list(streams.chain(iter(xs), iter(xs))) == xs + xs
    assert list(streams.guard(iter(xs))) == xs


def test_take_closes_upstream_before_handing_out_the_last_item() -> None:
    probe = Probe()
    it = streams.take(2, tracked(range(10), probe))
    assert next(it) == 0
    assert not probe.closed
    assert next(it) == 1
    assert probe.closed


def test_bad_arguments_raise_at_call_time() -> None:
    with pytest.raises(ValueError, match="take"):
        streams.take(-1, [])
    with pytest.raises(ValueError, match="batched"):
        streams.batched([], 0)


def test_stage_close_runs_every_upstream_close_and_raises_the_first_failure() -> None:
    class Bad:
        def __iter__(self) -> Bad:
            return self

        def __next__(self) -> int:
            raise StopIteration

        def close(self) -> None:
            raise OSError("upstream close failed")

    probe = Probe()
    source = tracked(range(3), probe)
    next(source)
    stage = streams.chain(source, Bad())
    with pytest.raises(OSError, match="upstream close failed"):
        stage.close()
    assert probe.closed
