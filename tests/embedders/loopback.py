"""A tiny threaded HTTP/1.1 server on a loopback socket that misbehaves on purpose.

`funcpipe serve` is a well-behaved server with fault flags; the attacks here (a body
dripped a byte at a time, an endless chunked answer, a lying Content-Length, a
redirect to another host) need control over every byte sent, so each test writes its
answer with raw ``sendall`` calls in a ``respond(request, reply)`` function. Every
connection gets one request and is closed after the answer (``Connection: close``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Reply:
    """The socket of one answer; ``send`` reports whether the client still listens."""

    def __init__(self, sock: socket.socket, server: LoopbackServer) -> None:
        self._sock = sock
        self._server = server

    @property
    def stopping(self) -> bool:
        return self._server.stopping.is_set()

    def send(self, data: bytes) -> bool:
        if self.stopping:
            return False
        try:
            self._sock.sendall(data)
        except OSError:
            return False
        self._server.add_sent(len(data))
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep, unless the server stops first (then False)."""
        return not self._server.stopping.wait(seconds)

    def head(self, status: int, headers: dict[str, str] | None = None) -> bool:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        return self.send(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode())

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        all_headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if self.head(status, {**all_headers, **(headers or {})}):
            self.send(body)

    def json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self.answer(status, json.dumps(doc).encode(), headers)


Respond = Callable[[Request, Reply], None]


@dataclass
class LoopbackServer:
    respond: Respond
    requests: list[Request] = field(default_factory=list)
    sent: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def add_sent(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(10)
            try:
                request = _read_request(sock)
            except (OSError, ValueError):
                return
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            # The answer runs until it ends or the client goes away; socket errors are
            # how a client's refusal shows here, and are the point of the test.
            with contextlib.suppress(OSError):
                self.respond(request, Reply(sock, self))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopping.set()
        self._accepting.join(timeout=10)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]


def _read_request(sock: socket.socket) -> Request | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            return None
        body += data
    return Request(method, path, headers, body)


@contextlib.contextmanager
def loopback(respond: Respond) -> Iterator[LoopbackServer]:
    server = LoopbackServer(respond)
    try:
        yield server
    finally:
        server.stop()


def unit_vector(i: int, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    return v


def openai_answer(request: Request, *, base64_ok: bool = True, dim: int = 8) -> dict[str, Any]:
    """A valid OpenAI answer to ``request``, in the encoding it asked for when allowed."""
    doc = request.json()
    as_b64 = base64_ok and doc.get("encoding_format") == "base64"
    data = []
    for i, _ in enumerate(doc["input"]):
        vec = unit_vector(i, dim)
        emb: Any = vec
        if as_b64:
            emb = base64.b64encode(np.array(vec, "<f4").tobytes()).decode()
        data.append({"index": i, "embedding": emb})
    return {"data": data, "model": doc.get("model")}


# -- hostile answers ---------------------------------------------------------------

DRIP_EVERY_S = 0.2
# Safety limits for a client that does not defend itself (the code before the fix):
# the test then fails on its assertions instead of filling the machine's memory.
DRIP_MAX_BYTES = 100
ENDLESS_MAX_BYTES = 300 << 20
JUNK = (b"0.123456789, " * 5100)[:65536]  # the inside of a never-ending vector
OPENING = b'{"data": [{"index": 0, "embedding": ['


def drip(*, from_status_line: bool) -> Respond:
    """An answer sent one byte every 0.2 s: from its first byte, or after the headers."""

    def respond(request: Request, reply: Reply) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        if not from_status_line and not reply.send(head):
            return
        payload = (head if from_status_line else b"") + b'{"data": [' + b" " * 1000
        for byte in payload[:DRIP_MAX_BYTES]:
            if not reply.send(bytes([byte])) or not reply.wait(DRIP_EVERY_S):
                return

    return respond


def endless_chunked(request: Request, reply: Reply) -> None:
    """A 200 whose chunked body never ends (until the client leaves, or 300 MB)."""
    if not reply.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}):
        return
    if not reply.send(b"%x\r\n%s\r\n" % (len(OPENING), OPENING)):
        return
    chunk = b"%x\r\n%s\r\n" % (len(JUNK), JUNK)
    sent = 0
    while sent < ENDLESS_MAX_BYTES and reply.send(chunk):
        sent += len(JUNK)
    reply.send(b"0\r\n\r\n")


def huge_content_length(request: Request, reply: Reply) -> None:
    """A 200 announcing 200 MB, then sending it as fast as the client reads."""
    size = 200 << 20
    if not reply.head(200, {"Content-Type": "application/json", "Content-Length": str(size)}):
        return
    if not reply.send(OPENING):
        return
    sent = len(OPENING)
    while sent < size and reply.send(JUNK[: size - sent]):
        sent += len(JUNK)
