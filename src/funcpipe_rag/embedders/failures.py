"""What a failed embedding request means: its code, its message, whether to retry.

Every way a request to an embedding server fails becomes one ``ErrInfo`` here, with a
stable code and a message a user can act on: the URL tried (never with its user-info),
and for a 404 the route the protocol expects, for a 401 / 403 the credential that was
sent, for a redirect where it pointed. Text a server wrote, or an exception carries, is
scrubbed of the run's secrets: a server may echo a request back. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..result import ErrInfo, make_errinfo
from .answers import MIB, AnswerTooBig
from .transport import Deadline
from .urls import redact_url, scrub

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
# EMBED/DEADLINE comes at the end of the budget, so in practice it ends as "retry budget
# spent"; listing it keeps the reason honest.
RETRYABLE_CODES = frozenset({"EMBED/CONNECT", "EMBED/TIMEOUT", "EMBED/DROPPED", "EMBED/DEADLINE"})
SPLITTABLE_CODES = frozenset({"EMBED/TOO_LARGE", "EMBED/CONTEXT_LENGTH"})
_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "maximum context",
    "too long",
    "too many tokens",
)
_ENCODING_HINTS = ("encoding_format", "encoding format", "base64")


@dataclass(frozen=True, slots=True)
class Peer:
    """The server as error messages name it; holds no secret it would show."""

    shown: str  # the endpoint, redacted
    protocol: str
    route: str
    credential: str  # which credential is sent, in words
    budget_s: float
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def err(self, code: str, msg: str, exc: BaseException | None = None, **ctx: Any) -> ErrInfo:
        """An ``ErrInfo`` for ``msg`` (funcpipe's own words, which hold no secret) whose
        ``cause`` (an exception's text) is scrubbed of secrets."""
        err = make_errinfo(code, msg, exc=exc, **ctx)
        if err.cause is not None:
            err = dataclasses.replace(err, cause=scrub(err.cause, self.secrets))
        return err


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


def transport_error(peer: Peer, exc: httpx.HTTPError, deadline: Deadline) -> ErrInfo:
    """An httpx exception raised while sending or reading a request."""
    where = peer.shown
    if isinstance(exc, httpx.ConnectTimeout):
        return peer.err("EMBED/CONNECT", f"no connection to {where} in time", exc)
    if isinstance(exc, httpx.TimeoutException):
        # Bytes were arriving when the deadline cut the read off: slow, not silent.
        if deadline.received and deadline.left() <= 0:
            return deadline_error(peer, deadline.received)
        return peer.err("EMBED/TIMEOUT", f"no answer from {where} within the timeout", exc)
    if isinstance(exc, httpx.ConnectError):
        return peer.err("EMBED/CONNECT", f"cannot connect to {where}", exc)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return peer.err("EMBED/DROPPED", f"{where} dropped the connection", exc)
    return peer.err("EMBED/HTTP", f"request to {where} failed", exc)


def deadline_error(peer: Peer, received: int) -> ErrInfo:
    return peer.err(
        "EMBED/DEADLINE",
        f"{peer.shown} was still answering when the retry budget ({peer.budget_s:g} s) "
        f"ran out ({received} bytes received)",
        received=received,
    )


def too_big_error(peer: Peer, status: int, exc: AnswerTooBig) -> ErrInfo:
    how = "Content-Length" if exc.declared else "cut off after"
    return peer.err(
        "EMBED/TOO_BIG_ANSWER",
        f"{peer.shown}: the answer passes the {exc.cap / MIB:.1f} MiB cap ({how} {exc.size} "
        "bytes); raise max_answer_mb if the model's vectors really are that large",
        status=status,
        cap_bytes=exc.cap,
    )


def redirect_error(peer: Peer, answer: httpx.Response) -> ErrInfo:
    """A 3xx: named with its target, never followed (it could carry the API key away)."""
    location = answer.headers.get("Location", "")
    try:
        target = str(answer.url.join(location)) if location else ""
    except httpx.InvalidURL:
        target = location
    shown = redact_url(target) if target else "(no Location)"
    return peer.err(
        "EMBED/REDIRECT",
        f"{peer.shown} answered {answer.status_code} redirecting to {shown}; redirects are "
        "not followed (they could carry the API key to another host): give the final URL "
        "as --url",
        status=answer.status_code,
        location=shown,
    )


def status_error(
    peer: Peer, status: int, headers: Mapping[str, str], text: str, *, sent_encoding: str
) -> ErrInfo:
    """A 4xx or 5xx answer whose body (the first bytes of it) is ``text``.

    A 400 / 422 naming ``encoding_format`` to a base64 request is marked
    ``ctx["encoding_refused"]``: the caller asks again for floats.
    """
    lowered = text.lower()
    ctx: dict[str, Any] = {"status": status, "credential": peer.credential}
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is not None:
        ctx["retry_after"] = retry_after
    if status == 413:
        return peer.err("EMBED/TOO_LARGE", "request too large (413)", **ctx)
    if status in (400, 422):
        if sent_encoding == "base64" and any(h in lowered for h in _ENCODING_HINTS):
            ctx["encoding_refused"] = True
        elif any(h in lowered for h in _CONTEXT_HINTS):
            return peer.err("EMBED/CONTEXT_LENGTH", "input longer than the model's context", **ctx)
    # The server's words may echo what it was sent, credentials included.
    msg = f"{peer.shown} answered {status}: {scrub(text[:200], peer.secrets)}"
    if status == 404:
        base = "http://HOST:PORT" + ("[/v1]" if peer.protocol == "openai" else "")
        msg += (
            f" (hint: --embedder {peer.protocol} posts to <--url>{peer.route}; --url should "
            f"be the server's base URL, {base})"
        )
    elif status in (401, 403):
        msg += f" (credential sent: {peer.credential})"
    return peer.err(f"EMBED/HTTP_{status}", msg, **ctx)
