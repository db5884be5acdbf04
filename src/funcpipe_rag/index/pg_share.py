"""Many runs, one PostgreSQL index, one corpus: sharing the work through the database.

A *pass* is the corpus as the runs working together see it: the rows of
``file_claims``. Every run walks the corpus lazily; each ``claim_files`` files it walks
it *publishes* them (``INSERT ... ON CONFLICT DO NOTHING``: a file is one row, whoever
saw it first) and then *takes* up to as many open files — its own or any other run's —
with ``SELECT ... FOR UPDATE SKIP LOCKED`` under a lease (``lease`` seconds). A
:class:`LeaseKeeper` thread renews the run's leases while it works; the leases of a run
that died lapse, and its files are open again. A file ends ``kept`` (it exists as a
document: ingested, unchanged or failed) or ``dropped`` (skipped): a written file in
the very transaction that stores its last chunks (:meth:`PgIndex.write`), every other
file when the run's round is over and its chunks are stored (:meth:`PgShare.round_done`).

When its walk is over and nothing is open, a run waits while other live runs still
hold files or still walk, and takes over any whose lease lapses (a new *round* of the
pipeline). When the whole pass is done, the first run to lock ``file_claims`` prunes
the deleted files with the union of every run's kept files, and clears the pass, in
one transaction: pruning happens once. A file whose size or mtime changed since a pass
recorded it is opened again when a later run publishes it.

Contents are paid for once across runs by :class:`PgContentClaims`: a claim row per
content hash, re-checked against the stored vectors before paying.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, TypeVar

import psycopg

from ..errors import FuncpipeError
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..streams import Stage, close_quietly
from ..walk import SourceFile
from .base import ContentClaims, FileStream, HashClaim
from .pg_connect import PgConnection, guard

if TYPE_CHECKING:
    from .postgres import PgIndex

T = TypeVar("T")
_POLL_S = 0.25  # how often a run with nothing to take looks again
_RETRIES = 4
# The runs that hold a session on the server now. A run's sessions carry its name
# (funcpipe/<run id>), and a killed run's sessions end with it: its claims can be taken
# over at once instead of when their lease lapses. (A run cut off by the network keeps
# its server session until TCP gives up; its lease covers that case.)
LIVE_RUNS = (
    "ARRAY(SELECT DISTINCT substr(application_name, 10) "
    "FROM pg_stat_activity WHERE application_name LIKE 'funcpipe/%%')"
)


def retrying(fn: Callable[[], T]) -> T:
    """Run a transaction again when the server chose it as a deadlock victim (two runs
    locking rows in different orders, which sorted writes make rare)."""
    for attempt in range(_RETRIES):
        try:
            return fn()
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


class LeaseKeeper:
    """A thread that renews a run's leases (files, contents, its heartbeat) every third
    of a lease, on its own session. A session that ends under it (the server or an
    administrator ended it) is replaced once per failure; when no new one can be had the
    keeper stops quietly (the server is gone: the leases lapse, and the run's own
    sessions report the failure)."""

    def __init__(self, index: PgIndex, ledger: ResourceLedger) -> None:
        self._ledger = ledger
        self._index = index
        self._worker = index.run_id
        self._lease = index.options.lease_s
        self._session = self._open()
        self._stop = threading.Event()
        self._handle = ledger.acquire("lease_keeper", f"run {self._worker}")
        self._thread = threading.Thread(target=self._run, name="funcpipe-leases", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        """Three statements, each its own transaction (the session is autocommit): a
        renewal must hold no row while it waits for a table. In one transaction it held
        its ``workers`` row while it waited for ``file_claims``, which a finishing run
        locks before deleting ``workers`` rows: a deadlock that failed the finishing run.
        Nothing needs the three to change together; each only moves a deadline on."""
        conn = self._session.conn
        args = {"w": self._worker, "lease": self._lease}
        conn.execute("UPDATE workers SET heartbeat = now() WHERE worker = %(w)s", args)
        conn.execute(
            "UPDATE file_claims SET expires = now() + %(lease)s * interval '1 second' "
            "WHERE worker = %(w)s AND state = 'taken'",
            args,
        )
        conn.execute(
            "UPDATE content_claims SET expires = now() + %(lease)s * interval '1 second' "
            "WHERE worker = %(w)s",
            args,
        )

    def _open(self) -> PgConnection:
        from .postgres import prepare_session

        index = self._index
        session = PgConnection(index.target, self._ledger, index.application_name, "leases")
        try:
            with guard(index.target, "opening the lease session"):
                prepare_session(session.conn, index.schema, create=False)
        except BaseException:
            session.close()
            raise
        return session

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                retrying(self._renew)  # a lost lock race is no reason to stop renewing
            except psycopg.Error:
                # A keeper that stopped here left a live run's leases to lapse: others
                # took its files and contents over while it still worked on them.
                if not self._reopen():
                    return

    def _reopen(self) -> bool:
        """A new session and a renewal on it at once; False when either fails."""
        self._session.close()
        try:
            self._session = self._open()
            retrying(self._renew)
        except (psycopg.Error, FuncpipeError):
            return False
        return True

    def close(self) -> None:
        """Stop and join the thread, then close its session; idempotent."""
        self._stop.set()
        self._thread.join()
        try:
            self._session.close()
        finally:
            self._ledger.release(self._handle)


class PgContentClaims:
    """:class:`~.base.ContentClaims` on the index's embedding-thread session."""

    def __init__(self, index: PgIndex) -> None:
        self._index = index
        self._worker = index.run_id
        self._lease = index.options.lease_s

    def claim(self, content_hashes: Sequence[str]) -> HashClaim:
        from .postgres import fetch_vectors

        unique = sorted(set(content_hashes))
        lock, conn = self._index.side_session()

        def attempt() -> HashClaim:
            with conn.transaction():
                # Sorted, so two runs claiming overlapping contents lock rows in one order.
                # A claim is taken over when its lease lapsed or its run is gone.
                rows = conn.execute(
                    "INSERT INTO content_claims (content_hash, worker, expires) "
                    "SELECT h, %(w)s, now() + %(lease)s * interval '1 second' "
                    "FROM unnest(%(hs)s::text[]) AS h ORDER BY h "
                    "ON CONFLICT (content_hash) DO UPDATE SET worker = excluded.worker, "
                    "expires = excluded.expires WHERE content_claims.expires < now() "
                    "OR content_claims.worker = excluded.worker "
                    f"OR NOT content_claims.worker = ANY({LIVE_RUNS}) RETURNING content_hash",
                    {"w": self._worker, "lease": self._lease, "hs": unique},
                ).fetchall()
                mine = {str(r[0]) for r in rows}
                # Re-check: a payer may have stored its vector and let go of its claim
                # between this run's lookup and its claim.
                stored = fetch_vectors(conn, unique)
                paid = sorted(mine & stored.keys())
                if paid:
                    conn.execute(
                        "DELETE FROM content_claims WHERE worker = %s AND content_hash = ANY(%s)",
                        (self._worker, paid),
                    )
            return HashClaim(frozenset(mine - stored.keys()), stored)

        with lock, guard(self._index.target, "claiming contents to embed"):
            return retrying(attempt)

    def release(self, content_hashes: Sequence[str]) -> None:
        if not content_hashes:
            return
        lock, conn = self._index.side_session()
        with lock, guard(self._index.target, "releasing content claims"):
            conn.execute(
                "DELETE FROM content_claims WHERE worker = %s AND content_hash = ANY(%s)",
                (self._worker, sorted(set(content_hashes))),
            )


class PgShare:
    """:class:`~.base.FileShare` through ``file_claims`` (see the module docstring)."""

    def __init__(self, index: PgIndex, ledger: ResourceLedger) -> None:
        self._index = index
        self._target = index.target
        self._worker = index.run_id
        self._lease = index.options.lease_s
        self._n = index.options.claim_files
        self.seen: set[str] = set()
        # Invariant: _taken holds the files this run took and has not settled, in order.
        self._taken: dict[str, None] = {}
        self._published = False
        self._closed = False
        with guard(self._target, "joining the shared run"):
            index.main_session().execute(
                "INSERT INTO workers (worker, walked, heartbeat) VALUES (%s, false, now()) "
                "ON CONFLICT (worker) DO UPDATE SET walked = false, heartbeat = now()",
                (self._worker,),
            )
        self._keeper = LeaseKeeper(index, ledger)
        self._claims = PgContentClaims(index)

    @property
    def content_claims(self) -> ContentClaims | None:
        return self._claims

    # -- rounds -----------------------------------------------------------------------

    def rounds(self, walk: Callable[[], FileStream]) -> Generator[FileStream, None, None]:
        yield self._claiming(walk())
        while self._more_to_take():
            yield self._claiming(None)

    def _claiming(self, walk: FileStream | None) -> FileStream:
        """The files this run takes: while walking, after each ``claim_files`` files it
        publishes; after the walk, until nothing is open. Lazy; closes the walk."""

        def gen() -> Generator[Result[SourceFile, ErrInfo], None, None]:
            try:
                if walk is not None:
                    pending: list[SourceFile] = []
                    for r in walk:
                        if isinstance(r, Err):
                            yield r  # walk skips and failures: this run saw them
                            continue
                        pending.append(r.value)
                        if len(pending) >= self._n:
                            self._publish(pending)
                            pending = []
                            yield from self._take()
                    self._publish(pending)
                    self._walked()
                while taken := self._take():
                    yield from taken
            finally:
                if walk is not None:
                    close_quietly(walk)

        return Stage(gen(), (walk,) if walk is not None else ())

    def _publish(self, files: list[SourceFile]) -> None:
        if not files:
            return
        self._published = True
        unique = sorted({f.doc_id: f for f in files}.values(), key=lambda f: f.doc_id)
        conn = self._index.main_session()
        columns = (
            [f.doc_id for f in unique],
            [f.path for f in unique],
            [os.fsencode(os.path.abspath(f.fs_path)) for f in unique],
            [f.abs_path for f in unique],
            [f.size for f in unique],
            [f.mtime_ns for f in unique],
        )

        def attempt() -> None:
            # A file already settled in this pass is opened again only if it changed.
            conn.execute(
                "INSERT INTO file_claims (doc_id, path, fs_path, abs_path, size, mtime_ns) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[], "
                "%s::bigint[], %s::bigint[]) "
                "ON CONFLICT (doc_id) DO UPDATE SET state = 'todo', worker = NULL, "
                "expires = NULL, path = excluded.path, fs_path = excluded.fs_path, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns "
                "WHERE file_claims.state IN ('kept', 'dropped') AND "
                "(file_claims.size, file_claims.mtime_ns) <> (excluded.size, excluded.mtime_ns)",
                columns,
            )

        with guard(self._target, "publishing walked files"):
            retrying(attempt)

    def _take(self) -> list[Ok[SourceFile]]:
        """Lease up to ``claim_files`` open files (never seen by anyone, or whose lease
        lapsed), oldest first; rows another run is taking right now are skipped."""
        conn = self._index.main_session()
        with guard(self._target, "claiming files"):
            rows = conn.execute(
                "UPDATE file_claims SET state = 'taken', worker = %(w)s, "
                "expires = now() + %(lease)s * interval '1 second' "
                "WHERE doc_id IN (SELECT doc_id FROM file_claims "
                "WHERE state = 'todo' OR (state = 'taken' AND (expires < now() "
                f"OR NOT worker = ANY({LIVE_RUNS}))) "
                "ORDER BY seq LIMIT %(n)s FOR UPDATE SKIP LOCKED) "
                "RETURNING seq, doc_id, path, fs_path, abs_path, size, mtime_ns",
                {"w": self._worker, "lease": self._lease, "n": self._n},
            ).fetchall()
        taken: list[Ok[SourceFile]] = []
        for _, doc_id, path, fs_path, abs_path, size, mtime_ns in sorted(rows):
            self._taken[doc_id] = None
            src = SourceFile(path, os.fsdecode(bytes(fs_path)), doc_id, size, mtime_ns, abs_path)
            taken.append(Ok(src))
        return taken

    def _walked(self) -> None:
        with guard(self._target, "finishing the walk"):
            self._index.main_session().execute(
                "UPDATE workers SET walked = true, heartbeat = now() WHERE worker = %s",
                (self._worker,),
            )

    def _state(self) -> tuple[int, int, int, int]:
        """Files open to take, files held by live leases, all files of the pass, and
        other live runs still walking."""
        conn = self._index.main_session()
        row = conn.execute(
            f"WITH live AS (SELECT {LIVE_RUNS} AS runs) "
            "SELECT count(*) FILTER (WHERE state = 'todo' OR (state = 'taken' AND "
            "(expires < now() OR NOT worker = ANY(live.runs)))), "
            "count(*) FILTER (WHERE state = 'taken' AND expires >= now() "
            "AND worker = ANY(live.runs)), count(*) FROM file_claims, live"
        ).fetchone()
        walkers = conn.execute(
            f"SELECT count(*) FROM workers WHERE NOT walked AND worker <> %s "
            f"AND heartbeat > now() - %s * interval '1 second' AND worker = ANY({LIVE_RUNS})",
            (self._worker, self._lease),
        ).fetchone()
        assert row is not None
        assert walkers is not None
        return int(row[0]), int(row[1]), int(row[2]), int(walkers[0])

    def _more_to_take(self) -> bool:
        """Wait while other runs hold files or still walk; True when a file is open
        again (a lapsed lease: another round), False when the pass is done."""
        while True:
            try:
                with guard(self._target, "waiting for the other runs"):
                    takeable, held, _, walkers = self._state()
            except FuncpipeError:
                if self._collection_gone():
                    return False  # another run completed a --reembed and swapped it in
                raise
            if takeable:
                return True
            if not held and not walkers:
                return False
            time.sleep(_POLL_S)

    def _collection_gone(self) -> bool:
        with contextlib.suppress(psycopg.Error):
            row = (
                self._index.main_session()
                .execute("SELECT to_regclass('file_claims') IS NULL")
                .fetchone()
            )
            return bool(row and row[0])
        return False

    def round_done(self) -> None:
        """Every file this run took went through and its chunks are stored: record how
        each ended (kept: still a document; dropped: skipped, pruned at the end)."""
        if not self._taken:
            return
        taken = list(self._taken)
        kept = [d for d in taken if d in self.seen]
        with guard(self._target, "settling claimed files"):
            self._index.main_session().execute(
                "UPDATE file_claims SET state = CASE WHEN doc_id = ANY(%(kept)s) THEN 'kept' "
                "ELSE 'dropped' END, worker = NULL, expires = NULL "
                "WHERE worker = %(w)s AND state = 'taken' AND doc_id = ANY(%(taken)s)",
                {"kept": kept, "taken": taken, "w": self._worker},
            )
        self._taken.clear()

    # -- the end of the pass ----------------------------------------------------------

    def finish(self, prune: Callable[[set[str]], int]) -> int:
        """Prune once for the whole pass (see the module docstring); 0 if the pass is
        not done yet or another run finished it."""
        conn = self._index.main_session()

        def attempt() -> int:
            with conn.transaction():
                # Blocks every other run's claim writes until this transaction ends, so
                # the check, the prune and the clearing see one state of the pass.
                conn.execute("LOCK TABLE file_claims IN EXCLUSIVE MODE")
                takeable, held, total, walkers = self._state()
                if takeable or held or walkers:
                    return 0
                if total == 0 and self._published:
                    return 0  # another run finished this pass
                rows = conn.execute("SELECT doc_id FROM file_claims WHERE state = 'kept'")
                keep = {str(r[0]) for r in rows}
                conn.execute("DELETE FROM file_claims")
                conn.execute(
                    "DELETE FROM workers WHERE walked OR "
                    "heartbeat < now() - %s * interval '1 second'",
                    (self._lease,),
                )
                return prune(keep)

        try:
            with guard(self._target, "finishing the shared run"):
                return retrying(attempt)
        except FuncpipeError:
            if self._collection_gone():
                return 0
            raise

    def close(self) -> None:
        """Stop renewing; hand back the files taken and not settled (another run takes
        them at once) and the content claims; leave the pass. Idempotent; a server that
        is gone is no failure here (the leases lapse on their own)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._keeper.close()
        finally:
            with contextlib.suppress(psycopg.Error, FuncpipeError):
                conn = self._index.main_session()
                with conn.transaction():
                    args = {"w": self._worker}
                    conn.execute(
                        "UPDATE file_claims SET state = 'todo', worker = NULL, expires = NULL "
                        "WHERE worker = %(w)s AND state = 'taken'",
                        args,
                    )
                    conn.execute("DELETE FROM content_claims WHERE worker = %(w)s", args)
                    conn.execute("DELETE FROM workers WHERE worker = %(w)s", args)


__all__ = ["LeaseKeeper", "PgContentClaims", "PgShare", "retrying"]
