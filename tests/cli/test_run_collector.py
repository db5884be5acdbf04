"""The ingest command freezes the startup heap for the garbage collector during its run
and undoes it after, on every path (the command may run inside this very test process)."""

from __future__ import annotations

import contextlib
import gc

import pytest

from funcpipe_rag.cli.ingest import run_collector


@pytest.mark.parametrize("fails", [False, True])
def test_the_startup_heap_is_frozen_during_the_run_and_thawed_after(fails: bool) -> None:
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    expected: contextlib.AbstractContextManager[object] = (
        pytest.raises(RuntimeError) if fails else contextlib.nullcontext()
    )
    with expected, run_collector():
        assert gc.get_freeze_count() > before[1]  # the startup heap is not scanned
        if fails:
            raise RuntimeError("the run failed")
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
