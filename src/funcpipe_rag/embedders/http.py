"""Embedding over HTTP: one long-lived, counted ``httpx.Client`` per run.

:class:`HttpEmbedder` speaks the OpenAI-compatible, Ollama and TEI wire formats
(:mod:`.protocols`). Its pool holds at most ``concurrency`` keep-alive connections,
each counted in the ledger (:mod:`.transport`). Timeouts are explicit (connect, read,
write, pool).

Failures, per batch:

* retried with exponential backoff and jitter: 408, 429, 5xx, connect errors,
  timeouts and dropped connections; ``Retry-After`` (seconds or an HTTP date) is
  honoured up to a cap. Attempts stop at ``max_attempts`` or when the retry budget
  (``retry_budget`` seconds for the whole batch, waits and attempts together) is
  spent: each attempt's read timeout is cut to what is left of the budget, so a frozen
  server costs at most one budget per batch;
* not retried: 400, 401, 403, 404, 422 and malformed answers;
* split: a 413, or a context-length error, halves the batch down to the one
  offending input, which alone fails (``EMBED/TOO_LARGE``, ``EMBED/CONTEXT_LENGTH``).

:meth:`HttpEmbedder.cancel_inflight` shuts the live sockets down, so requests blocked on
a stalled server fail at once and no retry starts; the embedding stage calls it when it
is closed early. The API key is sent as a bearer token and appears nowhere else — not
in ``repr``, errors or reports.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..errors import ConfigError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..policies.retries import Clock, RetryPolicy
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from .protocols import PROTOCOLS, BadAnswer, Vector, check_dims
from .transport import TrackingBackend, TrackingTransport

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
RETRYABLE_CODES = frozenset({"EMBED/CONNECT", "EMBED/TIMEOUT", "EMBED/DROPPED"})
SPLITTABLE_CODES = frozenset({"EMBED/TOO_LARGE", "EMBED/CONTEXT_LENGTH"})
_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "maximum context",
    "too long",
    "too many tokens",
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retryable(err: ErrInfo) -> bool:
    if err.code in RETRYABLE_CODES:
        return True
    status = err.ctx.get("status")
    return isinstance(status, int) and status in RETRYABLE_STATUS


class _AbortableClock:
    """The real clock, whose waits end early when the embedder is cancelled."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self._event.wait(seconds)


class HttpEmbedder:
    """A client for one embedding server; thread-safe; ``close()`` is idempotent."""

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
        encoding_format: str = "float",
        max_batch_bytes: int = 1 << 20,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown embedding protocol {protocol!r}")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url must start with http:// or https://, got {url!r}")
        if protocol in ("openai", "ollama") and not model:
            raise ConfigError(f"--embedder {protocol} needs --model (the server's model name)")
        if encoding_format not in ("float", "base64"):
            raise ConfigError(f"encoding_format must be float or base64, got {encoding_format!r}")
        self.name = protocol
        self.model = model or "default"
        self._protocol = PROTOCOLS[protocol]
        self._endpoint = url.rstrip("/") + self._protocol.path
        self._encoding = encoding_format
        self._max_batch_bytes = max_batch_bytes
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._retry = retry if retry is not None else RetryPolicy(max_attempts=4, max_delay=8.0)
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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # A test may pass httpx.MockTransport for answers no real server gives on demand.
        self._client = httpx.Client(
            transport=transport or TrackingTransport(limits=limits, backend=self._backend),
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )
        self._handle = ledger.acquire("http_client", f"{protocol} {url}")
        self._closed = False

    def __repr__(self) -> str:  # never shows the API key
        return (
            f"HttpEmbedder(protocol={self.name!r}, endpoint={self._endpoint!r}, "
            f"model={self.model!r})"
        )

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
        """One result per text, in order; safe to call from several threads."""
        if self._closed:
            raise ResourceClosedError("the embedding client is closed")
        out: list[Result[Vector, ErrInfo]] = []
        start = 0
        while start < len(texts):
            end, size = start, 0
            while end < len(texts) and (
                end == start or size + len(texts[end]) * 4 <= self._max_batch_bytes
            ):
                size += len(texts[end]) * 4  # a bound on UTF-8 bytes, without encoding twice
                end += 1
            out.extend(self._embed_slice(texts[start:end]))
            start = end
        return out

    def _embed_slice(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        outcome = self._with_retries(texts)
        if isinstance(outcome, Ok):
            return [Ok(v) for v in outcome.value]
        err = outcome.error
        if err.code in SPLITTABLE_CODES and len(texts) > 1:
            mid = len(texts) // 2
            return self._embed_slice(texts[:mid]) + self._embed_slice(texts[mid:])
        return [Err(err) for _ in texts]

    def _with_retries(self, texts: Sequence[str]) -> Result[list[Vector], ErrInfo]:
        policy, clock = self._retry, self._clock
        start = clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            left = policy.max_elapsed - (clock.monotonic() - start)
            outcome = self._request(texts, read_timeout=max(0.05, min(self._read_timeout, left)))
            if isinstance(outcome, Ok):
                return outcome
            err = outcome.error
            gave_up = ""
            if self._cancel.is_set():
                gave_up = "cancelled"
            elif not is_retryable(err):
                gave_up = "not retryable"
            elif attempt >= policy.max_attempts:
                gave_up = "max attempts"
            else:
                with self._rng_lock:
                    delay = policy.delay_for(err, attempt, self._rng)
                if clock.monotonic() - start + delay >= policy.max_elapsed:
                    gave_up = "retry budget spent"
            if gave_up:
                return Err(
                    make_errinfo(
                        err.code,
                        err.msg,
                        stage="embed",
                        attempts=attempt,
                        gave_up=gave_up,
                        **err.ctx,
                    )
                )
            clock.sleep(delay)

    def _request(
        self, texts: Sequence[str], *, read_timeout: float
    ) -> Result[list[Vector], ErrInfo]:
        body = self._protocol.body(texts, self.model, self._encoding)
        timeout = httpx.Timeout(
            read_timeout, connect=self._connect_timeout, pool=self._read_timeout
        )
        where = f"{self._endpoint}"
        try:
            response = self._client.post(self._endpoint, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
            code = "EMBED/CONNECT" if kind == "connect" else "EMBED/TIMEOUT"
            return Err(make_errinfo(code, f"no {kind} from {where} within the timeout", exc=exc))
        except httpx.ConnectError as exc:
            return Err(make_errinfo("EMBED/CONNECT", f"cannot connect to {where}", exc=exc))
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            return Err(make_errinfo("EMBED/DROPPED", f"{where} dropped the connection", exc=exc))
        except httpx.HTTPError as exc:
            return Err(make_errinfo("EMBED/HTTP", f"request to {where} failed", exc=exc))
        status = response.status_code
        if status >= 400:
            return Err(self._status_error(response))
        try:
            vectors = self._protocol.parse(response.content, len(texts))
            with self._dim_lock:
                self.dim = check_dims(vectors, self.dim)
        except BadAnswer as exc:
            return Err(make_errinfo(exc.code, f"{where}: {exc}", status=status))
        return Ok(vectors)

    def _status_error(self, response: httpx.Response) -> ErrInfo:
        status = response.status_code
        text = response.text[:500]
        ctx: dict[str, Any] = {"status": status}
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            ctx["retry_after"] = retry_after
        if status == 413:
            return make_errinfo("EMBED/TOO_LARGE", "request too large (413)", **ctx)
        if status in (400, 422) and any(h in text.lower() for h in _CONTEXT_HINTS):
            return make_errinfo(
                "EMBED/CONTEXT_LENGTH", "input longer than the model's context", **ctx
            )
        return make_errinfo(
            f"EMBED/HTTP_{status}", f"{self._endpoint} answered {status}: {text[:200]}", **ctx
        )

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
