"""A real PostgreSQL with pgvector for the tests and the benchmarks, started on demand.

The ``pgserver`` wheel (a dev dependency) carries PostgreSQL 16 and pgvector 0.6 as
plain binaries; :class:`PgCluster` runs its ``initdb`` and ``pg_ctl`` on a throwaway data
folder, listening on a free loopback port only (no Unix socket), and removes everything
when closed. PostgreSQL refuses to run as root: under root (CI, these machines) the
server runs as ``nobody``, so no system user is created. ``FUNCPIPE_TEST_PG_URL`` points
the tests at an external server instead (a user allowed to create databases).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol

import psycopg

_SPEED = (
    # A throwaway test server: durability is not what the tests measure.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=64MB"
)


def pgserver_bin() -> Path:
    """The folder of PostgreSQL binaries the pgserver wheel installs."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is missing: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _open_to_others(folder: Path) -> bool:
    """Whether a user with no rights of its own can reach and run what ``folder`` holds."""
    return all(part.stat().st_mode & 1 for part in (folder, *folder.parents))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgServer(Protocol):
    def admin_url(self, database: str = "postgres") -> str: ...

    def create_database(self) -> str: ...

    def drop_database(self, url: str) -> None: ...


class _Databases:
    """Fresh databases on a server, one per test (dropped afterwards)."""

    def admin_url(self, database: str = "postgres") -> str:
        raise NotImplementedError

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ExternalServer(_Databases):
    """The server of ``FUNCPIPE_TEST_PG_URL``."""

    def __init__(self, url: str) -> None:
        self._url = url

    def admin_url(self, database: str = "postgres") -> str:
        base = self._url.rsplit("/", 1)[0] if self._url.count("/") > 2 else self._url
        return f"{base}/{database}"


class PgCluster(_Databases):
    """One throwaway server: ``start()``, ``restart()``, ``stop()``, ``close()``."""

    def __init__(self) -> None:
        self.bin = pgserver_bin()
        self.root = Path(tempfile.mkdtemp(prefix="funcpipe-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as: dict[str, Any] = {}
        try:
            self._prepare()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _prepare(self) -> None:
        """initdb, as ``nobody`` under root (with a reachable copy of the binaries)."""
        if os.geteuid() == 0:
            self._as = {"user": "nobody", "group": "nogroup", "extra_groups": []}
            shutil.chown(self.root, "nobody", "nogroup")
            if not _open_to_others(self.bin):
                # A clone under a private folder (a home directory, say): `nobody` cannot
                # reach the binaries there, so run a copy (~28 MB), laid out as installed:
                # the binaries find their libraries at $ORIGIN/../../../pgserver.libs.
                install = self.bin.parent
                site = install.parent.parent
                copy = self.root / "site"
                for part in ("bin", "lib", "share"):
                    shutil.copytree(install / part, copy / "pgserver" / "pginstall" / part)
                shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")
                self.bin = copy / "pgserver" / "pginstall" / "bin"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.root,
            **self._as,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options + _SPEED, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self.stop("fast")
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        """Stop the server (if it runs) and remove its folder; leaves nothing behind."""
        try:
            if self.running():
                with contextlib.suppress(RuntimeError):
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["ExternalServer", "PgCluster", "PgServer", "free_port", "pgserver_bin"]
