"""`--embedder onnx` through the real command and the library: a semantic search over an
index that remembers its model, clean resources on every exit path, and one clear line
for a missing model file or a missing extra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from funcpipe_rag.config import RunSettings
from funcpipe_rag.embedders.model_dir import find_model
from funcpipe_rag.embedders.onnx import OnnxEmbedder
from funcpipe_rag.ingest import IngestRequest, ingest
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.result import Ok
from funcpipe_rag.search import search_index
from tests.cli.helpers import (
    CLI,
    assert_clean,
    cli_env,
    count_rows,
    prose,
    read_report,
    run_cli,
    write_tree,
)
from tests.embedders.minilm import minilm_dir, os_threads

DOCS = {
    "kitchen/bread.md": "Sourdough needs a lively starter. Mix flour, water and salt, fold the "
    "dough, let it rise overnight in the fridge, then bake it in a very hot oven until the "
    "crust turns dark brown.\n",
    "ops/breaker.md": "The circuit breaker stops an ingest run when too many embedding requests "
    "fail: once the share of failed items passes the threshold, the stream is closed.\n",
    "travel/porto.md": "We took the night train north along the coast and arrived at the old "
    "station by the river before sunrise; the tiled facades glowed in the first light.\n",
    "garden/compost.md": "A compost heap wants a mix of green cuttings and brown leaves, turned "
    "every few weeks and kept as damp as a wrung-out sponge.\n",
}


def linked_model(into: Path) -> Path:
    """A model directory of its own (links to the real files), to rename or break."""
    into.mkdir(parents=True)
    for path in minilm_dir().rglob("*"):
        if path.is_file():
            link = into / path.relative_to(minilm_dir())
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return into


def onnx_ingest(tree: Path, db: Path, model: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    report = db.with_suffix(".json")
    proc = run_cli("ingest", str(tree), "--index", str(db), "--embedder", "onnx",
                   "--model", str(model), "--report", "none", "--report-file", str(report),
                   *extra, timeout=300)  # fmt: skip
    return proc.returncode, read_report(report)


def test_search_embeds_the_query_with_the_model_the_index_remembers(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", DOCS)
    model = linked_model(tmp_path / "models" / "minilm")
    db = tmp_path / "x.db"
    code, doc = onnx_ingest(tree, db, Path(os.path.relpath(model)))
    assert code == 0, doc
    assert doc["chunks"]["stored"] == count_rows(db) == 4
    assert doc["resources"]["by_kind"]["model_session"] == {
        "acquired": 1, "released": 1, "open": 0,
    }  # fmt: skip
    assert_clean(doc)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # the index names the model by its absolute path
    shown = json.loads(run_cli("config", "--index", str(db), "--json", cwd=elsewhere).stdout)
    assert shown["embedder"]["value"] == "onnx"
    assert shown["model"] == {"value": str(model), "origin": f"index {db}"}

    # No word of the query is in the bread document: only a semantic model finds it.
    hits = run_cli("search", "making a loaf at home", "--index", str(db), "--json", cwd=elsewhere)
    assert hits.returncode == 0, hits.stderr
    ranked = [json.loads(line)["path"] for line in hits.stdout.splitlines()]
    assert ranked[0].endswith("kitchen/bread.md"), ranked
    hits = run_cli("search", "a walk among flowers and soil", "--index", str(db), "--json")
    assert json.loads(hits.stdout.splitlines()[0])["path"].endswith("garden/compost.md")

    model.rename(tmp_path / "models" / "moved")  # the query needs that very model
    gone = run_cli("search", "bread", "--index", str(db))
    assert gone.returncode == 2
    assert gone.stderr.strip() == f"funcpipe: model directory {model} does not exist"


def test_the_index_refuses_another_pooling_or_prefix(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": DOCS["kitchen/bread.md"]})
    db = tmp_path / "x.db"
    code, _ = onnx_ingest(tree, db, minilm_dir())
    assert code == 0
    for flag, value in (("--pooling", "cls"), ("--passage-prefix", "passage: ")):
        proc = run_cli("ingest", str(tree), "--index", str(db), flag, value)
        assert proc.returncode == 2
        assert "the index" in proc.stderr and "--reembed" in proc.stderr, proc.stderr
    (tree / "b.md").write_text(DOCS["kitchen/bread.md"])  # same text: its vector is known
    plan = run_cli("ingest", str(tree), "--index", str(db), "--plan")
    entries = {json.loads(line)["path"].rsplit("/", 1)[1]: json.loads(line) for line in
               plan.stdout.splitlines()}  # fmt: skip
    assert entries["a.md"]["status"] == "unchanged"
    assert (entries["b.md"]["status"], entries["b.md"]["to_embed"]) == ("new", 0)
    again = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert again.returncode == 0, again.stderr  # the index's own settings, unasked


def test_sigint_mid_run_releases_the_session_and_keeps_what_was_stored(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 8) for i in range(16)})
    report, db = tmp_path / "r.json", tmp_path / "x.db"
    proc = subprocess.Popen(
        [*CLI, "ingest", str(tree), "--index", str(db), "--embedder", "onnx",
         "--model", str(minilm_dir()), "--batch-size", "4", "--jsonl",
         "--report", "none", "--report-file", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(FUNCPIPE_COMMIT_EVERY="4"),
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # one batch committed: the run is embedding
    assert first and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = read_report(report)
    assert doc["status"] == "interrupted"
    assert doc["chunks"]["stored"] == count_rows(db) > 0
    assert doc["resources"]["by_kind"]["model_session"]["released"] == 1
    assert_clean(doc)


def test_search_uses_the_prefixes_and_pooling_the_index_was_built_with(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"bread.md": DOCS["kitchen/bread.md"]})
    built = RunSettings(
        index=str(tmp_path / "x.db"), embedder="onnx", model=str(minilm_dir()),
        query_prefix="query: ", passage_prefix="passage: ", pooling="max",
    )  # fmt: skip
    assert ingest(IngestRequest(roots=(str(tree),), settings=built)).status == "ok"
    (hit,) = search_index(Path(built.index), "baking at home", k=1, mode="vector")  # no settings
    plain = OnnxEmbedder(find_model(minilm_dir(), pooling="max"), ledger=ResourceLedger())
    try:
        q = plain.embed_query("query: baking at home")
        (p,) = plain.embed_batch(["passage: " + DOCS["kitchen/bread.md"].strip()])
    finally:
        plain.close()
    assert isinstance(p, Ok)
    assert hit.score == pytest.approx(float(q @ p.value), abs=1e-4)


def _settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        index=str(tmp_path / "x.db"), embedder="onnx", model=str(minilm_dir()), threads=2,
        batch_size=2,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["consumer-exception", "early-break"])
def test_in_process_exits_release_the_session_and_its_threads(tmp_path: Path, how: str) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 3) for i in range(4)})
    seen: list[object] = []

    def consumer(r: object) -> bool:
        seen.append(r)
        if how == "consumer-exception" and len(seen) == 3:
            raise RuntimeError("injected consumer failure")
        return len(seen) < 3

    threads_before = os_threads()
    ledger = ResourceLedger()
    summary = ingest(
        IngestRequest(roots=(str(tree),), settings=_settings(tmp_path)),
        ledger=ledger,
        on_result=consumer,
    )
    assert len(seen) == 3
    assert summary.status == ("error" if how == "consumer-exception" else "ok")
    assert summary.ledger.open_total == 0
    assert summary.ledger.by_kind["model_session"].released == 1
    assert not summary.to_jsonable()["resources"]["leak"]
    assert os_threads() == threads_before  # the model's native threads ended too


def test_a_missing_model_file_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {"a.md": "text\n"})
    model = linked_model(tmp_path / "m")
    (model / "tokenizer.json").unlink()
    proc = run_cli("ingest", str(tree), "--index", str(tmp_path / "x.db"), "--embedder", "onnx",
                   "--model", str(model))  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"funcpipe: model directory {model} has no tokenizer.json; funcpipe never downloads "
        "a model: export or copy it there"
    )
    assert not (tmp_path / "x.db").exists()


def test_without_the_extra_the_command_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "onnxruntime"
    blocker.mkdir(parents=True)  # stands in front of the installed package
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n"
    )
    tree = write_tree(tmp_path / "docs", {"a.md": "text\n"})
    proc = run_cli("ingest", str(tree), "--index", str(tmp_path / "x.db"), "--embedder", "onnx",
                   "--model", str(minilm_dir()), PYTHONPATH=str(blocker.parent))  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "funcpipe: --embedder onnx needs the onnx extra (onnxruntime is not installed): "
        "pip install 'funcpipe[onnx]'"
    )


def test_onnx_without_a_model_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("ingest", str(tmp_path), "--embedder", "onnx")
    assert proc.returncode == 2
    assert "--embedder onnx needs --model DIR" in proc.stderr


def test_leak_check_runs_its_in_process_scenarios_with_the_model(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 3) for i in range(6)})
    proc = run_cli(
        "leak-check", str(tree), "--json", "--embedder", "onnx", "--model", str(minilm_dir()),
        "-s", "consumer-exception", "-s", "producer-exception", "-s", "early-break",
        timeout=300,
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, doc
    for row in doc["scenarios"]:
        assert row["exercised"] and row["verdict"] == "clean", row
