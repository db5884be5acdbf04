"""How much one request may ask of the server, and how long a client may take.

Every limit is finite by default, so a hostile or broken client cannot make the server
grow without bound or hold a thread forever. Size limits are checked while a request is
read, before the work it asks for is done; a refusal is a :class:`LimitExceeded`, which
the handler answers in the route's own error style and counts in ``/stats``.

A refused request answers, by route (OpenAI answers every validation error with 400,
TEI its validation errors with 413; Ollama has no such limits, so 413 stands for all):

====================  =======  =======  =======
limit                 OpenAI   Ollama   TEI
====================  =======  =======  =======
``max_body_bytes``    413      413      413
``max_inputs``        400      413      413
``max_input_chars``   400      413      413
``max_total_chars``   400      413      413
``max_connections``   503 to the extra connection, before any request is read
====================  =======  =======  =======
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from ..errors import ConfigError

__all__ = ["LIMIT_KINDS", "TIMEOUT_KINDS", "LimitExceeded", "LimitKind", "ServerLimits"]

LimitKind = Literal[
    "max_body_bytes", "max_inputs", "max_input_chars", "max_total_chars", "max_connections"
]
LIMIT_KINDS: Final[tuple[LimitKind, ...]] = (
    "max_body_bytes",
    "max_inputs",
    "max_input_chars",
    "max_total_chars",
    "max_connections",
)
TimeoutKind = Literal["header", "body", "idle", "write"]
TIMEOUT_KINDS: Final[tuple[TimeoutKind, ...]] = ("header", "body", "idle", "write")

_DAY: Final = 86_400  # the longest timeout accepted, in seconds

# The OpenAI error code sent with each refusal; the other routes carry only a message.
_OPENAI_CODES: Final[dict[LimitKind, str]] = {
    "max_body_bytes": "request_too_large",
    "max_inputs": "too_many_inputs",
    "max_input_chars": "context_length_exceeded",
    "max_total_chars": "max_tokens_per_request",
    "max_connections": "server_overloaded",
}


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """Size, count, time and connection limits of :class:`EmbeddingServer`.

    The size defaults follow OpenAI's embeddings API: at most 2048 inputs, each under
    its 8,192-token context, and 300,000 tokens a request, counted here as characters at
    about four characters a token. ``max_body_bytes`` is checked from ``Content-Length``
    before the body is read; the count and character limits while it is parsed. So one
    connection holds at most about five times ``max_body_bytes`` (the body, its decoded
    text and the inputs), and the server at most ``max_connections`` such connections.

    Timeouts, in seconds, each a deadline for a whole phase rather than for one read, so
    a client that trickles a byte at a time is cut off too:

    * ``header_timeout``: from accepting a connection, or from the first byte of a later
      request on it, until the request line and headers are in (408, then close);
    * ``body_timeout``: to receive the body (408, then close), and to send an answer;
    * ``idle_timeout``: a keep-alive connection waiting for its next request (close).

    Bad values raise :class:`ConfigError`. Examples::

        ServerLimits()  # 8 MiB bodies, 2048 inputs of <= 32,768 chars, 1,200,000 in all
        ServerLimits(max_inputs=16, max_input_chars=1000, max_body_bytes=64 * 1024)
        ServerLimits(header_timeout=0.5, idle_timeout=1, max_connections=4)
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_inputs: int = 2048
    max_input_chars: int = 32_768
    max_total_chars: int = 1_200_000
    max_connections: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0

    def __post_init__(self) -> None:
        for kind in LIMIT_KINDS:
            count = getattr(self, kind)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(f"{kind} must be an integer >= 1, got {count!r}")
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and 0 < value <= _DAY):
                raise ConfigError(f"{name} must be seconds in (0, {_DAY}], got {value!r}")


class LimitExceeded(Exception):
    """A request over one of the :class:`ServerLimits`; ``str(exc)`` is the message sent."""

    def __init__(self, kind: LimitKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def openai_code(self) -> str:
        return _OPENAI_CODES[self.kind]

    def status(self, api: str | None) -> int:
        """The HTTP status a real server of this route would answer (the table above)."""
        if self.kind == "max_body_bytes":
            return 413
        if self.kind == "max_connections":
            return 503
        return 400 if api in (None, "openai") else 413
