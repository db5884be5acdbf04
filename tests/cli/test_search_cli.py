from __future__ import annotations

import base64
import json
import os
import pty
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from funcpipe_rag.index import is_postgres
from funcpipe_rag.serve import EmbeddingServer
from tests.cli.helpers import CLI, SAMPLE_CORPUS, cli_env, run_cli
from tests.conftest import BACKENDS
from tests.embedders.loopback import Reply, Request, drip, endless_chunked, loopback
from tests.pgcluster import PgServer


@pytest.fixture(scope="module", params=BACKENDS)
def sample_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample corpus in an index of each backend (a file; a PostgreSQL database)."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("idx") / "sample.db")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        db = server.create_database()
    proc = run_cli("ingest", str(SAMPLE_CORPUS), "--index", db, "--quiet")
    # Exit 1 only for the corrupt PDF the sample corpus carries on purpose.
    assert proc.returncode == 1 and "READ/CORRUPT x1;" in proc.stderr, proc.stderr
    return db


def test_search_finds_the_breaker_page(sample_index: str) -> None:
    proc = run_cli(
        "search", "how does the circuit breaker stop a run", "--index", str(sample_index), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("circuit-breaker" in h["path"] for h in hits[:3])


def test_search_unrelated_topic_ranks_its_own_document(sample_index: str) -> None:
    proc = run_cli("search", "red lentil dal", "--index", str(sample_index), "--json", "-k", "1")
    hit = json.loads(proc.stdout)
    assert "lentil-dal" in hit["path"]


def test_search_text_output_and_errors(sample_index: str, tmp_path: Path) -> None:
    proc = run_cli("search", "sqlite wal", "--index", str(sample_index), "-k", "2")
    assert proc.returncode == 0 and "1." in proc.stdout and "2." in proc.stdout
    nowhere = [("--index", str(tmp_path / "none.db"))]
    if is_postgres(sample_index):
        nowhere.append(("--collection", "nothing_here"))
    for args in nowhere:
        missing = run_cli("search", "x", "--index", sample_index, *args)
        assert missing.returncode == 2 and "index not found" in missing.stderr, missing.stderr
    empty = run_cli("search", "  ", "--index", str(sample_index))
    assert empty.returncode == 2 and "query is empty" in empty.stderr


# -- the query over HTTP: bounded time and memory, no secret shown ---------------


@pytest.fixture(scope="module")
def http_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index built with --embedder openai, so a search embeds its query over HTTP."""
    db = tmp_path_factory.mktemp("http-idx") / "http.db"
    server = EmbeddingServer().start()
    try:
        proc = run_cli(
            "ingest", str(SAMPLE_CORPUS / "reference"), "--index", str(db), "--quiet",
            "--embedder", "openai", "--model", "test-model", "--url", server.url,
        )  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    return db


def test_a_dripping_server_ends_a_search_within_the_retry_budget(http_index: Path) -> None:
    with loopback(drip(from_status_line=True)) as server:
        t0 = time.monotonic()
        proc = run_cli(
            "search", "breaker", "--index", str(http_index), "--url", server.url,
            FUNCPIPE_RETRY_BUDGET="2", timeout=60,
        )  # fmt: skip
        elapsed = time.monotonic() - t0
    assert elapsed < 15, elapsed
    assert proc.returncode == 1 and proc.stdout == ""
    assert "cannot embed the query" in proc.stderr
    assert "still answering when the retry budget (2 s) ran out" in proc.stderr


def test_an_endless_answer_ends_a_search_at_the_cap(http_index: Path) -> None:
    with loopback(endless_chunked) as server:
        proc = run_cli("search", "breaker", "--index", str(http_index), "--url", server.url)
        sent = server.sent
    assert proc.returncode == 1 and proc.stdout == ""
    assert "cannot embed the query" in proc.stderr and "MiB cap" in proc.stderr
    assert sent < 100 << 20, sent


def test_a_search_url_password_is_not_shown(http_index: Path) -> None:
    auth: list[str] = []

    def fail(request: Request, reply: Reply) -> None:
        auth.append(request.headers.get("authorization", ""))
        reply.json(503, {"error": "down"})

    with loopback(fail) as server:
        url = server.url.replace("http://", "http://user:s3cret@")
        proc = run_cli(
            "search", "breaker", "--index", str(http_index), "--url", url,
            FUNCPIPE_MAX_ATTEMPTS="1",
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"{server.url}/v1/embeddings answered 503" in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr
    assert auth == ["Basic " + base64.b64encode(b"user:s3cret").decode()]


# -- results people can use: collapsing, filters, stdin, JSON, text ------------------

LICENCE = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of "
    "this software, to deal in the software without restriction. The software is "
    "provided as is, without warranty of any kind.\n"
)
TREE = {
    "licences/a/LICENSE.md": LICENCE,
    "licences/b/LICENSE.md": LICENCE,
    "vendor/c/LICENSE.md": LICENCE,
    "ops/wal.md": "The write-ahead log grows while a reader holds a transaction open. "
    "Ask for permission before you stop a colleague's notebook kernel.\n",
    "ops/disk.md": "When the disk is full the open transaction is rolled back and "
    "committed chunks stay stored.\n",
    "kitchen/soup.md": "Simmer the tomato soup for twenty minutes, then blend it smooth.\n",
}
HIT_KEYS = {
    "schema", "score", "mode", "contributions", "chunk_id", "content_hash", "path",
    "paths", "chunk_ids", "start", "end", "title", "section", "page", "reader", "encoding",
    "text",
}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def small_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A small tree in an index of each backend (both rank, filter and collapse alike)."""
    base = tmp_path_factory.mktemp("small")
    tree = base / "docs"
    for rel, text in TREE.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    if request.param == "sqlite":
        db = str(base / "x.db")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        db = server.create_database()
    proc = run_cli("ingest", str(tree), "--index", db, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return tree, db


def hits_of(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_identical_content_is_one_hit_listing_every_path(small_index: tuple[Path, str]) -> None:
    tree, db = small_index
    for mode in ("hybrid", "vector", "lexical"):
        hits = hits_of(run_cli("search", "warranty permission software", "--index", str(db),
                               "--mode", mode, "--json", "-k", "10"))  # fmt: skip
        licence = [h for h in hits if h["text"] == LICENCE.strip()]
        assert len(licence) == 1, mode
        expected = sorted(str(tree / p) for p in TREE if p.endswith("LICENSE.md"))
        assert licence[0]["paths"] == expected and licence[0]["path"] == expected[0]
        assert len(licence[0]["chunk_ids"]) == 3
        assert len({h["content_hash"] for h in hits}) == len(hits)


def test_the_path_filter_applies_before_the_top_k(small_index: tuple[Path, str]) -> None:
    tree, db = small_index
    # Globally the licence ranks first for "permission"; filtered, ops/wal.md is found.
    for mode in ("hybrid", "lexical"):
        hits = hits_of(run_cli("search", "permission", "--index", str(db), "--mode", mode,
                               "--path", "ops/*", "--json", "-k", "1"))  # fmt: skip
        assert [h["paths"] for h in hits] == [[str(tree / "ops/wal.md")]], mode
    # A collapsed hit lists only the places the filter lets through; globs add up.
    hits = hits_of(run_cli("search", "warranty", "--index", str(db), "--json", "--mode",
                           "lexical", "--path", "licences/*", "--path", "*/c/*"))  # fmt: skip
    assert len(hits[0]["paths"]) == 3
    hits = hits_of(run_cli("search", "warranty", "--index", str(db), "--json", "--mode",
                           "lexical", "--path", "licences/b/*"))  # fmt: skip
    assert hits[0]["paths"] == [str(tree / "licences/b/LICENSE.md")]
    nothing = run_cli("search", "warranty", "--index", str(db), "--path", "no/such/*")
    assert nothing.returncode == 0 and nothing.stdout == "no results\n"


def test_k_and_min_score(small_index: tuple[Path, str]) -> None:
    _, db = small_index
    query = ["search", "the open transaction, the disk and the soup", "--index", str(db), "--json"]
    everything = hits_of(run_cli(*query, "-k", "10"))
    assert len(everything) == 4  # the distinct contents that share a word or a direction
    assert len(hits_of(run_cli(*query, "-k", "2"))) == 2
    assert len(hits_of(run_cli(*query, "--top", "3"))) == 3
    cut = everything[2]["score"] - 1e-6  # JSON rounds scores to 6 places
    kept = hits_of(run_cli(*query, "-k", "10", "--min-score", str(cut)))
    assert [h["content_hash"] for h in kept] == [h["content_hash"] for h in everything[:3]]
    assert hits_of(run_cli(*query, "--min-score", "1.5")) == []  # fused scores stay <= 1
    lexical = hits_of(run_cli(*query, "--mode", "lexical", "--min-score", "0.0001"))
    assert lexical and all(h["contributions"]["lexical"]["score"] > 0 for h in lexical)
    bad = run_cli(*query, "-k", "0")
    assert bad.returncode == 2 and "top" in bad.stderr


def test_the_query_can_come_from_stdin(small_index: tuple[Path, str]) -> None:
    _, db = small_index
    args = ["--index", str(db), "--json"]
    direct = run_cli("search", "tomato soup", *args)
    piped = run_cli("search", "-", *args, stdin=b"tomato soup\n")
    assert piped.returncode == 0 and piped.stdout == direct.stdout
    assert "soup.md" in json.loads(piped.stdout.splitlines()[0])["path"]
    empty = run_cli("search", "-", *args, stdin=b"  \n")
    assert empty.returncode == 2 and "query is empty" in empty.stderr


def test_json_hits_carry_scores_contributions_places_and_text(
    small_index: tuple[Path, str],
) -> None:
    _, db = small_index
    for mode in ("hybrid", "vector", "lexical"):
        hits = hits_of(run_cli("search", "transaction rolled back", "--index", str(db),
                               "--mode", mode, "--json", "-k", "10"))  # fmt: skip
        assert hits
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        for h in hits:
            assert set(h) == HIT_KEYS and h["schema"] == "funcpipe.hit/1" and h["mode"] == mode
            # offsets point at the text in the file it came from
            assert Path(h["path"]).read_text()[h["start"] : h["end"]] == h["text"]
            assert h["page"] is None and h["section"] == "" and h["title"] == ""
            expected = {"vector", "lexical"} if mode == "hybrid" else {mode}
            assert set(h["contributions"]) == expected
            if mode == "hybrid":
                shares = sum(c["share"] for c in h["contributions"].values())
                assert shares == pytest.approx(h["score"], abs=1e-5)
            else:
                assert h["contributions"][mode]["score"] == h["score"]


def test_text_results_are_plain_when_piped(small_index: tuple[Path, str]) -> None:
    tree, db = small_index
    proc = run_cli("search", "warranty permission", "--index", str(db), "-k", "2")
    assert proc.returncode == 0 and "\x1b" not in proc.stdout
    lines = proc.stdout.splitlines()
    first = str(tree / "licences/a/LICENSE.md")
    assert re.fullmatch(rf"1\. [01]\.\d{{3}}  {re.escape(first)} \[0:\d+\]", lines[0]), lines[0]
    assert re.fullmatch(r"   vector #\d+ [-\d.]+ · lexical #\d+ [\d.]+", lines[1]), lines[1]
    assert lines[2].startswith("   Permission is hereby granted")
    assert (
        lines[3] == f"   also in: {tree / 'licences/b/LICENSE.md'}, {tree / 'vendor/c/LICENSE.md'}"
    )
    assert lines[4].startswith("2. ")


def test_a_hit_only_one_ranking_nominated_shows_a_dash_for_the_other(
    small_index: tuple[Path, str],
) -> None:
    # No chunk holds these words: the lexical ranking nominates nothing, every hit comes
    # from the vector ranking alone (a regression: the text output raised on it).
    _, db = small_index
    proc = run_cli("search", "xyzzy plugh", "--index", db, "-k", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"   vector #1 [-\d.]+ · lexical -", lines[1]), lines[1]


def _on_a_terminal(args: list[str], **env: str) -> bytes:
    """What the command writes to stdout when stdout is a pseudo-terminal."""
    full_env = cli_env(COLUMNS="200", **env)
    if "NO_COLOR" not in env:
        full_env.pop("NO_COLOR", None)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, *args], stdout=secondary, stderr=subprocess.PIPE,
                                env=full_env)  # fmt: skip
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
        proc.stderr.close()
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    return b"".join(chunks)


def test_a_terminal_shows_the_passage_with_the_query_words_highlighted(
    small_index: tuple[Path, str],
) -> None:
    _, db = small_index
    args = ["search", "tomato soup", "--index", str(db), "-k", "1"]
    coloured = _on_a_terminal(args).decode()
    # Each query word in the passage is styled: bold and coloured.
    assert re.search(r"\x1b\[1;33mtomato\x1b\[0m \x1b\[1;33msoup\x1b\[0m", coloured), coloured
    plain = _on_a_terminal(args, NO_COLOR="1").decode()
    assert "tomato" in plain
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", plain), plain  # NO_COLOR: no colour
    assert re.search(r"\x1b\[1mtomato\x1b\[0m", plain), plain  # still marked, in bold


def test_text_results_into_a_closed_pipe_exit_141_quietly(sample_index: Path) -> None:
    db = sample_index  # enough text to fill the pipe's buffer
    with subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL) as reader:  # fmt: skip
        assert reader.stdin is not None
        proc = subprocess.run(
            [*CLI, "search", "transaction", "--index", str(db), "-k", "1000"],
            stdin=subprocess.DEVNULL, stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
            env=cli_env(), timeout=60, check=False,
        )  # fmt: skip
        reader.stdin.close()
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_a_lexical_search_needs_no_embedding_server(http_index: Path) -> None:
    # The index remembers its server's URL; that server is gone.
    lexical = run_cli("search", "breaker", "--index", str(http_index), "--mode", "lexical",
                      "--json", FUNCPIPE_MAX_ATTEMPTS="1")  # fmt: skip
    assert lexical.returncode == 0, lexical.stderr
    hits = [json.loads(line) for line in lexical.stdout.splitlines()]
    assert all("breaker" in h["text"].lower() for h in hits)
    assert any("circuit-breaker" in h["path"] for h in hits)
    hybrid = run_cli("search", "breaker", "--index", str(http_index),
                     FUNCPIPE_MAX_ATTEMPTS="1", FUNCPIPE_RETRY_BUDGET="2")  # fmt: skip
    assert hybrid.returncode == 1 and "cannot embed the query" in hybrid.stderr
