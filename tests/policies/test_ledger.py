from __future__ import annotations

import socket
import threading

from funcpipe_rag.policies.ledger import (
    ResourceLedger,
    current_ledger,
    os_snapshot,
    use_ledger,
)


def test_counts_by_kind_and_double_release_counts_once() -> None:
    ledger = ResourceLedger()
    a = ledger.acquire("file", "a")
    b = ledger.acquire("http_connection", "127.0.0.1:1")
    ledger.release(a)
    ledger.release(a)
    snap = ledger.snapshot()
    assert snap.by_kind["file"].to_jsonable() == {"acquired": 1, "released": 1, "open": 0}
    assert snap.by_kind["http_connection"].open == 1
    assert snap.open_total == 1
    assert snap.open_labels == (("http_connection", "127.0.0.1:1"),)
    ledger.release(b)
    assert ledger.snapshot().to_jsonable()["open_total"] == 0


def test_threads_acquire_and_release_concurrently() -> None:
    ledger = ResourceLedger()

    def work() -> None:
        for _ in range(1000):
            with ledger.tracking("worker"):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.snapshot().by_kind["worker"].acquired == 4000
    assert ledger.snapshot().open_total == 0


def test_use_ledger_sets_and_restores_the_current_one() -> None:
    before = current_ledger()
    mine = ResourceLedger()
    with use_ledger(mine):
        assert current_ledger() is mine
    assert current_ledger() is before


def test_os_snapshot_sees_a_real_socket_and_thread() -> None:
    before = os_snapshot()
    sock = socket.socket()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        during = os_snapshot()
        assert during.sockets == before.sockets + 1
        assert during.fds >= before.fds + 1
        assert during.threads == before.threads + 1
    finally:
        stop.set()
        t.join()
        sock.close()
    after = os_snapshot()
    assert (after.sockets, after.fds, after.threads) == (before.sockets, before.fds, before.threads)
