"""An httpx transport whose every TCP connection is counted in the resource ledger.

httpx pools connections inside httpcore; nothing in httpx's public API says when a
socket opens or closes. :class:`TrackingBackend` is an httpcore network backend that
wraps each stream it connects: the ledger records ``http_connection`` acquired on
connect and released on close, so the leak report can show what the pool really did.

It also knows every live stream, so :meth:`TrackingBackend.abort_all` can shut their
sockets down: a request blocked in ``recv`` on a stalled server then fails at once
instead of waiting out its read timeout. That is how an early stop cancels in-flight
requests.

And it enforces a request's total deadline. httpx's timeouts are per operation: a
server sending one byte every few seconds never trips a 30 s read timeout, and could
hold a request forever. Inside :func:`deadline_scope` every connect, write and read of
the calling thread has its timeout cut to what is left until the deadline, so a
request ends at its deadline, whatever the server does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ..policies.ledger import Handle, ResourceLedger


@dataclass(slots=True)
class Deadline:
    """When the request in progress on this thread must end (``time.monotonic()``),
    and how many bytes it has received so far (to tell a silent server from a slow
    one)."""

    at: float
    received: int = 0

    def left(self) -> float:
        return self.at - time.monotonic()


# httpx's sync client does all the I/O of a request on the calling thread, so a context
# variable reaches the socket calls of exactly that request.
_CURRENT: ContextVar[Deadline | None] = ContextVar("funcpipe_http_deadline", default=None)
# Loopback and LAN window updates free at least this much, so a piece leaves in one send.
_WRITE_PIECE = 16 * 1024


@contextlib.contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Socket operations of this thread end by ``deadline.at`` while the scope is open."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def _cut(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the current deadline; raise ``expired`` when
    nothing is left."""
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout
    left = deadline.left()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _TrackedStream(httpcore.NetworkStream):
    def __init__(
        self, inner: httpcore.NetworkStream, backend: TrackingBackend, handle: Handle
    ) -> None:
        self._inner = inner
        self._backend = backend
        self._handle = handle
        self._closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))
        deadline = _CURRENT.get()
        if deadline is not None:
            deadline.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # httpcore restarts the timeout after every partial send, so a peer reading a
        # byte at a time could stretch one big write forever; small pieces, each cut
        # to the deadline, end it there.
        if len(buffer) <= _WRITE_PIECE:
            self._inner.write(buffer, _cut(timeout, httpcore.WriteTimeout))
            return
        view = memoryview(buffer)
        for at in range(0, len(view), _WRITE_PIECE):
            piece = bytes(view[at : at + _WRITE_PIECE])
            self._inner.write(piece, _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.close()
        finally:
            self._backend._forget(self)

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # The TLS stream wraps the same socket; keep one ledger entry for both.
        self._inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def abort(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            # Already closed or never connected: nothing in flight to wake.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TrackingBackend(httpcore.NetworkBackend):
    """``httpcore.SyncBackend`` plus a ledger entry per TCP connection."""

    def __init__(self, ledger: ResourceLedger, label: str) -> None:
        self._inner = httpcore.SyncBackend()
        self._ledger = ledger
        self._label = label
        self._lock = threading.Lock()
        # Invariant: _live holds exactly the streams connected and not yet closed.
        self._live: dict[int, _TrackedStream] = {}

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _cut(timeout, httpcore.ConnectTimeout)
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        handle = self._ledger.acquire("http_connection", f"{self._label} {host}:{port}")
        stream = _TrackedStream(inner, self, handle)
        with self._lock:
            self._live[id(stream)] = stream
        return stream

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported by funcpipe")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def _forget(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._live.pop(id(stream), None)
        self._ledger.release(stream._handle)

    def live(self) -> int:
        with self._lock:
            return len(self._live)

    def abort_all(self) -> None:
        """Shut down every live socket so blocked reads and writes fail now."""
        with self._lock:
            streams = list(self._live.values())
        for stream in streams:
            stream.abort()


class TrackingTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose pool connects through a :class:`TrackingBackend`.

    httpx builds its httpcore pool in ``__init__`` without a backend parameter, so the
    pool is rebuilt here with the same settings and our backend; a test checks that
    the ledger sees every connection.
    """

    def __init__(self, *, limits: httpx.Limits, backend: TrackingBackend) -> None:
        super().__init__(limits=limits, retries=0)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )
