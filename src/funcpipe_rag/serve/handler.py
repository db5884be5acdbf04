"""One HTTP connection of the embedding server: read phases, routes, embedding.

Each request goes through three timed phases (:class:`ServerLimits`): waiting for its
first byte (``idle_timeout`` on a kept-alive connection, ``header_timeout`` on a new
one), its request line and headers (``header_timeout``, at most 64 KiB), and its body
(``body_timeout``, at most ``max_body_bytes`` by ``Content-Length``, checked before a byte
of it is read). Then the route runs: an embed request is read within the limits
(:mod:`.codec`), its fault decided (:mod:`.faults`), and answered.
"""

from __future__ import annotations

import contextlib
import io
import json
import selectors
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final, Protocol, cast
from urllib.parse import unquote

from ..embedders.hashing import HashEmbedder
from .codec import (
    EMBED_ROUTES,
    Api,
    BadRequest,
    encode,
    error_body,
    model_doc,
    models_doc,
    parse_embed,
)
from .limits import LimitExceeded, TimeoutKind
from .sockets import DeadlineReader, HeadTooLarge, ResponseWriter, WriteTimeout, linger
from .state import ServerState

__all__ = ["POLL_S", "Context", "Handler"]

POLL_S: Final = 0.05  # stall loop (and serve loop) wake-up interval: bounds stop() latency
_MAX_HEAD: Final = 64 * 1024  # request line and headers, in bytes
_READ_AHEAD: Final = 8 * 1024  # the buffered reader may take this much of a body early
_LINGER_S: Final = 5.0  # how long a refused body may keep arriving, to be discarded
_GET_ROUTES: Final = ("/health", "/stats", "/v1/models")
_MODEL_PREFIX: Final = "/v1/models/"


@dataclass(frozen=True)
class Context:
    """What every handler of one server shares."""

    state: ServerState
    embedder: HashEmbedder
    created: int  # Unix time the server was created: the "created" of its models


def _is_model_route(route: str) -> bool:
    return route.startswith(_MODEL_PREFIX) and len(route) > len(_MODEL_PREFIX)


class _HasContext(Protocol):
    context: Context


class _Answered(Exception):
    """The request was answered, or its client lost, before its route ran."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "funcpipe-serve"
    sys_version = ""

    def setup(self) -> None:
        self.connection = self.request
        limits = self._state.limits
        # Invariant: _reader.deadline is the end of the phase _phase; _started says whether
        # a byte of the current request has arrived (a 408 is owed only then).
        self._reader = DeadlineReader(self.connection, time.monotonic() + limits.header_timeout)
        self._phase: TimeoutKind = "header"
        self._started = False
        self._requests = 0
        self._buffered = io.BufferedReader(self._reader)
        self.rfile = self._buffered
        self.wfile = ResponseWriter(self.connection, limits.body_timeout)

    @property
    def _context(self) -> Context:
        return cast(_HasContext, self.server).context

    @property
    def _state(self) -> ServerState:
        return self._context.state

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs one line per request instead, with the fault outcome

    def log_message(self, format: str, *args: Any) -> None:
        self._state.log(f"{self.address_string()} {format % args}")

    # -- reading a request in timed phases -------------------------------------------

    def handle_one_request(self) -> None:
        """Read and answer one request; the base class's, with deadlines and a head cap."""
        limits, reader = self._state.limits, self._reader
        self.command, self.requestline, self.request_version = "", "", self.protocol_version
        self._started = False
        if self._requests:  # kept alive; a new connection's deadline was set by setup()
            self._phase = "idle"
            reader.deadline = time.monotonic() + limits.idle_timeout
        reader.budget = _MAX_HEAD + _READ_AHEAD
        try:
            if not self._buffered.peek(1):
                self.close_connection = True  # the client closed (or stop() shut us down)
                return
            self._started, self._phase = True, "header"
            if self._requests:
                reader.deadline = time.monotonic() + limits.header_timeout
            self._requests += 1
            self.raw_requestline = self.rfile.readline(_MAX_HEAD + 1)
            if len(self.raw_requestline) > _MAX_HEAD:
                self.send_error(414, f"request line over {_MAX_HEAD} bytes")
                self._refuse_unread()
                return
            if not self.parse_request():
                return
            reader.budget = None
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_error(501, f"unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
        except HeadTooLarge:
            self.send_error(431, f"request line and headers over {_MAX_HEAD} bytes")
            self._refuse_unread()
        except WriteTimeout:
            self._state.record_timeout("write")
            self.close_connection = True
        except TimeoutError:
            self._timed_out()

    def _timed_out(self) -> None:
        self._state.record_timeout(self._phase)
        self.close_connection = True
        if self._started:  # a request began: say why it ends (never to a silent client)
            what = "body" if self._phase == "body" else "request line and headers"
            message = f"the request {what} did not arrive in time"
            with contextlib.suppress(OSError):
                self._reply(408, error_body(None, message, kind="timeout"))
                self.wfile.flush()

    def handle_expect_100(self) -> bool:
        if self._declared_length() > self._state.limits.max_body_bytes:
            return True  # the 413 from _read_body goes out instead of "100 Continue"
        ok = super().handle_expect_100()
        self.wfile.flush()  # the buffered writer would hold "100 Continue" back
        return ok

    def _declared_length(self) -> int:
        """``Content-Length`` as a number (0 when absent), or -1 when it is not one."""
        values = {v.strip() for v in self.headers.get_all("Content-Length") or ["0"]}
        value = values.pop() if len(values) == 1 else ""
        if not (value.isascii() and value.isdigit()):
            return -1  # int() would also take "+1", "1_0" and non-ASCII digits
        return int(value) if len(value) <= 18 else 10**18

    def _read_body(self, api: Api | None, route: str, t0: float) -> bytes:
        """The body by ``Content-Length``, within the size limit and the body deadline."""
        limits = self._state.limits
        if "Transfer-Encoding" in self.headers:
            self._error(411, "request bodies with a Transfer-Encoding are not supported", api)
            raise _Answered(self._refuse_unread())
        length = self._declared_length()
        if length < 0:
            self._error(400, "invalid Content-Length", api)
            raise _Answered(self._refuse_unread())
        if length > limits.max_body_bytes:
            self.close_connection = True  # the body stays unread
            message = (
                f"request body of {length} bytes is over the limit of {limits.max_body_bytes} bytes"
            )
            outcome = self._refuse(LimitExceeded("max_body_bytes", message), api, route, t0)
            raise _Answered(self._refuse_unread(outcome))
        self._phase = "body"
        self._reader.deadline = time.monotonic() + limits.body_timeout
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise _Answered("client gone")
        return body

    def _refuse_unread(self, outcome: str = "refused") -> str:
        """Close after this answer, letting the unread body arrive and be discarded."""
        self.close_connection = True
        self.wfile.flush()
        linger(self.connection, _LINGER_S, self._state.stopping)
        return outcome

    # -- answering ---------------------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        self._error(code, message or f"HTTP {code}", None)

    def _error(self, status: int, message: str, api: Api | None) -> None:
        self.close_connection = True
        self._reply(status, error_body(api, message, kind="http_error"))

    def _refuse(self, exc: LimitExceeded, api: Api | None, route: str, t0: float) -> str:
        self._state.record_refused(exc.kind, t0, route if api else None)
        body = error_body(api, str(exc), code=exc.openai_code)
        self._reply(exc.status(api), body)
        return f"limit:{exc.kind}"

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

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self) -> None:
        """Never answer: hold until stop() or until the client hangs up, then close."""
        state, sock = self._state, self.connection
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while not state.stopping.is_set():
                if not sel.select(POLL_S):
                    continue
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break  # the client gave up
                except OSError:
                    break
                state.stopping.wait(POLL_S)  # pipelined bytes: keep holding, don't spin
        self._drop()

    # -- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        t0 = time.monotonic()
        route = self.path.split("?", 1)[0]
        api = EMBED_ROUTES.get(route) if self.command == "POST" else None
        state = self._state
        state.count_request(embed=api is not None)
        try:
            body = self._read_body(api, route, t0)
        except _Answered as answered:
            outcome = answered.outcome
        else:
            try:
                outcome = self._embed(api, route, body, t0) if api else self._serve(route)
            except OSError:
                raise  # the client went away: the server's handle_error drops it quietly
            except Exception as exc:  # a bug here must still answer, not hang the client
                state.log("".join(traceback.format_exception(exc)))
                self.close_connection = True
                self._reply(500, error_body(api, f"internal error: {exc!r}", kind="server_error"))
                outcome = "error"
        state.log(f"{self.command} {route} {outcome} {1000 * (time.monotonic() - t0):.1f} ms")

    def _serve(self, route: str) -> str:
        """Every route but the embed ones: health, stats, models, and 404 / 405."""
        context = self._context
        if self.command == "GET":
            doc: Any = None
            if route == "/health":
                doc = {"status": "ok"}
            elif route == "/stats":
                doc = context.state.stats()
            elif route == "/v1/models":
                doc = models_doc([context.embedder.model], context.created)
            elif _is_model_route(route):
                # Any model name is served, so any model exists.
                doc = model_doc(unquote(route[len(_MODEL_PREFIX) :]), context.created)
            if doc is not None:
                self._reply(200, json.dumps(doc).encode())
                return "ok"
        allow = "POST" if route in EMBED_ROUTES else None
        if route in _GET_ROUTES or _is_model_route(route):
            allow = "GET"
        if allow is not None:
            message = error_body(None, f"use {allow} {route}", kind="http_error")
            self._reply(405, message, {"Allow": allow})
            return "status:405"
        message = error_body(None, f"no route for {self.command} {route}", kind="not_found")
        self._reply(404, message)
        return "status:404"

    def _embed(self, api: Api, route: str, body: bytes, t0: float) -> str:
        state = self._state
        try:
            req = parse_embed(api, body, state.limits)
        except LimitExceeded as exc:
            return self._refuse(exc, api, route, t0)
        except BadRequest as exc:
            state.record_invalid(t0, route)
            self._reply(400, error_body(api, str(exc)))
            return "invalid"
        plan = state.plan(t0, route, req.texts)
        latency = state.faults.latency_ms / 1000
        if latency > 0 and state.stopping.wait(latency):
            self._drop()  # the server is stopping: go away like a dying server would
            return "aborted"
        if plan.action == "drop":
            self._drop()
        elif plan.action == "stall":
            self._stall()
        elif plan.action == "reply":
            message = error_body(api, plan.message, kind=plan.error_type, code=plan.code)
            self._reply(plan.status, message, plan.headers)
        else:
            vectors = self._context.embedder.embed_texts(req.texts)
            self._reply(200, encode(req, vectors, plan.corrupt))
        return plan.outcome
