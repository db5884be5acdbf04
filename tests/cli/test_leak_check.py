"""`funcpipe leak-check` through the real command: every scenario clean and exercised,
a negative control that must fail, and honesty about faults that did not fire."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from funcpipe_rag.leakcheck import SCENARIOS
from tests.cli.helpers import REPO, run_cli, write_tree
from tests.indexes import rows


def leak_check(*args: str, **env: str) -> tuple[int, dict]:
    proc = run_cli("leak-check", "--json", *args, timeout=240, **env)
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "funcpipe.leak-check/1" and doc["exit_code"] == proc.returncode
    return proc.returncode, doc


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_is_exercised_and_clean(scenario: str) -> None:
    code, doc = leak_check("--scenario", scenario)
    (row,) = doc["scenarios"]
    assert row["scenario"] == scenario
    assert row["exercised"] is True, row
    assert row["verdict"] == "clean", row
    assert row["open_by_kind"] == {} and set(row["os_delta"].values()) == {0}
    assert code == 0


LEAKY_SITECUSTOMIZE = textwrap.dedent(
    """
    # Negative control for leak-check: a deliberately leaky stage. It opens one real file
    # per run and registers it in the run's ledger, and never closes it.
    import funcpipe_rag.ingest as _ingest

    _LEAKED = []
    _original = _ingest.read_files


    def _leaky_read_files(files, ledger, **kwargs):
        _LEAKED.append(open(__file__))  # noqa: SIM115 - the point is to leak it
        ledger.acquire("file", "deliberately leaked by the test fixture")
        return _original(files, ledger, **kwargs)


    _ingest.read_files = _leaky_read_files
    """
)


def test_a_deliberately_leaky_stage_is_reported_by_kind_and_exits_4(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(LEAKY_SITECUSTOMIZE)
    code, doc = leak_check(
        "--scenario", "normal", "--scenario", "consumer-exception", "--scenario", "sigterm",
        PYTHONPATH=f"{plugin}:{REPO / 'src'}",
    )  # fmt: skip
    assert code == 4
    for row in doc["scenarios"]:
        assert row["verdict"] == "LEAK", row
        assert row["open_by_kind"] == {"file": 1}
        assert row["os_delta"]["fds"] >= 1


def test_a_fault_that_did_not_fire_is_not_exercised_never_clean(tmp_path: Path) -> None:
    # Two short lines of output fit in the pipe buffer: the run finishes before the
    # reader closes, so there is no broken pipe to survive, and the check must say so.
    tree = write_tree(tmp_path / "tiny", {"a.md": "One short line.\n"})
    code, doc = leak_check(str(tree), "--scenario", "broken-pipe", "--scenario", "normal")
    rows = {r["scenario"]: r for r in doc["scenarios"]}
    assert rows["broken-pipe"]["verdict"] == "not exercised"
    assert rows["normal"]["verdict"] == "clean"
    assert code == 1


def test_user_tree_and_server_without_touching_their_index(tmp_path: Path) -> None:
    from funcpipe_rag.serve import EmbeddingServer

    tree = write_tree(
        tmp_path / "docs", {f"f{i}.md": f"Paragraph {i} about sockets.\n" for i in range(5)}
    )
    with EmbeddingServer() as server:
        code, doc = leak_check(
            str(tree), "--url", server.url, "--embedder", "tei", "--scenario", "normal",
            "--scenario", "early-break",
        )  # fmt: skip
        assert server.stats()["embed_requests"] >= 1
    assert code == 0, doc
    assert not list(tmp_path.rglob("*.db")) and not (REPO / "funcpipe.db").exists()


def test_unknown_scenario_is_a_usage_error() -> None:
    proc = run_cli("leak-check", "--scenario", "meteor-strike")
    assert proc.returncode == 2 and "unknown scenario meteor-strike" in proc.stderr


def test_the_text_matrix() -> None:
    proc = run_cli("leak-check", "--scenario", "normal", timeout=120)
    assert proc.returncode == 0
    assert "funcpipe leak-check" in proc.stderr and "clean" in proc.stderr


def test_scenarios_against_a_postgresql_index_are_clean_and_leave_no_collection(
    pg_database: str,
) -> None:
    """Sessions on the server count too: the report's pg_sessions must be back to 0."""
    chosen = ("normal", "consumer-exception", "breaker-trip", "sigterm")
    code, doc = leak_check(*(a for s in chosen for a in ("--scenario", s)), "--index", pg_database)
    assert [r["scenario"] for r in doc["scenarios"]] == list(chosen)
    for row in doc["scenarios"]:
        assert row["exercised"] is True and row["verdict"] == "clean", row
    assert code == 0
    schemas = rows(pg_database, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'leak_check%'")
    assert schemas == []
    refused = run_cli("leak-check", "--index", "some.db")
    assert refused.returncode == 2 and "postgresql://" in refused.stderr
