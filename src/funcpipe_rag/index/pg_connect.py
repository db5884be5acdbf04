"""Connections to the PostgreSQL index: opened as ledger resources, errors in one line.

Every connection of a run carries ``application_name = funcpipe/<run id>``, so the
server's own ``pg_stat_activity`` can say how many sessions the run holds; a separate,
short *probe* connection asks it before the run connects and after it closed
everything, and the ledger records both counts (``pg_sessions``).

Driver errors become funcpipe's own: a server that refuses or drops the connection is
:class:`~funcpipe_rag.errors.IndexUnavailableError` (one line, never a traceback, never
the password of the URL), a full disk :class:`~funcpipe_rag.errors.IndexWriteError`,
anything else about the data :class:`~funcpipe_rag.errors.IndexDamagedError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from ..embedders.urls import redact_url
from ..errors import (
    ConfigError,
    FuncpipeError,
    IndexDamagedError,
    IndexUnavailableError,
    IndexWriteError,
    ResourceClosedError,
)
from ..policies.ledger import Handle, RemoteCount, ResourceLedger

CONNECT_TIMEOUT_S = 10
_PROBE_NAME = "funcpipe/probe"
# SQLSTATE classes and codes that mean the server is gone or will not talk (08:
# connection exception; 57P0x: shutdown, crash shutdown, cannot connect now).
_GONE = ("08", "57P01", "57P02", "57P03")


def _password(target: str) -> str:
    try:
        return unquote(urlsplit(target).password or "")
    except ValueError:
        return ""


def one_line(exc: BaseException, target: str) -> str:
    """The driver's message on one line, without the URL's password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    secret = _password(target)
    return text.replace(secret, "***") if secret else text


def map_error(exc: psycopg.Error, target: str, doing: str) -> FuncpipeError:
    """The funcpipe exception for a driver error while ``doing`` something."""
    name = redact_url(target)
    state = exc.sqlstate or ""
    message = one_line(exc, target)
    if isinstance(exc, psycopg.OperationalError) and (not state or state.startswith(_GONE)):
        return IndexUnavailableError(
            f"cannot use index {name} while {doing}: the database server is unavailable ({message})"
        )
    if state.startswith(_GONE):
        return IndexUnavailableError(
            f"cannot use index {name} while {doing}: the database server went away ({message})"
        )
    if state in ("53100", "53200", "53300") or state.startswith("58"):
        # disk full, out of memory, too many connections; system errors
        return IndexWriteError(f"cannot write index {name} while {doing}: {message}")
    if state == "42501":
        return ConfigError(f"index {name}: permission denied while {doing} ({message})")
    return IndexDamagedError(f"index {name} cannot be used ({message}) while {doing}")


@contextlib.contextmanager
def guard(target: str, doing: str) -> Iterator[None]:
    """Driver errors inside the block become funcpipe's own (see :func:`map_error`)."""
    try:
        yield
    except psycopg.Error as exc:
        raise map_error(exc, target, doing) from None


def _connect(target: str, application_name: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(
            target,
            autocommit=True,
            application_name=application_name,
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    except psycopg.Error as exc:
        raise IndexUnavailableError(
            f"cannot connect to the index database {redact_url(target)}: {one_line(exc, target)}"
        ) from None
    except ValueError as exc:  # a malformed URL: libpq's parser says what is wrong
        raise ConfigError(f"bad index URL {redact_url(target)}: {one_line(exc, target)}") from None


class PgConnection:
    """One session of the run on the server, counted in the ledger (``pg_connection``);
    ``close()`` is idempotent and use after it raises ``ResourceClosedError``."""

    def __init__(
        self, target: str, ledger: ResourceLedger, application_name: str, role: str
    ) -> None:
        self._ledger = ledger
        self._conn: psycopg.Connection[Any] | None = _connect(target, application_name)
        self._handle: Handle = ledger.acquire("pg_connection", f"{redact_url(target)} ({role})")

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise ResourceClosedError("the index connection is closed")
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()  # a dead server's connection closes without error
        finally:
            self._ledger.release(self._handle)


def count_sessions(target: str, application_name: str) -> int:
    """The server's count of sessions named ``application_name``; -1 when it cannot say.

    A session's server process leaves ``pg_stat_activity`` a moment after its client
    disconnects, so a count that is not 0 is asked again for up to a second.
    """
    try:
        probe = psycopg.connect(
            target, autocommit=True, application_name=_PROBE_NAME, connect_timeout=5
        )
    except (psycopg.Error, ValueError):
        return -1
    try:
        deadline = time.monotonic() + 1.0
        while True:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            ).fetchone()
            n = int(row[0]) if row is not None else -1
            if n == 0 or time.monotonic() >= deadline:
                return n
            time.sleep(0.02)
    except psycopg.Error:
        return -1
    finally:
        probe.close()


class SessionWitness:
    """Asks the server how many sessions a run holds, before and after; records both."""

    def __init__(self, target: str, application_name: str, ledger: ResourceLedger) -> None:
        self._target = target
        self._name = application_name
        self._ledger = ledger
        self._before = count_sessions(target, application_name)
        self._recorded = False

    def record(self) -> None:
        """Call once every session of the run is closed; idempotent."""
        if self._recorded:
            return
        self._recorded = True
        after = count_sessions(self._target, self._name)
        self._ledger.record_remote("pg_sessions", RemoteCount(self._before, after))


def identifier(name: str) -> sql.Identifier:
    return sql.Identifier(name)


__all__ = [
    "PgConnection",
    "SessionWitness",
    "count_sessions",
    "guard",
    "map_error",
    "one_line",
]
