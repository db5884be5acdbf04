"""What the server knows while it runs: counters, the request log, open connections.

One :class:`ServerState` is shared by every handler thread and guarded by one lock, so
a fault decision and its log entry happen in one step and the log's order is the fault
schedule's order.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, TypedDict, cast

from .faults import FAULT_KINDS, FaultConfig, FaultSchedule, Plan
from .limits import LIMIT_KINDS, TIMEOUT_KINDS, LimitKind, ServerLimits, TimeoutKind

__all__ = ["LogEntry", "ServerState", "ServerStats"]

_LOG_SIZE: Final = 1000


class LogEntry(TypedDict):
    """One embed request: arrival time (``time.monotonic()``), inputs and outcome.

    ``outcome`` is ``"ok"``, ``"status:<code>"`` (an injected fault), ``"stall"``,
    ``"drop"``, ``"corrupt:<mode>"``, ``"invalid"`` (a 400 for a bad body) or
    ``"limit:<kind>"`` (refused by a :class:`ServerLimits` limit; ``n`` is then 0).
    """

    t: float
    n: int
    outcome: str
    route: str


class ServerStats(TypedDict):
    """Counters since the server was created.

    ``inputs`` counts texts embedded; ``connections_accepted`` the connections served
    (those refused over ``max_connections`` count in ``limits`` instead); ``limits``
    and ``timeouts`` count refusals by kind (``LIMIT_KINDS``, ``TIMEOUT_KINDS``).
    """

    requests: int
    embed_requests: int
    inputs: int
    connections_accepted: int
    connections_open: int
    faults: dict[str, int]
    limits: dict[str, int]
    timeouts: dict[str, int]
    request_log: list[LogEntry]


class ServerState:
    """The server's counters, fault schedule and live connections, under one lock."""

    def __init__(
        self,
        *,
        faults: FaultConfig,
        limits: ServerLimits,
        on_log: Callable[[str], None] | None,
    ) -> None:
        self.faults = faults
        self.limits = limits
        self.on_log = on_log
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._schedule = FaultSchedule(faults)
        # Invariant: _conns holds exactly the admitted sockets that no handler has closed
        # yet, and _handlers the handler threads that have not finished; both under _lock.
        self._conns: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._counts = {"requests": 0, "embed_requests": 0, "inputs": 0, "accepted": 0}
        self._faults = dict.fromkeys(FAULT_KINDS, 0)
        self._limits: dict[str, int] = dict.fromkeys(LIMIT_KINDS, 0)
        self._timeouts: dict[str, int] = dict.fromkeys(TIMEOUT_KINDS, 0)
        self._log: deque[LogEntry] = deque(maxlen=_LOG_SIZE)

    def log(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line)

    def count_request(self, *, embed: bool) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts["embed_requests"] += embed

    def record_invalid(self, t: float, route: str) -> None:
        with self._lock:
            self._log.append({"t": t, "n": 0, "outcome": "invalid", "route": route})

    def record_refused(self, kind: LimitKind, t: float, route: str | None) -> None:
        """Count a limit refusal; ``route`` (an embed route) also logs it."""
        with self._lock:
            self._limits[kind] += 1
            if route is not None:
                self._log.append({"t": t, "n": 0, "outcome": f"limit:{kind}", "route": route})

    def record_timeout(self, kind: TimeoutKind) -> None:
        with self._lock:
            self._timeouts[kind] += 1

    def plan(self, t: float, route: str, texts: list[str]) -> Plan:
        """Decide one valid embed request's fate and record it, in one locked step."""
        with self._lock:
            plan = self._schedule.decide(texts)
            if plan.kind != "ok":
                self._faults[plan.kind] += 1
            if plan.action == "embed":
                self._counts["inputs"] += len(texts)
            self._log.append({"t": t, "n": len(texts), "outcome": plan.outcome, "route": route})
        return plan

    def admit(self, sock: socket.socket) -> bool:
        """Register a new connection, or refuse it (False) at ``max_connections``."""
        with self._lock:
            if len(self._conns) >= self.limits.max_connections:
                self._limits["max_connections"] += 1
                return False
            self._conns.add(sock)
            self._counts["accepted"] += 1
            return True

    def connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)

    def handler_started(self, thread: threading.Thread) -> None:
        with self._lock:
            self._handlers.add(thread)

    def handler_done(self, thread: threading.Thread) -> None:
        with self._lock:
            self._handlers.discard(thread)

    def close_connections(self) -> None:
        """Shut down every open connection: blocked readers see EOF and end."""
        with self._lock:
            for sock in self._conns:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._handlers)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> ServerStats:
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "embed_requests": self._counts["embed_requests"],
                "inputs": self._counts["inputs"],
                "connections_accepted": self._counts["accepted"],
                "connections_open": len(self._conns),
                "faults": dict(self._faults),
                "limits": dict(self._limits),
                "timeouts": dict(self._timeouts),
                "request_log": [cast(LogEntry, dict(e)) for e in self._log],
            }
