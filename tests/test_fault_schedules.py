"""A property over random fault schedules through the in-process pipeline: whichever
item, stage and exception (or real signal) ends the run, the ledger holds nothing open
and the process's descriptors, sockets and threads are back to their baseline."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcpipe_rag.ingest as ingest_module
from funcpipe_rag.config import RunSettings
from funcpipe_rag.errors import RunInterrupted
from funcpipe_rag.ingest import IngestRequest, ingest
from funcpipe_rag.leakcheck import LocalServer, write_builtin_corpus
from funcpipe_rag.policies.ledger import os_snapshot
from funcpipe_rag.streams import Stage


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_builtin_corpus(tmp_path_factory.mktemp("corpus") / "c", files=8, paragraphs=6)


@pytest.fixture(scope="module")
def flaky_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `funcpipe serve` in its own process (so its sockets are not ours), failing
    now and then: drops, 503s with Retry-After, slow answers."""
    flags = ["--drop-rate", "0.1", "--fail-rate", "0.1", "--status", "503",
             "--retry-after", "0.01", "--latency-ms", "2", "--seed", "5"]  # fmt: skip
    with LocalServer(tmp_path_factory.mktemp("srv"), *flags) as server:
        yield server.url


EXCEPTIONS: dict[str, Callable[[], BaseException]] = {
    "RuntimeError": lambda: RuntimeError("injected"),
    "KeyboardInterrupt": KeyboardInterrupt,
    "RunInterrupted": lambda: RunInterrupted(signal.SIGTERM),
    "OSError": lambda: OSError("injected disk error"),
}
STAGES = ("paths", "read", "chunk", "embed", "consumer", "signal")


def faulty(
    stage_fn: Callable[..., Stage[Any]], at: int, exc: Callable[[], BaseException]
) -> Callable[..., Stage[Any]]:
    """Wrap a stage factory so its stream raises ``exc()`` at item ``at``."""

    def make(*args: Any, **kwargs: Any) -> Stage[Any]:
        inner = stage_fn(*args, **kwargs)

        def gen() -> Iterator[Any]:
            for i, x in enumerate(inner):
                if i == at:
                    raise exc()
                yield x

        return Stage(gen(), (inner,))  # type: ignore[arg-type]

    return make


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stage=st.sampled_from(STAGES),
    at=st.integers(0, 80),
    exc_name=st.sampled_from(sorted(EXCEPTIONS)),
    remote=st.booleans(),
    early=st.booleans(),
)
def test_random_fault_schedules_leave_nothing_open(
    corpus: Path,
    flaky_server: str,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    at: int,
    exc_name: str,
    remote: bool,
    early: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    exc = EXCEPTIONS[exc_name]
    index = tmp_path_factory.mktemp("idx") / "x.db"
    embedder = {"embedder": "openai", "url": flaky_server, "model": "m"} if remote else {}
    run_settings = RunSettings(index=str(index), batch_size=8, concurrency=2, **embedder)  # type: ignore[arg-type]
    files = sorted(str(p) for p in corpus.rglob("*.md"))

    def paths() -> Iterator[str]:
        for i, f in enumerate(files):
            if stage == "paths" and i == at % len(files):
                raise exc()
            yield f

    with monkeypatch.context() as m:
        if stage in ("read", "chunk", "embed"):
            name = {"read": "extract_documents", "chunk": "iter_chunks", "embed": "embed_chunks"}[
                stage
            ]
            m.setattr(ingest_module, name, faulty(getattr(ingest_module, name), at, exc))
        seen = 0

        def consumer(_: object) -> bool:
            nonlocal seen
            seen += 1
            if seen == at:
                if stage == "consumer":
                    raise exc()
                if stage == "signal":
                    signal.raise_signal(signal.SIGINT)  # a real signal, handled by Python
                if early:
                    return False
            return True

        before = os_snapshot()
        summary = ingest(
            IngestRequest(path_list=paths(), settings=run_settings), on_result=consumer
        )
        after = os_snapshot()

    assert summary.ledger.open_total == 0, summary.ledger.open_labels
    assert summary.ledger.cleanup_failures == ()
    assert not summary.leaked
    assert (after.fds, after.sockets, after.threads) == (before.fds, before.sockets, before.threads)
    # Whatever was stored is really in the index.
    if summary.stats.chunks_stored:
        import sqlite3

        conn = sqlite3.connect(index)
        try:
            assert (
                conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                == summary.stats.chunks_stored
            )
        finally:
            conn.close()
