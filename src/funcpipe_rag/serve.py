"""A local embedding server for tests, demos and ``leak-check`` (``funcpipe serve``).

Backed by the in-process :class:`HashEmbedder` (any model name is accepted and echoed),
it speaks three protocols over HTTP/1.1 keep-alive on the standard library's
``ThreadingHTTPServer``:

=======================  ==========================================================
``POST /v1/embeddings``  OpenAI-compatible; ``encoding_format`` float or base64
``POST /api/embed``      Ollama: ``{"model", "input"}`` -> ``{"model", "embeddings"}``
``POST /embed``          Hugging Face TEI: ``{"inputs"}`` -> a bare list of vectors
``GET /health``          ``{"status": "ok"}``
``GET /stats``           counters, faults and the last 1000 embed requests
=======================  ==========================================================

Faults (:class:`FaultConfig`) are decided per valid embed request from one seeded
``random.Random``, two draws per request, so the schedule of outcomes in arrival order
is reproducible. Usage accounting counts one character as one token.

Why every accepted socket gets ``TCP_NODELAY`` and the handler writes through a
buffer: ``BaseHTTPRequestHandler`` otherwise sends the headers and the body as two
small writes; Nagle's algorithm holds the second until the first is acknowledged, and
the client delays that ACK (40 ms on Linux), which adds ~40 ms to every keep-alive
answer (measured on loopback: 44 ms per small answer, 0.77 ms with either fix). One
buffered write per answer plus ``TCP_NODELAY`` removes it.

Why this module is past 500 lines (about 700): the three protocol codecs, the fault
engine and the socket lifecycle (a prompt, leak-free ``stop()`` while stalled and idle
keep-alive connections are open) share one handler and one lock and are only tested
together; each part is one class or a pair of functions, in that order.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import io
import json
import random
import selectors
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, TypedDict, cast

import numpy as np
import numpy.typing as npt

from .embedders.hashing import HashEmbedder
from .errors import ConfigError, ResourceClosedError

__all__ = [
    "CORRUPT_MODES",
    "FAULT_KINDS",
    "CorruptMode",
    "EmbeddingServer",
    "FaultConfig",
    "LogEntry",
    "ServerStats",
]

CorruptMode = Literal["bad-json", "wrong-count", "wrong-dim", "nan"]
CORRUPT_MODES: Final[tuple[CorruptMode, ...]] = ("bad-json", "wrong-count", "wrong-dim", "nan")
FAULT_KINDS: Final = ("status", "stall", "drop", "corrupt", "max_batch", "context_limit")

_LOG_SIZE: Final = 1000
_MAX_BODY: Final = 64 * 1024 * 1024
_POLL_S: Final = 0.05  # serve loop and stall loop wake-up interval: bounds stop() latency
_JOIN_S: Final = 2.0
_EMBED_ROUTES: Final = {"/v1/embeddings": "openai", "/api/embed": "ollama", "/embed": "tei"}
_GET_ROUTES: Final = ("/health", "/stats")


class LogEntry(TypedDict):
    """One embed request: arrival time (``time.monotonic()``), inputs and outcome.

    ``outcome`` is ``"ok"``, ``"status:<code>"`` (injected or limit), ``"stall"``,
    ``"drop"``, ``"corrupt:<mode>"`` or ``"invalid"`` (a 400 for a bad body).
    """

    t: float
    n: int
    outcome: str
    route: str


class ServerStats(TypedDict):
    """Counters since the server was created; ``inputs`` counts texts embedded."""

    requests: int
    embed_requests: int
    inputs: int
    connections_accepted: int
    connections_open: int
    faults: dict[str, int]
    request_log: list[LogEntry]


def _check_rate(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """What goes wrong, and how often; the default injects nothing.

    At most one fault applies to a request, checked in this order: ``fail_first``,
    then one draw split between ``drop_rate``, ``stall_rate`` and ``fail_rate`` (their
    sum must be <= 1), then ``max_batch`` (413), ``context_limit`` (400,
    ``context_length_exceeded``; one character counts as one token), then ``corrupt``
    (every request, or with probability ``corrupt_rate``). ``latency_ms`` delays every
    embed request. ``retry_after`` (seconds; fractions are sent as given, handy in
    tests) goes on injected ``status`` answers. Bad values raise :class:`ConfigError`.

    Examples::

        FaultConfig(fail_first=1, status=429, retry_after=2)  # one 429, then success
        FaultConfig(fail_rate=0.1, status=503, latency_ms=20, seed=7)
        FaultConfig(stall_rate=0.02, drop_rate=0.02, corrupt="nan", corrupt_rate=0.05)
    """

    fail_rate: float = 0.0
    status: int = 500
    retry_after: float | None = None
    fail_first: int = 0
    latency_ms: float = 0.0
    stall_rate: float = 0.0
    drop_rate: float = 0.0
    max_batch: int | None = None
    context_limit: int | None = None
    corrupt: CorruptMode | None = None
    corrupt_rate: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fail_rate", "stall_rate", "drop_rate", "corrupt_rate"):
            _check_rate(name, getattr(self, name))
        if self.fail_rate + self.stall_rate + self.drop_rate > 1.0 + 1e-9:
            raise ConfigError("fail_rate + stall_rate + drop_rate must not exceed 1")
        _check_count("status", self.status, 400)
        if self.status > 599:
            raise ConfigError(f"status must be an HTTP error code (400-599), got {self.status}")
        _check_count("fail_first", self.fail_first, 0)
        _check_count("max_batch", self.max_batch, 1)
        _check_count("context_limit", self.context_limit, 1)
        _check_count("seed", self.seed, -(2**63))
        for name in ("retry_after", "latency_ms"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value < 1e6):
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.corrupt is not None and self.corrupt not in CORRUPT_MODES:
            raise ConfigError(
                f"corrupt must be one of {', '.join(CORRUPT_MODES)}, got {self.corrupt!r}"
            )
        if self.corrupt_rate is not None and self.corrupt is None:
            raise ConfigError("corrupt_rate needs a corrupt mode")


class _BadRequest(Exception):
    """A request body the server refuses with 400."""


@dataclass(frozen=True)
class _EmbedRequest:
    api: str  # "openai" | "ollama" | "tei"
    texts: list[str]
    model: str
    base64: bool


@dataclass(frozen=True)
class _Plan:
    """What the handler does with one valid embed request."""

    action: Literal["embed", "reply", "drop", "stall"]
    outcome: str
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    corrupt: CorruptMode | None = None


def _error_body(
    message: str, *, kind: str = "invalid_request_error", code: str | None = None
) -> bytes:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def _texts(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not value:
            raise _BadRequest(f"'{key}' must not be an empty list")
        return cast(list[str], value)
    if value is None:
        raise _BadRequest(f"'{key}' is a required property")
    raise _BadRequest(f"'{key}' must be a string or a list of strings")


def _parse_embed(api: str, body: bytes) -> _EmbedRequest:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _BadRequest("request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _BadRequest("request body must be a JSON object")
    key = "inputs" if api == "tei" else "input"
    texts = _texts(doc.get(key), key)
    model = doc.get("model", "")
    if api != "tei" and (not isinstance(model, str) or not model):
        raise _BadRequest("'model' is required and must be a non-empty string")
    encoding = doc.get("encoding_format", "float") if api == "openai" else "float"
    if encoding not in ("float", "base64"):
        raise _BadRequest(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    return _EmbedRequest(api, texts, model if isinstance(model, str) else "", encoding == "base64")


def _encode(
    req: _EmbedRequest, vectors: npt.NDArray[np.float32], corrupt: CorruptMode | None
) -> bytes:
    if corrupt == "wrong-count":
        vectors = vectors[:-1]
    elif corrupt == "wrong-dim":
        vectors = vectors[:, :-1]
    elif corrupt == "nan":
        vectors = vectors.copy()
        vectors[0, 0] = np.nan
    tokens = sum(map(len, req.texts))
    doc: Any
    if req.api == "openai":
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                    if req.base64
                    else row.tolist()
                ),
            }
            for i, row in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        doc = {"object": "list", "data": data, "model": req.model, "usage": usage}
    elif req.api == "ollama":
        doc = {"model": req.model, "embeddings": vectors.tolist(), "prompt_eval_count": tokens}
    else:
        doc = vectors.tolist()
    # json emits the bare NaN token for a NaN float, which is what "nan" wants on the wire.
    out = json.dumps(doc, separators=(",", ":")).encode()
    return out[: len(out) // 2] if corrupt == "bad-json" else out


class _Core:
    """The server's state and fault decisions, shared by every handler thread."""

    def __init__(self, *, dim: int, faults: FaultConfig, on_log: Callable[[str], None] | None):
        self.embedder = HashEmbedder(dim=dim)
        self.faults = faults
        self.on_log = on_log
        self.stopping = threading.Event()
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        # Invariant: _conns holds exactly the accepted sockets that no handler has closed
        # yet, and _handlers the handler threads that have not finished; both under _lock.
        self._conns: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._valid_embeds = 0
        self._counts = {"requests": 0, "embed_requests": 0, "inputs": 0, "accepted": 0}
        self._faults = dict.fromkeys(FAULT_KINDS, 0)
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

    def plan(self, t: float, route: str, texts: list[str]) -> _Plan:
        """Decide one valid embed request's fate and record it, in one locked step."""
        f, n = self.faults, len(texts)
        with self._lock:
            u_fault, u_corrupt = self._rng.random(), self._rng.random()
            first = self._valid_embeds < f.fail_first
            self._valid_embeds += 1
            held = f.drop_rate + f.stall_rate
            if first or held <= u_fault < held + f.fail_rate:
                kind = "status"
            elif u_fault < f.drop_rate:
                kind = "drop"
            elif u_fault < held:
                kind = "stall"
            elif f.max_batch is not None and n > f.max_batch:
                kind = "max_batch"
            elif f.context_limit is not None and max(map(len, texts)) > f.context_limit:
                kind = "context_limit"
            elif f.corrupt is not None and (f.corrupt_rate is None or u_corrupt < f.corrupt_rate):
                kind = "corrupt"
            else:
                kind = "ok"
            plan = self._make_plan(kind, texts)
            if kind != "ok":
                self._faults[kind] += 1
            if plan.action == "embed":
                self._counts["inputs"] += n
            self._log.append({"t": t, "n": n, "outcome": plan.outcome, "route": route})
        return plan

    def _make_plan(self, kind: str, texts: list[str]) -> _Plan:
        f = self.faults
        if kind == "status":
            headers = {} if f.retry_after is None else {"Retry-After": f"{f.retry_after:g}"}
            body = _error_body(f"injected fault: HTTP {f.status}", kind="injected_fault")
            return _Plan("reply", f"status:{f.status}", f.status, body, headers)
        if kind in ("drop", "stall"):
            return _Plan(cast(Literal["drop", "stall"], kind), kind)
        if kind == "max_batch":
            message = f"batch of {len(texts)} inputs exceeds the maximum of {f.max_batch}"
            return _Plan("reply", "status:413", 413, _error_body(message, code="batch_too_large"))
        if kind == "context_limit":
            longest = max(range(len(texts)), key=lambda i: len(texts[i]))
            message = (
                f"This model's maximum context length is {f.context_limit} tokens, however you"
                f" requested {len(texts[longest])} tokens (input {longest}). Please reduce the"
                " length of the input."
            )
            body = _error_body(message, code="context_length_exceeded")
            return _Plan("reply", "status:400", 400, body)
        if kind == "corrupt":
            return _Plan("embed", f"corrupt:{f.corrupt}", corrupt=f.corrupt)
        return _Plan("embed", "ok")

    def connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.add(sock)
            self._counts["accepted"] += 1

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
        """Shut down every open connection: idle keep-alive readers see EOF and end."""
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
                "request_log": [cast(LogEntry, dict(e)) for e in self._log],
            }


class _ResponseWriter(io.BufferedIOBase):
    """Collects a whole answer and sends it with one ``sendall`` when flushed.

    ``BaseHTTPRequestHandler`` flushes after every request, so headers and body leave
    together whatever their size, instead of as a small header segment and a body.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._buf += data
        return len(data)

    def flush(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()  # cleared first: a failing send must not be retried by close()
            self._sock.sendall(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "funcpipe-serve"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.wfile = _ResponseWriter(self.connection)

    @property
    def _core(self) -> _Core:
        return cast(_HTTPServer, self.server).core

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs one line per request instead, with the fault outcome

    def log_message(self, format: str, *args: Any) -> None:
        self._core.log(f"{self.address_string()} {format % args}")

    def handle_expect_100(self) -> bool:
        ok = super().handle_expect_100()
        self.wfile.flush()  # the buffered writer would hold "100 Continue" back
        return ok

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._reply(code, _error_body(message or f"HTTP {code}", kind="http_error"))

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body by Content-Length, or None after answering / losing the client."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "chunked request bodies are not supported; send Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.send_error(400, "invalid Content-Length")
            return None
        if length > _MAX_BODY:
            self.send_error(413, f"request body over {_MAX_BODY} bytes")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self) -> None:
        """Never answer: hold until stop() or until the client hangs up, then close."""
        core, sock = self._core, self.connection
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while not core.stopping.is_set():
                if not sel.select(_POLL_S):
                    continue
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break  # the client gave up
                except OSError:
                    break
                core.stopping.wait(_POLL_S)  # pipelined bytes: keep holding, don't spin
        self._drop()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        t0 = time.monotonic()
        route = self.path.split("?", 1)[0]
        api = _EMBED_ROUTES.get(route)
        core = self._core
        core.count_request(embed=api is not None and self.command == "POST")
        body = self._read_body()
        if body is None:
            return
        outcome = "ok"
        try:
            if api is not None and self.command == "POST":
                outcome = self._embed(api, route, body, t0)
            elif route in _GET_ROUTES and self.command == "GET":
                doc: object = core.stats() if route == "/stats" else {"status": "ok"}
                self._reply(200, json.dumps(doc).encode())
            elif api is not None or route in _GET_ROUTES:
                allow = "GET" if route in _GET_ROUTES else "POST"
                self._reply(
                    405, _error_body(f"use {allow} {route}", kind="http_error"), {"Allow": allow}
                )
                outcome = "status:405"
            else:
                self._reply(
                    404, _error_body(f"no route for {self.command} {route}", kind="not_found")
                )
                outcome = "status:404"
        except OSError:
            raise  # the client went away: the server's handle_error drops it quietly
        except Exception as exc:  # a bug here must still answer, not hang the client
            core.log("".join(traceback.format_exception(exc)))
            self.close_connection = True
            self._reply(500, _error_body(f"internal error: {exc!r}", kind="server_error"))
            outcome = "error"
        core.log(f"{self.command} {route} {outcome} {1000 * (time.monotonic() - t0):.1f} ms")

    def _embed(self, api: str, route: str, body: bytes, t0: float) -> str:
        core = self._core
        try:
            req = _parse_embed(api, body)
        except _BadRequest as exc:
            core.record_invalid(t0, route)
            self._reply(400, _error_body(str(exc)))
            return "invalid"
        plan = core.plan(t0, route, req.texts)
        latency = core.faults.latency_ms / 1000
        if latency > 0 and core.stopping.wait(latency):
            self._drop()  # the server is stopping: go away like a dying server would
            return "aborted"
        if plan.action == "drop":
            self._drop()
        elif plan.action == "stall":
            self._stall()
        elif plan.action == "reply":
            self._reply(plan.status, plan.body, plan.headers)
        else:
            vectors = core.embedder.embed_texts(req.texts)
            self._reply(200, _encode(req, vectors, plan.corrupt))
        return plan.outcome


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], core: _Core) -> None:
        self.core = core
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also calls socket.getfqdn(), a reverse DNS lookup that
        # can take seconds on a badly configured host; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core.connection_opened(sock)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_handler,
            args=(request, client_address),
            name=f"funcpipe-serve-conn:{client_address[1]}",
            daemon=True,
        )
        self.core.handler_started(thread)
        thread.start()

    def _run_handler(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.core.handler_done(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        self.core.connection_closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exception()
        if not isinstance(exc, OSError):  # a closed or reset connection is routine
            self.core.log("".join(traceback.format_exception(exc)) if exc else "handler error")


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class EmbeddingServer:
    """A running embedding server on a background thread.

    ``port=0`` picks a free port (read it from :attr:`port` after :meth:`start`).
    ``on_log`` receives one line per request (none by default). :meth:`stop` is
    idempotent and prompt even with stalled requests and idle keep-alive clients: it
    stops accepting, closes the listening socket, shuts down every open connection,
    releases stalled handlers and joins the threads. Example::

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
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an integer in [0, 65535], got {port!r}")
        if not host:
            raise ConfigError("host must not be empty")
        self._address = (host.strip("[]"), port)
        self._core = _Core(dim=dim, faults=faults or FaultConfig(), on_log=on_log)
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
            httpd = _HTTPServer(self._address, self._core)
            host, port = httpd.server_address[:2]
            self._bound = (str(host), int(port))
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_S},
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
    def dim(self) -> int:
        return self._core.embedder.dim

    def stats(self) -> ServerStats:
        """A snapshot of the counters; also served as ``GET /stats`` and valid after stop()."""
        return self._core.stats()

    def stop(self) -> None:
        """Stop serving and release every socket and thread; safe to call twice."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._state, self._httpd, self._thread = _State.STOPPED, None, None
        if httpd is None or thread is None:
            return
        self._core.stopping.set()  # wakes stalled and delayed handlers
        httpd.shutdown()  # the accept loop ends within one poll interval
        httpd.server_close()
        self._core.close_connections()
        thread.join()
        self._core.join_handlers(_JOIN_S)

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
