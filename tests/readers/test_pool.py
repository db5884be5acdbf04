"""The parser pool with real worker processes: limits that kill and replace a worker,
results equal to parsing in process, and nothing left behind on any way out.

Hangs, balloons and crashes are made deterministic by the worker's test hook
(``FUNCPIPE_TEST_PARSER_FAULT``); the compression bomb is a real PDF.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from funcpipe_rag.errors import ResourceClosedError
from funcpipe_rag.leakfaults import children, is_worker
from funcpipe_rag.policies.ledger import ResourceLedger, os_snapshot
from funcpipe_rag.readers import (
    ParseLimits,
    RawFile,
    extract_documents,
    read_file,
    read_files,
)
from funcpipe_rag.readers.isolated import FAULT_ENV
from funcpipe_rag.readers.pool import ProcessParserPool
from funcpipe_rag.result import Err, Ok
from funcpipe_rag.walk import iter_paths
from tests.readers.writers import write_bomb_pdf, write_docx, write_pdf

CHAPTERS = [("Intro", [("Why", "Because parsers can hang.")]),
            ("Usage", [("How", "Give it a time limit.")])]  # fmt: skip


def raw_of(path: Path, ledger: ResourceLedger) -> RawFile:
    (src,) = list(iter_paths([path]))
    assert isinstance(src, Ok)
    raw = read_file(src.value, ledger)
    assert isinstance(raw, Ok)
    return raw.value


def live_workers() -> list[int]:
    return [p for p in children(os.getpid()) if is_worker(p)]


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    return {
        "a": write_pdf(tmp_path / "a.pdf", CHAPTERS, title="A"),
        "b": write_pdf(tmp_path / "b.pdf", CHAPTERS[:1], title="B"),
        "c": write_docx(tmp_path / "c.docx", [("Heading 1", "Cee"), ("Normal", "Docx text.")]),
    }


@pytest.fixture
def ledger() -> Iterator[ResourceLedger]:
    before = os_snapshot()
    ledger = ResourceLedger()
    yield ledger
    after = os_snapshot()
    assert ledger.snapshot().open_total == 0, ledger.snapshot().open_labels
    assert (after.fds, after.children) == (before.fds, before.children)
    assert live_workers() == []


def test_no_worker_starts_until_a_file_needs_one(ledger: ResourceLedger) -> None:
    with ProcessParserPool(ParseLimits(), ledger) as pool:
        assert pool.started == 0 and live_workers() == []
    assert "parser_process" not in ledger.snapshot().by_kind


def test_pooled_results_equal_parsing_in_process(
    docs: dict[str, Path], ledger: ResourceLedger
) -> None:
    with ProcessParserPool(ParseLimits(), ledger) as pool:
        for path in docs.values():
            raw = raw_of(path, ledger)
            assert pool.takes(raw.reader)
            pooled = pool.result(pool.submit(raw))
            local = raw.reader.extract(raw, ledger)
            assert isinstance(pooled, Ok) and isinstance(local, Ok)
            assert pooled.value.document == local.value.document
            assert list(pooled.value.pieces) == list(local.value.pieces)
        assert pool.started <= pool.capacity  # workers are reused, not one per file
    counts = ledger.snapshot().by_kind["parser_process"]
    assert counts.acquired == counts.released == pool.started


def test_a_hanging_parser_is_killed_at_the_limit_and_replaced(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:*a.pdf")
    with ProcessParserPool(ParseLimits(timeout_s=1, workers=1), ledger) as pool:
        t0 = time.monotonic()
        got = pool.result(pool.submit(raw_of(docs["a"], ledger)))
        took = time.monotonic() - t0
        assert isinstance(got, Err) and got.error.code == "READ/TIMEOUT"
        assert "parse_timeout" in got.error.msg and got.error.ctx["doc_id"]
        assert 1 <= took < 20
        assert live_workers() == []  # killed and reaped, not left running
        nxt = pool.result(pool.submit(raw_of(docs["b"], ledger)))
        assert isinstance(nxt, Ok) and nxt.value.document.title == "B"
        assert pool.started == 2


def test_a_ballooning_parser_is_read_memory_and_replaced(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "balloon:*c.docx")
    with ProcessParserPool(ParseLimits(memory_mb=128, workers=1), ledger) as pool:
        got = pool.result(pool.submit(raw_of(docs["c"], ledger)))
        assert isinstance(got, Err) and got.error.code == "READ/MEMORY"
        assert "128 MiB" in got.error.msg
        nxt = pool.result(pool.submit(raw_of(docs["a"], ledger)))
        assert isinstance(nxt, Ok)
        assert pool.started == 2  # the worker that ran out of memory retired


def test_a_pdf_that_inflates_to_gigabytes_is_read_memory(
    tmp_path: Path, ledger: ResourceLedger
) -> None:
    bomb = write_bomb_pdf(tmp_path / "bomb.pdf", inflated_mib=2048)
    assert bomb.stat().st_size < 4 << 20
    with ProcessParserPool(ParseLimits(memory_mb=128, timeout_s=60), ledger) as pool:
        t0 = time.monotonic()
        got = pool.result(pool.submit(raw_of(bomb, ledger)))
        assert isinstance(got, Err) and got.error.code == "READ/MEMORY", got
        assert time.monotonic() - t0 < 30


def test_a_crashing_parser_is_read_crash(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash:*b.pdf")
    with ProcessParserPool(ParseLimits(workers=1), ledger) as pool:
        got = pool.result(pool.submit(raw_of(docs["b"], ledger)))
        assert isinstance(got, Err) and got.error.code == "READ/CRASH"
        assert "SIGSEGV" in got.error.msg


def test_closing_with_busy_parsers_kills_them_at_once(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:*")
    pool = ProcessParserPool(ParseLimits(timeout_s=600, workers=2), ledger)
    tickets = [pool.submit(raw_of(docs[k], ledger)) for k in ("a", "b")]
    assert len(live_workers()) == 2  # two parsers busy at once
    t0 = time.monotonic()
    pool.close()
    pool.close()  # idempotent
    assert time.monotonic() - t0 < 10
    assert live_workers() == []
    with pytest.raises(ResourceClosedError):
        pool.submit(raw_of(docs["c"], ledger))
    assert all(t.done for t in tickets)  # nobody waits for ever on a ticket


def test_ctrl_c_while_waiting_on_a_parser_leaves_nothing(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:*")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with (
            pytest.raises(KeyboardInterrupt),
            ProcessParserPool(ParseLimits(timeout_s=600), ledger) as pool,
        ):
            ticket = pool.submit(raw_of(docs["a"], ledger))
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            pool.result(ticket)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_extraction_through_the_pool_keeps_input_order(
    tmp_path: Path, ledger: ResourceLedger
) -> None:
    for i in range(6):
        if i % 2:
            write_pdf(tmp_path / f"{i}.pdf", [(f"Doc {i}", [("S", f"Text {i}.")])])
        else:
            (tmp_path / f"{i}.md").write_text(f"Text {i}.\n")
    with ProcessParserPool(ParseLimits(), ledger) as pool:
        stage = extract_documents(read_files(iter_paths([tmp_path]), ledger), ledger, pool)
        try:
            got = [r.value.document.source.path for r in stage if isinstance(r, Ok)]
        finally:
            stage.close()
    assert [Path(p).name for p in got] == [f"{i}.{'pdf' if i % 2 else 'md'}" for i in range(6)]


def test_closing_the_stage_early_then_the_pool_leaves_nothing(
    tmp_path: Path, ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        write_pdf(tmp_path / f"{i}.pdf", [(f"Doc {i}", [("S", f"Text {i}.")])])
    monkeypatch.setenv(FAULT_ENV, "hang:*1.pdf")
    with ProcessParserPool(ParseLimits(timeout_s=600), ledger) as pool:
        stage = extract_documents(read_files(iter_paths([tmp_path]), ledger), ledger, pool)
        first = next(stage)  # parsed ahead: the next file is in a worker, hanging
        assert isinstance(first, Ok)
        stage.close()
        assert len(live_workers()) == 2  # the stage borrowed the pool; the pool owns them


def test_workers_get_no_secrets_from_the_environment(
    docs: dict[str, Path], ledger: ResourceLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNCPIPE_API_KEY", "sk-run-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other-secret")
    monkeypatch.setenv(FAULT_ENV, "hang:*")
    with ProcessParserPool(ParseLimits(timeout_s=600, workers=1), ledger) as pool:
        pool.submit(raw_of(docs["a"], ledger))
        (pid,) = live_workers()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"sk-run-secret" not in environ and b"sk-other-secret" not in environ
    assert b"PATH=" in environ and FAULT_ENV.encode() in environ
