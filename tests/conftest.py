"""Fixtures shared by the whole suite: a real PostgreSQL, and one index target per backend.

The PostgreSQL server (``pg_server``) starts the first time a test asks for it and stops
at the end of the session (see :mod:`tests.pgcluster`); a run of SQLite-only tests never
starts it. ``index_target`` gives each backend-neutral test a fresh index of each kind:
an SQLite file, and a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import ExternalServer, PgCluster, PgServer

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    external = os.environ.get("FUNCPIPE_TEST_PG_URL", "")
    if external:
        yield ExternalServer(external)
        return
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database (dropped afterwards)."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=BACKENDS)
def index_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh index of each backend: an SQLite file path, or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "x.db")
    url: str = request.getfixturevalue("pg_database")
    return url
