"""Result and Option values: per-item outcomes that travel through a stream.

``Ok`` / ``Err`` and ``Some`` / ``Nothing`` are small frozen classes with ``map``,
``bind``, ``map_err`` and ``unwrap_or``; match on them with ``isinstance`` or
``match``. ``ErrInfo`` is the error payload every stage produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeAlias, TypeVar

T = TypeVar("T")
U = TypeVar("U")
E = TypeVar("E")
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """A success carrying ``value``."""

    value: T

    def is_ok(self) -> bool:
        return True

    def map(self, f: Callable[[T], U]) -> Ok[U]:
        return Ok(f(self.value))

    def bind(self, f: Callable[[T], Result[U, E]]) -> Result[U, E]:
        return f(self.value)

    def map_err(self, f: Callable[[Any], Any]) -> Ok[T]:
        return self

    def unwrap(self) -> T:
        return self.value

    def unwrap_or(self, default: object) -> T:
        return self.value


@dataclass(frozen=True, slots=True)
class Err(Generic[E]):
    """A failure carrying ``error`` (usually an :class:`ErrInfo`)."""

    error: E

    def is_ok(self) -> bool:
        return False

    def map(self, f: Callable[[Any], Any]) -> Err[E]:
        return self

    def bind(self, f: Callable[[Any], Any]) -> Err[E]:
        return self

    def map_err(self, f: Callable[[E], F]) -> Err[F]:
        return Err(f(self.error))

    def unwrap(self) -> NoReturn:
        raise ValueError(f"unwrap() on Err: {self.error!r}")

    def unwrap_or(self, default: U) -> U:
        return default


Result: TypeAlias = Ok[T] | Err[E]


@dataclass(frozen=True, slots=True)
class Some(Generic[T]):
    """An present optional value."""

    value: T

    def map(self, f: Callable[[T], U]) -> Some[U]:
        return Some(f(self.value))

    def bind(self, f: Callable[[T], Option[U]]) -> Option[U]:
        return f(self.value)

    def unwrap_or(self, default: object) -> T:
        return self.value


@dataclass(frozen=True, slots=True)
class _NothingType:
    """The absent optional value; use the singleton :data:`Nothing`."""

    def map(self, f: Callable[[Any], Any]) -> _NothingType:
        return self

    def bind(self, f: Callable[[Any], Any]) -> _NothingType:
        return self

    def unwrap_or(self, default: U) -> U:
        return default

    def __repr__(self) -> str:
        return "Nothing"


Nothing = _NothingType()
Option: TypeAlias = Some[T] | _NothingType


@dataclass(frozen=True, slots=True)
class ErrInfo:
    """What went wrong with one item, as data.

    ``code`` is a stable, greppable identifier such as ``"READ/DECODE"`` or
    ``"EMBED/HTTP_500"``; ``stage`` names the pipeline stage; ``path`` the source file
    when known; ``cause`` the exception's text (never the exception object, so the
    value stays hashable, picklable and JSON-friendly); ``ctx`` extra details.
    """

    code: str
    msg: str
    stage: str = ""
    path: str | None = None
    cause: str | None = None
    ctx: Mapping[str, Any] = field(default_factory=dict)

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "msg": self.msg,
            "stage": self.stage,
            "path": self.path,
            "cause": self.cause,
            "ctx": dict(self.ctx),
        }


def make_errinfo(
    code: str,
    msg: str,
    *,
    stage: str = "",
    path: object | None = None,
    exc: BaseException | None = None,
    **ctx: Any,
) -> ErrInfo:
    """Build an :class:`ErrInfo`, rendering ``path`` and ``exc`` to text.

    >>> make_errinfo("READ/IO", "cannot read", stage="read", path="a.txt").code
    'READ/IO'
    """
    cause = None if exc is None else f"{type(exc).__name__}: {exc}"
    return ErrInfo(
        code=code,
        msg=msg,
        stage=stage,
        path=None if path is None else str(path),
        cause=cause,
        ctx=dict(ctx),
    )
