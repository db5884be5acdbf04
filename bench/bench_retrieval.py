"""Retrieval quality on the sample corpus: the hash embedder against the onnx model.

Until ``funcpipe eval`` exists, this is the measurement: the same queries, each with the
files that answer it, searched in two indexes of the sample corpus (``--embedder hash``,
the default 384 dimensions, and ``--embedder onnx`` with all-MiniLM-L6-v2). A query's
reciprocal rank is 1 / the rank of the first chunk from a file that answers it among
the top 10 (0 when none is there); MRR is their mean, and recall@5 the share of queries
answered in the top 5.

The queries come in two kinds, reported apart as well as together: ``lexical`` ones
use the words of the document that answers them (what feature hashing is made for),
``paraphrase`` ones say the same thing in other words (what a person who has not read
the document types).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from funcpipe_rag.config import RunSettings
from funcpipe_rag.ingest import IngestRequest, ingest
from funcpipe_rag.search import search_index

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "sample_corpus"
MODEL_DIR = REPO / ".venv" / "models" / "all-MiniLM-L6-v2"
_K = 10

# (kind, query, files that answer it, relative to sample_corpus)
QUERIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("lexical", "how does the circuit breaker stop a run",
     ("reference/policies/circuit-breaker.md", "ops/runbooks/breaker-tripped.md")),
    ("lexical", "SQLite WAL mode checkpoint",
     ("reference/storage/sqlite-wal-mode.md", "ops/runbooks/stuck-wal-checkpoint.md")),
    ("lexical", "parsing the Retry-After header", ("reference/policies/retry-after-header.txt",)),
    ("lexical", "exponential backoff with jitter", ("reference/policies/retry-and-backoff.md",)),
    ("lexical", "red lentil dal", ("kitchen/recipes/weeknight-red-lentil-dal.md",)),
    ("lexical", "why chunks overlap", ("guides/chunking/overlap-explained.txt",)),
    ("lexical", "HTTP keep-alive and connection pools",
     ("reference/http/keep-alive-and-pools.md",)),
    ("lexical", "SIGPIPE when piping output into head", ("ops/unix/pipelines-and-sigpipe.md",)),
    ("lexical", "ExitStack patterns", ("guides/python/resources/exitstack-patterns.md",)),
    ("lexical", "disk full during ingest", ("ops/runbooks/disk-full-during-ingest.md",)),
    ("lexical", "the feature hashing embedder", ("reference/embedders/feature-hashing.md",)),
    ("lexical", "Ollama embedding server", ("reference/embedders/ollama.md",)),
    ("paraphrase", "what to do when the machine runs out of storage space while indexing",
     ("ops/runbooks/disk-full-during-ingest.md",)),
    ("paraphrase", "when should I feed the starter and shape the loaves",
     ("kitchen/recipes/sourdough-weekend-schedule.txt",)),
    ("paraphrase", "a hearty slow-cooked dish for cold months",
     ("kitchen/recipes/winter-stews-collection.md",)),
    ("paraphrase", "diary of a long hike across Scotland",
     ("travel/logs/2023/west-highland-way.md",)),
    ("paraphrase", "bathing in volcanic pools on a cold island holiday",
     ("travel/logs/2024/hokkaido-winter.txt",)),
    ("paraphrase", "why do my search results show the same passage several times",
     ("notes/2026/02/postmortem-duplicate-chunks.md",)),
    ("paraphrase", "someone pressed Ctrl-C halfway through, is the data still consistent",
     ("reference/storage/crash-safety.md", "ops/unix/signals-sigint-sigterm.md")),
    ("paraphrase", "the model server says it is temporarily unavailable",
     ("ops/runbooks/embedding-server-503.md",)),
    ("paraphrase", "files in an old European character set fail to load",
     ("ops/runbooks/decode-errors.md",)),
    ("paraphrase", "how can I tell whether a ranking change made answers better",
     ("guides/search/evaluating-retrieval.md",)),
    ("paraphrase", "tear things down in the opposite order they were set up",
     ("guides/python/resources/lifo-cleanup.txt",
      "guides/python/resources/exitstack-patterns.md")),
    ("paraphrase", "growing vegetables in wooden boxes in the back yard",
     ("garden/notes/raised-beds-2025.md",)),
    ("paraphrase", "the nightly job is taking far longer than it normally does",
     ("ops/runbooks/slow-ingest.md",)),
    ("paraphrase", "turning kitchen scraps and fallen leaves into soil",
     ("garden/notes/composting.txt",)),
)  # fmt: skip


def reciprocal_rank(paths: list[str], answers: tuple[str, ...]) -> float:
    for rank, path in enumerate(paths, start=1):
        if any(path.endswith("/" + a) for a in answers):
            return 1.0 / rank
    return 0.0


def _evaluate(name: str, settings: RunSettings) -> dict[str, Any]:
    summary = ingest(IngestRequest(roots=(str(CORPUS),), settings=settings))
    ranks: dict[str, list[float]] = {"lexical": [], "paraphrase": []}
    for kind, query, answers in QUERIES:
        hits = search_index(Path(settings.index), query, k=_K, settings=settings)
        ranks[kind].append(reciprocal_rank([h.path for h in hits], answers))
    every = ranks["lexical"] + ranks["paraphrase"]
    return {
        "name": f"retrieval: {name}",
        "queries": len(every),
        "mrr": round(sum(every) / len(every), 3),
        "mrr_lexical": round(sum(ranks["lexical"]) / len(ranks["lexical"]), 3),
        "mrr_paraphrase": round(sum(ranks["paraphrase"]) / len(ranks["paraphrase"]), 3),
        "recall_at_5": round(sum(r >= 1 / 5 for r in every) / len(every), 3),
        "chunks": summary.stats.chunks_stored,
    }


def bench_retrieval() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        return [
            _evaluate("hash 384-d", RunSettings(index=str(Path(tmp) / "hash.db"))),
            _evaluate(
                "onnx all-MiniLM-L6-v2",
                RunSettings(
                    index=str(Path(tmp) / "onnx.db"), embedder="onnx", model=str(MODEL_DIR)
                ),
            ),
        ]


if __name__ == "__main__":
    for row in bench_retrieval():
        print(row)
