"""Retrieval quality on the sample corpus's labelled questions, and what moved it.

``funcpipe eval sample_corpus/.eval/queries.jsonl`` on a fresh index of the sample
corpus with the default settings (hash embedder, 384-d), then the alternatives that
were measured to choose the defaults, each on the same questions in the same run:

* hybrid fused by reciprocal rank fusion (k = 60) instead of max-normalised CombSUM;
* a full-text index without stemming (``unicode61`` instead of ``porter unicode61``);
* the hash embedder's vector ranking with the question's stopwords left out of its
  embedding (an idea for that embedder's own query path; not shipped);

and the same questions on an index built with the in-process semantic model
(``--embedder onnx``, all-MiniLM-L6-v2 as ``make setup`` assembles it), every mode.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from funcpipe_rag.config import RunSettings
from funcpipe_rag.evaluation import (
    DEPTH,
    ModeMetrics,
    answered,
    evaluate,
    load_queries,
    score_ranking,
    summarise,
)
from funcpipe_rag.index import Query, open_index, sqlite_lexical
from funcpipe_rag.index.ranking import query_terms
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.search import query_vector

from .bench_ingest import _funcpipe_cmd

Row = dict[str, Any]
REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "sample_corpus"
QUERIES = CORPUS / ".eval" / "queries.jsonl"
MODEL_DIR = Path(
    os.environ.get("FUNCPIPE_TEST_MODEL_DIR") or REPO / ".venv" / "models" / "all-MiniLM-L6-v2"
)


def _build(db: Path, *args: str) -> None:
    cmd = [*_funcpipe_cmd(), "ingest", str(CORPUS), "--index", str(db), "--quiet", *args]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _row(name: str, m: ModeMetrics) -> Row:
    return {
        "name": name,
        "queries": m.queries,
        "hit@1": round(m.hits_at[0], 3),
        "hit@5": round(m.hits_at[1], 3),
        "hit@10": round(m.hits_at[2], 3),
        "mrr": round(m.mrr, 3),
        f"ndcg@{DEPTH}": round(m.ndcg, 3),
    }


def _without_stopwords(db: Path, mode: str) -> ModeMetrics:
    queries = load_queries(QUERIES)
    ledger = ResourceLedger()
    scores = []
    with contextlib.closing(open_index(db, None, ledger, readonly=True)) as index:
        for q in queries:
            text = " ".join(query_terms(q.text))
            vector = query_vector(index, text, "", ledger, RunSettings())
            hits = index.search(Query(text=q.text, vector=vector, mode=mode, k=DEPTH))
            relevance = [answered(h, q) for h in hits]
            scores.append(score_ranking(q.id, mode, relevance, len(q.labels)))
    return summarise(mode, scores)


def bench_retrieval() -> list[Row]:
    queries = load_queries(QUERIES)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-eval-") as tmp:
        db = Path(tmp) / "sample.db"
        _build(db)
        report = evaluate(db, queries)
        for m in report.modes:
            rows.append(_row(f"eval: {m.mode} (default)", m))
        rrf = evaluate(db, queries, modes=("hybrid",), fusion="rrf")
        rows.append(_row("eval: hybrid fused by RRF (k=60)", rrf.modes[0]))
        for mode in ("vector", "hybrid"):
            rows.append(
                _row(f"eval: {mode}, hash query without stopwords", _without_stopwords(db, mode))
            )

        plain = Path(tmp) / "unstemmed.db"
        stemmed = sqlite_lexical.SCHEMA
        sqlite_lexical.SCHEMA = tuple(
            s.replace(sqlite_lexical.TOKENIZE, "unicode61 remove_diacritics 2") for s in stemmed
        )
        try:  # built in this process, so the new index takes the patched tokeniser
            from funcpipe_rag.ingest import IngestRequest, ingest

            ingest(IngestRequest(roots=(str(CORPUS),), settings=RunSettings(index=str(plain))))
        finally:
            sqlite_lexical.SCHEMA = stemmed
        unstemmed = evaluate(plain, queries, modes=("hybrid", "lexical"))
        for m in unstemmed.modes:
            rows.append(_row(f"eval: {m.mode}, full-text index without stemming", m))

        if not (MODEL_DIR / "model.onnx").is_file():
            raise SystemExit(f"{MODEL_DIR} is missing: `make setup` assembles the model")
        semantic = Path(tmp) / "onnx.db"
        _build(semantic, "--embedder", "onnx", "--model", str(MODEL_DIR))
        for m in evaluate(semantic, queries).modes:
            rows.append(_row(f"eval: {m.mode}, --embedder onnx (all-MiniLM-L6-v2)", m))
    return rows
