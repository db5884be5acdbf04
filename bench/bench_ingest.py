"""End-to-end ingest: throughput and peak RSS at 10k, 100k and 300k chunks.

Each corpus is deterministic English-like text (the statistics of
``bench_chunking.english_like_text``: a seeded Zipf-like vocabulary, sentences, paragraphs,
now and then a list) written once to a temporary directory as files of 50-200 KB in
nested folders, sized for about 10k / 100k / 300k chunks at chunk_size 800, overlap 100.
Generation is not timed; the corpora are deleted at the end.

Every ingest runs in a fresh ``funcpipe ingest`` subprocess (hash embedder), so the peak
RSS in its ``--report-file`` summary is that run's alone. The flatness row compares the
peak RSS of the 300k run with the 10k run; targets are reported, never asserted.

Run: ``python -m bench ingest`` (or ``python -m bench.bench_ingest``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from funcpipe_rag.chunking.chunks import iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import iter_documents
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import iter_paths

from .bench_chunking import paragraphs

SEED = 20240601
SIZES = (10_000, 100_000, 300_000)  # target chunk counts
# Chunks end at sentence or paragraph breaks, so on this text a chunk at 800/100 adds
# about 565 new characters, not 700 (measured by chunking the generated text).
CHARS_PER_CHUNK = 565
FILE_MIN, FILE_MAX = 50_000, 200_000
FILES_PER_DIR = 16
DIRS_PER_LEVEL = 8
RSS_RATIO_TARGET = 1.10
RSS_ABS_TARGET_MB = 150.0
TIMEOUT_S = 600

Row = dict[str, object]


def write_corpus(root: Path, n_chars: int, seed: int = SEED) -> tuple[int, int]:
    """Write about ``n_chars`` of text under ``root`` as .md files of 50-200 KB in
    folders nested two deep; returns (files, characters written)."""
    rng = random.Random(seed ^ 0x5EED)
    stream = paragraphs(seed)
    written = 0
    n_files = 0
    while written < n_chars:
        target = min(rng.randint(FILE_MIN, FILE_MAX), max(n_chars - written, 1))
        parts: list[str] = []
        size = 0
        while size < target:
            p = next(stream)
            parts.append(p)
            size += len(p) + 2
        leaf = n_files // FILES_PER_DIR
        folder = root / f"d{leaf // DIRS_PER_LEVEL:03d}" / f"s{leaf % DIRS_PER_LEVEL:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(parts) + "\n"
        (folder / f"doc{n_files:05d}.md").write_text(text, encoding="utf-8")
        written += len(text)
        n_files += 1
    return n_files, written


def _funcpipe_cmd() -> list[str]:
    cli_main = Path(__file__).resolve().parents[1] / "src/funcpipe_rag/cli/__main__.py"
    if cli_main.exists():
        return [sys.executable, "-m", "funcpipe_rag.cli"]
    script = Path(sys.executable).parent / "funcpipe"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from funcpipe_rag.cli.app import main; main()"]


def run_ingest(corpus: Path, work: Path, *, index: bool) -> dict[str, Any]:
    """One ``funcpipe ingest`` in a fresh process; returns its funcpipe.run/1 summary
    plus ``process_s``, the subprocess wall time including interpreter start-up."""
    report = work / "report.json"
    db = work / "index.db"
    for p in (report, db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    cmd = [*_funcpipe_cmd(), "ingest", str(corpus), "--report", "none"]
    cmd += ["--report-file", str(report), "--quiet"]
    cmd += ["--index", str(db)] if index else ["--no-index", "--jsonl"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.run(
            cmd,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=devnull,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT_S,
            check=False,
        )
    process_s = time.perf_counter() - t0
    if not report.exists():
        raise RuntimeError(f"ingest wrote no report (exit {proc.returncode}): {proc.stderr!r}")
    summary: dict[str, Any] = json.loads(report.read_text())
    summary["process_s"] = process_s
    if index:
        summary["index_mb"] = sum(
            p.stat().st_size for p in work.glob("index.db*") if p.is_file()
        ) / (1 << 20)
    for p in (report, db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    return summary


def _ingest_row(name: str, target: int, files: int, s: dict[str, Any]) -> Row:
    stored = s["chunks"]["stored"]
    wall = s["timing"]["wall_s"]
    row: Row = {
        "name": name,
        "target": target,
        "files": files,
        "chunks": stored,
        "seconds": round(wall, 2),
        "chunks_per_s": round(stored / wall) if wall > 0 else 0,
        "peak_rss_mb": s["peak_rss_mb"],
        "process_s": round(s["process_s"], 2),
        "status": f"{s['status']} (exit {s['exit_code']})",
    }
    if "index_mb" in s:
        row["index_mb"] = round(s["index_mb"], 1)
    return row


def chunk_only(corpus: Path) -> tuple[int, float]:
    """Walk, validate, read and chunk ``corpus`` in-process (no embedding, no index)."""
    ledger = ResourceLedger()
    settings = ChunkerSettings(chunk_size=800, overlap=100)
    t0 = time.perf_counter()
    docs = iter_documents(iter_paths([corpus]), ledger)
    n = sum(1 for r in iter_chunks(docs, settings, space="bench") if isinstance(r, Ok))
    return n, time.perf_counter() - t0


def bench_ingest(sizes: tuple[int, ...] = SIZES) -> list[Row]:
    rows: list[Row] = []
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-ingest-") as tmp:
        base = Path(tmp)
        work = base / "work"
        work.mkdir()
        corpora: dict[int, tuple[Path, int, int]] = {}
        for target in sizes:
            corpus = base / f"corpus_{target}"
            files, chars = write_corpus(corpus, target * CHARS_PER_CHUNK, seed=SEED + target)
            corpora[target] = (corpus, files, chars)
            print(
                f"  corpus {target:,}: {files} files, {chars / 1e6:.1f} MB",
                file=sys.stderr,
                flush=True,
            )

        name = "ingest e2e (hash embedder, SQLite index)"
        for target in sizes:
            corpus, files, _ = corpora[target]
            s = run_ingest(corpus, work, index=True)
            results[target] = s
            rows.append(_ingest_row(name, target, files, s))
            print(f"  {name} {target:,}: {s['timing']['wall_s']:.1f} s", file=sys.stderr)

        mid = 100_000 if 100_000 in corpora else sizes[len(sizes) // 2]
        corpus, files, chars = corpora[mid]
        s = run_ingest(corpus, work, index=False)
        rows.append(_ingest_row("ingest e2e (--no-index --jsonl > /dev/null)", mid, files, s))

        n, seconds = chunk_only(corpus)
        rows.append(
            {
                "name": "chunking only (walk+read+iter_chunks, in-process)",
                "target": mid,
                "files": files,
                "chunks": n,
                "seconds": round(seconds, 2),
                "chunks_per_s": round(n / seconds),
                "mb_per_s": round(chars / seconds / 1e6, 1),
            }
        )

    lo, hi = min(results), max(results)
    rss_lo, rss_hi = results[lo]["peak_rss_mb"], results[hi]["peak_rss_mb"]
    ratio = rss_hi / rss_lo if rss_lo else float("inf")
    rows.append(
        {
            "name": f"rss flatness {lo // 1000}k→{hi // 1000}k",
            "target": f"ratio ≤ {RSS_RATIO_TARGET:.2f}, peak < {RSS_ABS_TARGET_MB:.0f} MB",
            "peak_rss_mb": rss_hi,
            "ratio": round(ratio, 3),
        }
    )
    peak = max(r["peak_rss_mb"] for r in results.values())
    ratio_ok = ratio <= RSS_RATIO_TARGET
    abs_ok = peak < RSS_ABS_TARGET_MB
    rows.append(
        {
            "name": "rss targets met",
            "target": f"ratio ≤ {RSS_RATIO_TARGET:.2f}: {'yes' if ratio_ok else 'NO'}; "
            f"peak < {RSS_ABS_TARGET_MB:.0f} MB: {'yes' if abs_ok else 'NO'}",
            "peak_rss_mb": peak,
            "ratio": round(ratio, 3),
            "status": "met" if ratio_ok and abs_ok else "NOT met",
        }
    )
    return rows


if __name__ == "__main__":
    for row in bench_ingest():
        print(row)
