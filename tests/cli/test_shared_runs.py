"""Many `funcpipe ingest` processes filling one PostgreSQL index from one corpus, on a real
server: each content paid for once, a killed worker's files finished by the others, the
server restarted or refusing under a run, vector spaces kept apart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import CLI, assert_clean, cli_env, prose, read_report, run_cli, write_tree
from tests.indexes import count, rows
from tests.pgcluster import PgCluster, free_port

TEI = ("--embedder", "tei")
BATCH, CONCURRENCY = 8, 2


def corpus(root: Path, files: int = 30, paragraphs: int = 20) -> Path:
    """Prose with shared boilerplate, so runs meet the same contents at the same time."""
    licence = "Licensed under the same terms as the garden recipe ledger, with no warranty."
    return write_tree(
        root,
        {f"d{i % 4}/f{i}.md": prose(i, paragraphs) + "\n\n" + licence + "\n" for i in range(files)},
    )


def start_worker(
    tree: Path, target: str, server: EmbeddingServer, report: Path, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "ingest", str(tree), "--index", target, "--url", server.url, *TEI,
         "--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY), "--claim-files", "2",
         "--lease", "3", "--report", "none", "--report-file", str(report), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str]]:
    results = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        results.append((p.returncode, err))
    return results


def top_hits(target: str, query: str, url: str, k: int = 10) -> list[tuple[str, float]]:
    """The vector hits above the k-th score (ties at the cut may fall either way), by
    chunk: both backends rank vectors by the exact cosine (their lexical scores differ in
    scale: BM25 in SQLite, ts_rank in PostgreSQL, so hybrid scores differ too)."""
    proc = run_cli("search", query, "--index", target, "--json", "-k", str(k), "--url", url,
                   "--mode", "vector")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == k
    cut = round(hits[-1]["score"], 4)
    return sorted((h["chunk_id"], round(h["score"], 4)) for h in hits if round(h["score"], 4) > cut)


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, str, set[str]]:
    """The corpus, a one-worker SQLite index of it and its distinct contents."""
    tree = corpus(tmp_path / "docs")
    db = str(tmp_path / "ref.db")
    with EmbeddingServer() as server:
        proc = run_cli("ingest", str(tree), "--index", db, "--url", server.url, *TEI, "--quiet")
        assert proc.returncode == 0, proc.stderr
    return tree, db, {r[0] for r in rows(db, "SELECT content_hash FROM vectors")}


# Several CLI processes at once, with a reference run and a second pass: on two shared
# cores these take over a minute, so they get more than the default 120 s.
@pytest.mark.timeout(360)
def test_three_workers_pay_each_content_once_and_match_one_sqlite_worker(
    tmp_path: Path, pg_database: str, reference: tuple[Path, str, set[str]]
) -> None:
    tree, ref_db, distinct = reference
    reports = [tmp_path / f"w{i}.json" for i in range(3)]
    with EmbeddingServer(faults=FaultConfig(latency_ms=20)) as server:
        procs = [start_worker(tree, pg_database, server, r) for r in reports]
        results = finish(procs)
        inputs = int(server.stats()["inputs"])
    assert [code for code, _ in results] == [0, 0, 0], results
    docs = [read_report(r) for r in reports]
    for doc in docs:
        assert_clean(doc)
        assert doc["resources"]["remote"]["pg_sessions"] == {"before": 0, "after": 0}
    # Every distinct content paid for exactly once, by one of the three.
    assert inputs == len(distinct) == sum(d["chunks"]["embedded"] for d in docs)
    assert {r[0] for r in rows(pg_database, "SELECT content_hash FROM vectors")} == distinct
    assert sorted(r[0] for r in rows(pg_database, "SELECT chunk_id FROM chunks")) == sorted(
        r[0] for r in rows(ref_db, "SELECT chunk_id FROM chunks")
    )
    # The corpus was shared: each file went to exactly one worker.
    assert sum(d["files"]["ingested"] for d in docs) == count(ref_db, "documents")
    assert sum(1 for d in docs if d["files"]["ingested"]) >= 2
    verify = run_cli("verify", "--index", pg_database, str(tree))
    assert verify.returncode == 0, verify.stdout
    with EmbeddingServer() as server:
        for query in ("garden recipe ledger", "socket retry commit window"):
            hits = top_hits(pg_database, query, server.url)
            assert hits == top_hits(ref_db, query, server.url) and len(hits) >= 3
    # A second pass finds everything else unchanged, pays nothing, and prunes the deleted
    # file once, for both workers. All unchanged, a pass is quick: the second worker may
    # join it (each file checked by one of the two) or start after it ended (a pass of
    # its own, which checks every file again) -- both are right; nothing else is.
    (tree / "d0" / "f0.md").unlink()
    with EmbeddingServer() as server:
        again = [start_worker(tree, pg_database, server, r) for r in reports[:2]]
        assert [code for code, _ in finish(again)] == [0, 0]
        assert server.stats()["inputs"] == 0
    second = [read_report(r) for r in reports[:2]]
    left = count(ref_db, "documents") - 1
    assert sum(d["files"]["unchanged"] for d in second) in (left, 2 * left)
    assert sum(d["files"]["pruned"] for d in second) == 1
    assert count(pg_database, "documents") == count(ref_db, "documents") - 1
    assert run_cli("verify", "--index", pg_database, str(tree)).returncode == 0


@pytest.mark.timeout(360)
def test_a_killed_worker_files_are_finished_by_the_others_with_bounded_waste(
    tmp_path: Path, pg_database: str, reference: tuple[Path, str, set[str]]
) -> None:
    tree, ref_db, distinct = reference
    reports = [tmp_path / f"w{i}.json" for i in range(3)]
    with EmbeddingServer(faults=FaultConfig(latency_ms=40)) as server:
        procs = [start_worker(tree, pg_database, server, r) for r in reports]
        deadline = time.monotonic() + 60
        while server.stats()["embed_requests"] < 15:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        results = finish(procs[1:])
        inputs = int(server.stats()["inputs"])
    assert victim.returncode == -signal.SIGKILL
    assert [code for code, _ in results] == [0, 0], results
    for r in reports[1:]:
        assert_clean(read_report(r))
    assert sorted(r[0] for r in rows(pg_database, "SELECT chunk_id FROM chunks")) == sorted(
        r[0] for r in rows(ref_db, "SELECT chunk_id FROM chunks")
    )
    # Only what the killed worker had in flight (or answered, not yet stored) is bought
    # twice: at most its window of requests.
    waste = inputs - len(distinct)
    assert 0 <= waste <= CONCURRENCY * BATCH, (inputs, len(distinct))
    assert run_cli("verify", "--index", pg_database, str(tree)).returncode == 0
    assert rows(pg_database, "SELECT count(*) FROM file_claims") == [(0,)]  # pass finished


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A server of this test's own, to restart under a run."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.mark.timeout(300)
def test_a_server_restart_mid_run_stops_cleanly_and_keeps_what_was_stored(
    tmp_path: Path, own_cluster: PgCluster
) -> None:
    tree = corpus(tmp_path / "docs", files=30)
    target = own_cluster.create_database()
    report = tmp_path / "r.json"
    with EmbeddingServer(faults=FaultConfig(latency_ms=30)) as server:
        proc = start_worker(tree, target, server, report, "--commit-every", "16")
        deadline = time.monotonic() + 60
        while server.stats()["embed_requests"] < 20:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        own_cluster.restart()
        code, stderr = finish([proc])[0]
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert code == 1 and doc["status"] == "error", (code, stderr)
    assert "database server" in doc["reason"]
    assert doc["chunks"]["stored"] == count(target) > 0  # the summary says what is stored
    assert_clean(doc)
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("funcpipe: stopped on an unexpected error: cannot use index")
    # The next run finishes the job from what was kept.
    with EmbeddingServer() as server:
        rerun = run_cli("ingest", str(tree), "--index", target, "--url", server.url, *TEI,
                        "--quiet", timeout=180)  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
    assert run_cli("verify", "--index", target, str(tree)).returncode == 0


def test_a_server_that_refuses_connections_is_one_clear_line(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": prose(1, 3)})
    url = f"postgresql://funcpipe:s3cret@127.0.0.1:{free_port()}/db"
    for args in (
        ("ingest", str(tree), "--index", url),
        ("search", "anything", "--index", url),
        ("verify", "--index", url),
        ("config", "--index", url),
    ):
        proc = run_cli(*args)
        assert proc.returncode in (1, 2), (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "cannot connect" in lines[0] and "refused" in lines[0].lower()
        assert "s3cret" not in proc.stderr + proc.stdout


def test_two_embedders_on_one_database_never_mix_vector_spaces(
    tmp_path: Path, pg_database: str
) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 6) for i in range(4)})
    assert run_cli("ingest", str(tree), "--index", pg_database, "--quiet").returncode == 0
    hashed = count(pg_database)
    with EmbeddingServer(dim=64) as server:
        mixed = run_cli("ingest", str(tree), "--index", pg_database, "--url", server.url, *TEI)
        assert mixed.returncode == 2 and "--collection" in mixed.stderr
        assert server.stats()["inputs"] == 0
        other = run_cli("ingest", str(tree), "--index", pg_database, "--url", server.url, *TEI,
                        "--collection", "tei64", "--quiet")  # fmt: skip
        assert other.returncode == 0, other.stderr
    meta = dict(rows(pg_database, "SELECT key, value FROM meta"))
    other_meta = dict(rows(pg_database, "SELECT key, value FROM meta", collection="tei64"))
    assert (meta["embedder"], meta["dim"]) == ("hash", "384")
    assert (other_meta["embedder"], other_meta["dim"]) == ("tei", "64")
    assert count(pg_database) == hashed
    dims = rows(
        pg_database, "SELECT DISTINCT vector_dims(embedding) FROM vectors", collection="tei64"
    )
    assert dims == [(64,)]
    for collection in ("funcpipe", "tei64"):
        verify = run_cli("verify", "--index", pg_database, "--collection", collection, str(tree))
        assert verify.returncode == 0, verify.stdout
    search = run_cli("search", "stream", "--index", pg_database, "--collection", "tei64",
                     "--url", server.url, "--json")  # fmt: skip
    assert search.returncode == 1 and "cannot embed the query" in search.stderr  # server gone


def test_a_postgres_index_without_the_extra_names_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        "from funcpipe_rag.cli.app import main; "
        "sys.argv = ['funcpipe', 'search', 'x', '--index', 'postgresql://u@127.0.0.1/db']; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        (
            "funcpipe: a postgresql:// index needs the postgres extra: "
            "pip install 'funcpipe[postgres]' (psycopg is missing)"
        )
    ]
