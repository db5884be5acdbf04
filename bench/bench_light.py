"""Issue 15's two light targets, side by side with main in one run: the splitter and --plan.

Corpus: the real corpus (``bench/corpus.py``: CPython's stdlib + ``/usr/share/doc``,
about 3,600 files, 64 MB). ``main`` rows run an earlier commit from a git worktree
(splitter: 5e53c30, before the first speed-ups; plan: :data:`PLAN_BASE`), ``current``
rows this checkout. Rates are reported,
never asserted. The machine is shared: each measurement is the best of several runs,
and the runs of the contenders alternate, so a burst of load hits them alike.

* splitter: ``split_text`` of current and of main against LangChain's
  ``RecursiveCharacterTextSplitter(800, 100)`` on the same decoded texts, code
  (``*.py``) and prose (the rest) apart, MB/s of text, best of 5 (target: current at
  least 2x LangChain).
* plan: ``funcpipe ingest --plan`` on the unchanged tree, process wall time including
  interpreter start-up, best of 5 after one warm-up run each (target: at most 0.5 s),
  against main at :data:`PLAN_BASE`. Each tree plans against an index it built itself
  with one full ingest (hash embedder): their schemas differ. Bytecode is allowed, as
  an installed package has it: both trees are compiled first and the child runs
  without ``PYTHONDONTWRITEBYTECODE`` (which would make every run compile the
  package's sources again, ~0.15 s). The corpus files are old, so this checkout's
  plan trusts their stat signatures (``change_check = "stat"``, the default) and
  opens none of them; a ``content`` row shows it reading and hashing every file.

Run: ``python -m bench light`` (a few minutes, most of it the two full ingests), or
``python -m bench plan`` for the plan rows alone; ``python -m bench splitter`` runs
current and previous split_text against LangChain (CPU seconds, rounds alternating).
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .corpus import REPO, baseline_src, corpus_files, real_corpus
from .splitter_race import race, round_ratios

Row = dict[str, Any]
MAIN_COMMIT = "5e53c30"
PLAN_BASE = "c003fd3"  # main before the stat signature
ROUNDS = 5
TIMEOUT_S = 900


def _load_splitter(src: Path) -> ModuleType:
    """Main's splitter module, loaded beside the current one under another name."""
    path = src / "funcpipe_rag" / "chunking" / "splitter.py"
    spec = importlib.util.spec_from_file_location("main_splitter", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _splitters(older: str, commit: str) -> dict[str, Callable[[str], list[Any]]]:
    """The contenders of a splitter race: this checkout's split_text, ``commit``'s (named
    ``older``) and LangChain's ``RecursiveCharacterTextSplitter(800, 100)``."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from funcpipe_rag.chunking import splitter as current

    old = _load_splitter(baseline_src(commit))
    ours, theirs = current.ChunkerSettings(), old.ChunkerSettings()
    lc = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=100)
    return {
        "current": lambda t: current.split_text(t, ours),
        older: lambda t: old.split_text(t, theirs),
        "langchain": lc.split_text,
    }


def bench_light_splitter(root: Path) -> list[Row]:
    contenders = _splitters(f"main {MAIN_COMMIT}", MAIN_COMMIT)
    rows: list[Row] = []
    for timings in race(root, contenders, ROUNDS, clock=time.perf_counter).values():
        for name, timing in timings.items():
            rows.append(
                {
                    "name": timing.label,
                    "chunks": timing.chunks,
                    "mb_per_s": timing.mb / timing.best_s,
                    "x_langchain": timings["langchain"].best_s / timing.best_s,
                    "target": "x_langchain >= 2" if name == "current" else "",
                }
            )
    return rows


# split_text before the splitter's last speed-up: the "previous" contender of bench splitter.
PREVIOUS_SPLITTER = "8e2595a"


def bench_splitter() -> list[Row]:
    """``python -m bench splitter``: current and previous split_text against LangChain.

    Contenders alternate within each round; each one's time is its best round in CPU
    seconds of this process (the machine is shared: CPU time is what load disturbs
    least), and each round's current / LangChain ratio is listed too.
    ``FUNCPIPE_BENCH_ROUNDS`` rounds (5 by default), on the full real corpus.
    """
    root = real_corpus("full")
    rounds = int(os.environ.get("FUNCPIPE_BENCH_ROUNDS", ROUNDS))
    contenders = _splitters(f"previous {PREVIOUS_SPLITTER}", PREVIOUS_SPLITTER)
    rows: list[Row] = [{"name": f"corpus: {root} ({len(corpus_files(root)):,} files)"}]
    for timings in race(root, contenders, rounds).values():
        lc_timing = timings["langchain"]
        for name, timing in timings.items():
            rows.append(
                {
                    "name": timing.label,
                    "chunks": timing.chunks,
                    "mb_per_s_cpu": timing.mb / timing.best_s,
                    "x_langchain": lc_timing.best_s / timing.best_s,
                    "x_langchain_rounds": round_ratios(lc_timing, timing),
                    "target": "x_langchain >= 2" if name == "current" else "",
                }
            )
    return rows


def _env(src: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FUNCPIPE_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def _run(args: list[str], work: Path, src: Path | None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "funcpipe_rag", *args],
        cwd=work,
        env=_env(src),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=TIMEOUT_S,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"funcpipe {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return wall


def bench_light_plan(root: Path, work: Path) -> list[Row]:
    main = baseline_src(PLAN_BASE)
    base = f"main {PLAN_BASE}"
    trees: dict[str, Path | None] = {"current": None, base: main}
    for src in (REPO / "src", main):
        compileall.compile_dir(src, quiet=1)
    plans: dict[str, tuple[list[str], Path | None]] = {}
    for name, src in trees.items():
        db = work / f"plan-{name.split()[0]}.db"
        _run(["ingest", str(root), "--index", str(db), "--quiet", "--report", "none"], work, src)
        plans[name] = (["ingest", str(root), "--index", str(db), "--plan"], src)
    current_plan = plans["current"][0]
    plans["current, change_check=content"] = ([*current_plan, "--change-check", "content"], None)
    for args, src in plans.values():
        _run(args, work, src)  # warm-up: bytecode of everything it imports, page cache
    best = {name: float("inf") for name in plans}
    for _ in range(ROUNDS):
        for name, (args, src) in plans.items():
            best[name] = min(best[name], _run(args, work, src))
    return [
        {
            "name": f"plan, unchanged tree ({len(corpus_files(root)):,} files), "
            f"bytecode cached: {name}",
            "process_s": elapsed,
            "x_main": best[base] / elapsed,
            "target": "<= 0.5 s" if name == "current" else "",
        }
        for name, elapsed in best.items()
    ]


def bench_light(*, splitter: bool = True) -> list[Row]:
    root = real_corpus("full")
    rows = bench_light_splitter(root) if splitter else []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-light-") as tmp:
        rows += bench_light_plan(root, Path(tmp))
    return rows


def bench_plan() -> list[Row]:
    """The plan rows alone (``python -m bench plan``)."""
    return bench_light(splitter=False)
