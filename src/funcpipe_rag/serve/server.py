"""The embedding server's lifecycle: bind, accept within a connection cap, stop.

:class:`EmbeddingServer` runs the standard library's ``ThreadingHTTPServer`` on a
background thread, one handler thread per admitted connection. Its :meth:`stop` is
prompt and leak-free even while requests stall and keep-alive clients idle: it stops
accepting, closes the listening socket, shuts down every open connection, releases
stalled handlers and joins the threads.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from ..embedders.hashing import HashEmbedder
from ..errors import ConfigError, ResourceClosedError
from .codec import error_body
from .faults import FaultConfig
from .handler import POLL_S, Context, Handler
from .limits import ServerLimits
from .sockets import refuse_connection
from .state import ServerState, ServerStats

__all__ = ["EmbeddingServer"]

_JOIN_S: Final = 2.0
_RETRY_AFTER_S: Final = 1


def _overloaded_answer() -> bytes:
    body = error_body(
        None, "too many open connections; retry later", kind="server_error",
        code="server_overloaded",
    )  # fmt: skip
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {_RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_OVERLOADED: Final = _overloaded_answer()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], context: Context) -> None:
        self.context = context
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also calls socket.getfqdn(), a reverse DNS lookup that
        # can take seconds on a badly configured host; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        state = self.context.state
        if not state.admit(request):
            # At the cap: answer at once on the accept thread and close, so the extra
            # connection holds neither a thread nor a slot.
            refuse_connection(request, _OVERLOADED)
            super().shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._run_handler,
            args=(request, client_address),
            name=f"funcpipe-serve-conn:{client_address[1]}",
            daemon=True,
        )
        state.handler_started(thread)
        thread.start()

    def _run_handler(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.context.state.handler_done(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        self.context.state.connection_closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exception()
        if not isinstance(exc, OSError):  # a closed or reset connection is routine
            trace = "".join(traceback.format_exception(exc)) if exc else "handler error"
            self.context.state.log(trace)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class EmbeddingServer:
    """A running embedding server on a background thread.

    ``port=0`` picks a free port (read it from :attr:`port` after :meth:`start`).
    ``limits`` bound what one request may ask and how long a client may take
    (:class:`ServerLimits`; finite by default). ``on_log`` receives one line per
    request (none by default). The server has no authentication: :attr:`loopback`
    says whether only this machine can reach it. :meth:`stop` is idempotent and
    prompt even with stalled requests and idle keep-alive clients: it stops accepting,
    closes the listening socket, shuts down every open connection, releases stalled
    handlers and joins the threads. Example::

        with EmbeddingServer(faults=FaultConfig(fail_first=1, status=429)) as server:
            httpx.post(f"{server.url}/api/embed", json={"model": "m", "input": "hi"})
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dim: int = 384,
        faults: FaultConfig | None = None,
        limits: ServerLimits | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an integer in [0, 65535], got {port!r}")
        if not host:
            raise ConfigError("host must not be empty")
        self._address = (host.strip("[]"), port)
        state = ServerState(
            faults=faults or FaultConfig(), limits=limits or ServerLimits(), on_log=on_log
        )
        self._context = Context(state, HashEmbedder(dim=dim), int(time.time()))
        self._lock = threading.Lock()
        # Invariant: _httpd and _thread are set exactly while the state is RUNNING.
        self._state = _State.NEW
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None

    def start(self) -> EmbeddingServer:
        """Bind, listen and serve on a background thread; raises OSError if the bind fails."""
        with self._lock:
            if self._state is _State.STOPPED:
                raise ResourceClosedError("the embedding server is stopped")
            if self._state is _State.RUNNING:
                raise RuntimeError("the embedding server is already running")
            httpd = _HTTPServer(self._address, self._context)
            host, port = httpd.server_address[:2]
            self._bound = (str(host), int(port))
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": POLL_S},
                name=f"funcpipe-serve:{port}",
                daemon=True,
            )
            self._httpd = httpd
            self._thread.start()
            self._state = _State.RUNNING
        return self

    @property
    def port(self) -> int:
        """The bound port (the real one when created with ``port=0``)."""
        if self._bound is None:
            raise RuntimeError("the embedding server has not been started")
        return self._bound[1]

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:8088``; OpenAI clients append ``/v1``."""
        host = self._address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether the bound address is a loopback one, reachable only from this machine."""
        if self._bound is None:
            raise RuntimeError("the embedding server has not been started")
        address = ipaddress.ip_address(self._bound[0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    @property
    def dim(self) -> int:
        return self._context.embedder.dim

    @property
    def limits(self) -> ServerLimits:
        return self._context.state.limits

    def stats(self) -> ServerStats:
        """A snapshot of the counters; also served as ``GET /stats`` and valid after stop()."""
        return self._context.state.stats()

    def stop(self) -> None:
        """Stop serving and release every socket and thread; safe to call twice."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._state, self._httpd, self._thread = _State.STOPPED, None, None
        if httpd is None or thread is None:
            return
        state = self._context.state
        state.stopping.set()  # wakes stalled, delayed and lingering handlers
        httpd.shutdown()  # the accept loop ends within one poll interval
        httpd.server_close()
        state.close_connections()
        thread.join()
        state.join_handlers(_JOIN_S)

    def __enter__(self) -> EmbeddingServer:
        if self._state is not _State.RUNNING:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._bound else f"{self._address[0]}:{self._address[1]}"
        return f"EmbeddingServer({where}, {self._state.value})"
