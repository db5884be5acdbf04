"""Fault injection: what goes wrong with a valid embed request, and how often.

:class:`FaultConfig` says what; :class:`FaultSchedule` decides, one request at a time,
from one seeded ``random.Random`` with two draws per request, so the schedule of
outcomes in arrival order is reproducible. A decision is a :class:`Plan`; the handler
carries it out and renders any error in the route's own style.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final, Literal

from ..errors import ConfigError

__all__ = ["CORRUPT_MODES", "FAULT_KINDS", "CorruptMode", "FaultConfig", "FaultSchedule", "Plan"]

CorruptMode = Literal["bad-json", "wrong-count", "wrong-dim", "nan"]
CORRUPT_MODES: Final[tuple[CorruptMode, ...]] = ("bad-json", "wrong-count", "wrong-dim", "nan")
FAULT_KINDS: Final = ("status", "stall", "drop", "corrupt", "max_batch", "context_limit")


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


@dataclass(frozen=True)
class Plan:
    """What the handler does with one valid embed request.

    ``reply`` sends ``status`` with an error ``message`` (``error_type`` and ``code`` fill
    the OpenAI error object); ``embed`` answers with vectors, damaged when ``corrupt``.
    """

    action: Literal["embed", "reply", "drop", "stall"]
    kind: str  # one of FAULT_KINDS, or "ok"
    outcome: str
    status: int = 200
    message: str = ""
    error_type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    corrupt: CorruptMode | None = None


class FaultSchedule:
    """Decides each valid embed request's fate; not thread-safe (the caller holds a lock)."""

    def __init__(self, faults: FaultConfig) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._decided = 0

    def decide(self, texts: list[str]) -> Plan:
        f, n = self.faults, len(texts)
        u_fault, u_corrupt = self._rng.random(), self._rng.random()
        first = self._decided < f.fail_first
        self._decided += 1
        held = f.drop_rate + f.stall_rate
        if first or held <= u_fault < held + f.fail_rate:
            headers = {} if f.retry_after is None else {"Retry-After": f"{f.retry_after:g}"}
            message = f"injected fault: HTTP {f.status}"
            return Plan(
                "reply", "status", f"status:{f.status}", f.status, message, "injected_fault",
                headers=headers,
            )  # fmt: skip
        if u_fault < f.drop_rate:
            return Plan("drop", "drop", "drop")
        if u_fault < held:
            return Plan("stall", "stall", "stall")
        if f.max_batch is not None and n > f.max_batch:
            message = f"batch of {n} inputs exceeds the maximum of {f.max_batch}"
            return Plan("reply", "max_batch", "status:413", 413, message, code="batch_too_large")
        if f.context_limit is not None and max(map(len, texts)) > f.context_limit:
            longest = max(range(n), key=lambda i: len(texts[i]))
            message = (
                f"This model's maximum context length is {f.context_limit} tokens, however you"
                f" requested {len(texts[longest])} tokens (input {longest}). Please reduce the"
                " length of the input."
            )
            return Plan(
                "reply", "context_limit", "status:400", 400, message,
                code="context_length_exceeded",
            )  # fmt: skip
        if f.corrupt is not None and (f.corrupt_rate is None or u_corrupt < f.corrupt_rate):
            return Plan("embed", "corrupt", f"corrupt:{f.corrupt}", corrupt=f.corrupt)
        return Plan("embed", "ok", "ok")
