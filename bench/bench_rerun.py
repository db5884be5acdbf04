"""Re-running on an unchanged tree: the incremental index's promise, measured.

A ~10k-chunk corpus is ingested once, then twice again unchanged, then again after
every file's mtime was touched. Under ``change_check = "stat"`` (the default) the files
written just before the first run are racily fresh there, so their signatures are not
trusted: the first re-run reads and hashes them and stores signatures, the second opens
none; touching every mtime moves every ctime, so that run reads them all again.

Each run is a fresh ``funcpipe ingest`` subprocess; wall time is the run's own
(``timing.wall_s`` in its summary) and, beside it, the whole process including
interpreter start-up. With ``funcpipe serve`` (a separate process) as the embedder, the
server counts the requests each run sent. Targets (reported, never asserted): a re-run
under 5% of the first run's wall time, and 0 requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .bench_http import _serve
from .bench_ingest import CHARS_PER_CHUNK, _funcpipe_cmd, write_corpus

Row = dict[str, Any]


def _run(corpus: Path, db: Path, *extra: str) -> dict[str, Any]:
    report = db.with_suffix(".json")
    cmd = [*_funcpipe_cmd(), "ingest", str(corpus), "--index", str(db), "--quiet"]
    cmd += ["--report", "none", "--report-file", str(report), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    doc: dict[str, Any] = json.loads(report.read_text())
    doc["process_s"] = time.perf_counter() - t0
    return doc


def _requests(url: str) -> int:
    with httpx.Client(timeout=5) as client:
        return int(client.get(f"{url}/stats").json()["embed_requests"])


def bench_rerun(target_chunks: int = 10_000) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-rerun-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        write_corpus(corpus, target_chunks * CHARS_PER_CHUNK)
        with _serve(work) as (url, _pid):
            for label, extra in (
                ("hash embedder", ()),
                (
                    "openai protocol via funcpipe serve",
                    ("--embedder", "openai", "--url", url, "--model", "m"),
                ),
            ):
                db = work / f"{label.split()[0]}.db"
                runs = []
                for step in (
                    "first run",
                    "unchanged re-run",
                    "unchanged re-run again",
                    "after touching every mtime",
                ):
                    if step.startswith("after"):
                        for p in corpus.rglob("*.md"):
                            os.utime(p, None)
                    before = _requests(url)
                    doc = _run(corpus, db, *extra)
                    runs.append(doc)
                    first = runs[0]
                    rows.append(
                        {
                            "name": f"rerun: {label}, {step}",
                            "chunks": doc["chunks"]["stored"],
                            "files_unchanged": doc["files"]["unchanged"],
                            "wall_s": doc["timing"]["wall_s"],
                            "process_s": round(doc["process_s"], 3),
                            "ratio_vs_first": round(
                                doc["timing"]["wall_s"] / first["timing"]["wall_s"], 4
                            ),
                            "requests": _requests(url) - before if "serve" in label else "-",
                            "target": "" if step == "first run" else "ratio < 0.05, 0 requests",
                        }
                    )
    return rows


if __name__ == "__main__":
    for row in bench_rerun():
        print(row)
