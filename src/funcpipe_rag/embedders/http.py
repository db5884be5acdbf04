"""Embedding over HTTP: one long-lived, counted ``httpx.Client`` per run.

:class:`HttpEmbedder` speaks the OpenAI-compatible, Ollama and TEI wire formats
(:mod:`.protocols`). Its pool holds at most ``concurrency`` keep-alive connections,
each counted in the ledger (:mod:`.transport`). Timeouts are explicit (connect, read,
write, pool).

Bounds, per batch: the retry budget (``retry_budget`` seconds, waits and attempts
together, splits included) is also every request's total deadline — each socket
operation is cut to what is left of it (:mod:`.transport`), so a server that sends one
byte every few seconds is cut off at the deadline (``EMBED/DEADLINE``), not after one
read timeout per byte. Each answer is read in a streaming way and refused past its size
cap (``max_answer_mb``, or sized from the batch: :func:`.answers.answer_cap`), at the
``Content-Length`` header when it says so (``EMBED/TOO_BIG_ANSWER``).

Failures, per batch (codes and messages: :mod:`.failures`):

* retried with exponential backoff and jitter: 408, 429, 5xx, connect errors,
  timeouts and dropped connections; ``Retry-After`` (seconds or an HTTP date) is
  honoured up to a cap. Attempts stop at ``max_attempts`` or when the retry budget is
  spent;
* not retried: 400, 401, 403, 404 (with a hint naming the URL tried and the route
  expected), 422, redirects (``EMBED/REDIRECT``: following one could send the API key
  to another host), answers over the cap and malformed answers;
* split: a 413, or a context-length error, halves the batch down to the one
  offending input, which alone fails (``EMBED/TOO_LARGE``, ``EMBED/CONTEXT_LENGTH``);
* OpenAI protocol: vectors are asked for as base64 (what the official SDK does; about
  4x cheaper to decode). A server answering floats anyway is fine; one refusing
  ``encoding_format`` (a 400 or 422 naming it) gets the batch again as float, and float
  is used for the rest of the run.

:meth:`HttpEmbedder.cancel_inflight` shuts the live sockets down, so requests blocked on
a stalled server fail at once and no retry starts; the embedding stage calls it when it
is closed early. The API key is sent as a bearer token and appears nowhere else — not
in ``repr``, errors or reports; user-info in the URL is never shown either
(:mod:`.urls` says which credential is sent when both exist).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Sequence

import httpx
import numpy as np

from ..errors import ConfigError, EmbeddingUnavailableError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..policies.retries import Clock, RetryPolicy
from ..result import Err, ErrInfo, Ok, Result
from . import wirejson
from .answers import (
    ERROR_BODY_CAP,
    AnswerTooBig,
    BadEncoding,
    DeadlinePassed,
    answer_cap,
    read_answer,
)
from .failures import (
    SPLITTABLE_CODES,
    Peer,
    deadline_error,
    is_retryable,
    redirect_error,
    status_error,
    too_big_error,
    transport_error,
)
from .protocols import PROTOCOLS, BadAnswer, Vector, check_dims
from .transport import Deadline, TrackingBackend, TrackingTransport, deadline_scope
from .urls import ServerUrl

# The request body is encoded here (:mod:`.wirejson`), not by httpx's ``json=``.
_JSON = {"Content-Type": "application/json"}


def _gave_up(err: ErrInfo, attempts: int, why: str) -> Err[ErrInfo]:
    return Err(
        dataclasses.replace(
            err, stage="embed", ctx={**err.ctx, "attempts": attempts, "gave_up": why}
        )
    )


class _AbortableClock:
    """The real clock, whose waits end early when the embedder is cancelled."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self._event.wait(seconds)


class HttpEmbedder:
    """A client for one embedding server; thread-safe; ``close()`` is idempotent.

    ``url`` is the server's base URL (for the OpenAI protocol a trailing ``/v1`` is
    accepted too); ``max_answer_mb`` 0 sizes the answer cap from each request.
    """

    def __init__(
        self,
        *,
        protocol: str,
        url: str,
        model: str,
        ledger: ResourceLedger,
        api_key: str | None = None,
        concurrency: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        encoding_format: str = "base64",
        max_answer_mb: float = 0.0,
        max_batch_bytes: int = 1 << 20,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown embedding protocol {protocol!r}")
        self._protocol = PROTOCOLS[protocol]
        self._url = ServerUrl.parse(url, self._protocol.path, strip_v1=protocol == "openai")
        if protocol in ("openai", "ollama") and not model:
            raise ConfigError(f"--embedder {protocol} needs --model (the server's model name)")
        if encoding_format not in ("float", "base64"):
            raise ConfigError(f"encoding_format must be float or base64, got {encoding_format!r}")
        if max_answer_mb < 0:
            raise ConfigError(f"max_answer_mb must be >= 0, got {max_answer_mb}")
        self.name = protocol
        self.model = model or "default"
        # Batches in flight at once: the embedding stage runs this many on worker
        # threads, and the pool keeps as many keep-alive connections.
        self.concurrency = concurrency
        self._endpoint = self._url.endpoint
        self._encoding = encoding_format
        self._encoding_lock = threading.Lock()
        self._max_answer_mb = max_answer_mb
        self._max_batch_bytes = max_batch_bytes
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._retry = (
            retry
            if retry is not None
            else RetryPolicy(max_attempts=4, max_delay=8.0, max_elapsed=45.0)
        )
        self._cancel = threading.Event()
        self._clock: Clock = clock if clock is not None else _AbortableClock(self._cancel)
        self._rng = rng if rng is not None else random.Random()
        self._rng_lock = threading.Lock()
        self._dim_lock = threading.Lock()
        # Invariant: 0 until the first valid answer (or the index) fixes the dimension;
        # never changes afterwards.
        self.dim = 0
        self._ledger = ledger
        self._backend = TrackingBackend(ledger, protocol)
        limits = httpx.Limits(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=30.0,
        )
        headers, self.credential = self._url.auth_header(api_key)
        self._peer = Peer(
            shown=self._url.shown,
            protocol=protocol,
            route=self._url.route,
            credential=self.credential,
            budget_s=self._retry.max_elapsed,
            secrets=self._url.secrets(api_key),
        )
        # Uncompressed answers: their size is what the cap measures (see .answers).
        headers["Accept-Encoding"] = "identity"
        # A test may pass httpx.MockTransport for answers no real server gives on demand.
        # Redirects are never followed (httpx's default, stated because it matters).
        self._client = httpx.Client(
            transport=transport or TrackingTransport(limits=limits, backend=self._backend),
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
        )
        self._handle = ledger.acquire(
            "http_client", f"{protocol} {self._url.shown} (credential: {self.credential})"
        )
        self._closed = False

    def __repr__(self) -> str:  # never shows the API key or the URL's user-info
        return (
            f"HttpEmbedder(protocol={self.name!r}, endpoint={self._url.shown!r}, "
            f"model={self.model!r}, credential={self.credential!r})"
        )

    @property
    def encoding_format(self) -> str:
        """``base64`` or ``float``: what the next OpenAI request asks for."""
        with self._encoding_lock:
            return self._encoding

    def expect_dim(self, dim: int) -> None:
        """Fix the dimension in advance (from the index); answers of another size fail."""
        with self._dim_lock:
            if self.dim and self.dim != dim:
                raise ConfigError(
                    f"the server answers {self.dim}-d vectors, the index holds {dim}-d"
                )
            self.dim = dim

    # -- one batch -----------------------------------------------------------------

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        """One result per text, in order; safe to call from several threads.

        The whole call — byte-size slices, 413 splits, retries — fits in one retry budget.
        """
        if self._closed:
            raise ResourceClosedError("the embedding client is closed")
        deadline = self._clock.monotonic() + self._retry.max_elapsed
        out: list[Result[Vector, ErrInfo]] = []
        start = 0
        while start < len(texts):
            end, size = start, 0
            while end < len(texts) and (
                end == start or size + len(texts[end]) * 4 <= self._max_batch_bytes
            ):
                size += len(texts[end]) * 4  # a bound on UTF-8 bytes, without encoding twice
                end += 1
            out.extend(self._embed_slice(texts[start:end], deadline))
            start = end
        return out

    def embed_query(self, text: str) -> Vector:
        """One query, with the bounds of a batch (timeouts, retry budget as its total
        deadline, answer cap), normalised to unit length (servers need not normalise)."""
        (result,) = self.embed_batch([text])
        if isinstance(result, Err):
            raise EmbeddingUnavailableError(f"cannot embed the query: {result.error.msg}")
        vector: Vector = result.value / max(float(np.linalg.norm(result.value)), 1e-12)
        return vector

    def _embed_slice(self, texts: Sequence[str], deadline: float) -> list[Result[Vector, ErrInfo]]:
        outcome = self._with_retries(texts, deadline)
        if isinstance(outcome, Ok):
            return [Ok(v) for v in outcome.value]
        err = outcome.error
        if err.code in SPLITTABLE_CODES and len(texts) > 1:
            mid = len(texts) // 2
            return self._embed_slice(texts[:mid], deadline) + self._embed_slice(
                texts[mid:], deadline
            )
        return [Err(err) for _ in texts]

    def _with_retries(self, texts: Sequence[str], deadline: float) -> Result[list[Vector], ErrInfo]:
        policy, clock = self._retry, self._clock
        attempt = 0
        fell_back = False
        while True:
            left = deadline - clock.monotonic()
            if left <= 0:  # spent by earlier slices or splits of the same batch
                err = self._peer.err(
                    "EMBED/DEADLINE",
                    f"the retry budget ({policy.max_elapsed:g} s) was spent before "
                    f"{self._url.shown} answered",
                )
                return _gave_up(err, attempt, "retry budget spent")
            attempt += 1
            outcome = self._request(texts, left)
            if isinstance(outcome, Ok):
                return outcome
            err = outcome.error
            if err.ctx.get("encoding_refused") and not fell_back:
                # The server does not take base64: this batch again as float, at once,
                # and float from now on (other threads see it at their next request).
                fell_back = True
                with self._encoding_lock:
                    self._encoding = "float"
                continue
            gave_up = ""
            delay = 0.0
            if self._cancel.is_set():
                gave_up = "cancelled"
            elif not is_retryable(err):
                gave_up = "not retryable"
            elif attempt >= policy.max_attempts:
                gave_up = "max attempts"
            else:
                with self._rng_lock:
                    delay = policy.delay_for(err, attempt, self._rng)
                if clock.monotonic() + delay >= deadline:
                    gave_up = "retry budget spent"
            if gave_up:
                return _gave_up(err, attempt, gave_up)
            clock.sleep(delay)

    def _request(self, texts: Sequence[str], left: float) -> Result[list[Vector], ErrInfo]:
        """One attempt; it ends within ``left`` seconds whatever the server does."""
        encoding = self.encoding_format
        body = wirejson.dumps(self._protocol.body(texts, self.model, encoding))
        timeout = httpx.Timeout(
            min(self._read_timeout, left),
            connect=min(self._connect_timeout, left),
            pool=min(self._read_timeout, left),
        )
        # The socket layer's deadline is real time, whatever clock paces the retries.
        deadline = Deadline(time.monotonic() + left)
        try:
            with (
                deadline_scope(deadline),
                self._client.stream(
                    "POST", self._endpoint, content=body, headers=_JSON, timeout=timeout
                ) as answer,
            ):
                return self._read(answer, len(texts), deadline, encoding)
        except httpx.HTTPError as exc:
            return Err(transport_error(self._peer, exc, deadline))

    def _read(
        self, answer: httpx.Response, n: int, deadline: Deadline, encoding: str
    ) -> Result[list[Vector], ErrInfo]:
        """Check and read one streamed answer (httpx errors are the caller's)."""
        status = answer.status_code
        peer = self._peer
        if 300 <= status < 400:
            return Err(redirect_error(peer, answer))
        failed = status >= 400
        # An error answer is read only for its message: its first bytes are enough.
        cap = ERROR_BODY_CAP if failed else answer_cap(n, self.dim, self._max_answer_mb)
        try:
            content = read_answer(answer, cap=cap, deadline=deadline, truncate=failed)
        except AnswerTooBig as exc:
            return Err(too_big_error(peer, status, exc))
        except DeadlinePassed as exc:
            return Err(deadline_error(peer, exc.received))
        except BadEncoding as exc:
            return Err(peer.err("EMBED/BAD_JSON", f"{peer.shown}: {exc}", status=status))
        if failed:
            text = content.decode("utf-8", "replace")
            return Err(status_error(peer, status, answer.headers, text, sent_encoding=encoding))
        try:
            vectors = self._protocol.parse(content, n)
            with self._dim_lock:
                self.dim = check_dims(vectors, self.dim)
        except BadAnswer as exc:
            return Err(peer.err(exc.code, f"{peer.shown}: {exc}", status=status))
        return Ok(vectors)

    # -- lifecycle -----------------------------------------------------------------

    def cancel_inflight(self) -> None:
        """Fail requests in flight now (their sockets are shut down) and stop retries."""
        self._cancel.set()
        self._backend.abort_all()

    def resume(self) -> None:
        """Allow new requests after :meth:`cancel_inflight` (for reuse in a library)."""
        self._cancel.clear()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        try:
            self._client.close()
        finally:
            self._ledger.release(self._handle)
