"""Retrieval quality on the sample corpus's labelled questions, and what moved it.

``funcpipe eval`` on a fresh index of the sample corpus with the default settings (hash
embedder, 384-d), for two labelled sets: ``sample`` (``.eval/queries.jsonl``, the set
the ranking was developed on) and ``held-out`` (``.eval/heldout.jsonl``, written from
the documents before the document-field and phrase evidence were tried, and kept out of
every choice since). Then the alternatives that were measured to choose the defaults,
each on the same questions in the same run:

* the lexical ranking without its document evidence (titles and paths), without its
  phrases of adjacent query words, and without both (the ranking before either);
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
from collections.abc import Iterator
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
from funcpipe_rag.index import Query, open_index, ranking, sqlite_lexical
from funcpipe_rag.index.ranking import query_terms
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.search import query_vector

from .bench_ingest import _funcpipe_cmd

Row = dict[str, Any]
REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "sample_corpus"
SETS = {
    "sample": CORPUS / ".eval" / "queries.jsonl",
    "held-out": CORPUS / ".eval" / "heldout.jsonl",
}
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


def _without_stopwords(db: Path, mode: str, queries_file: Path) -> ModeMetrics:
    queries = load_queries(queries_file)
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


@contextlib.contextmanager
def _lexical_without(documents: bool, phrases: bool) -> Iterator[None]:
    """The lexical ranking with its document evidence and/or its phrases switched off."""
    weight, pairs = ranking.DOCUMENT_WEIGHT, ranking.query_pairs
    if documents:
        ranking.DOCUMENT_WEIGHT = 0.0
    if phrases:
        ranking.query_pairs = lambda text: ()
    try:
        yield
    finally:
        ranking.DOCUMENT_WEIGHT, ranking.query_pairs = weight, pairs


def bench_retrieval() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-eval-") as tmp:
        db = Path(tmp) / "sample.db"
        _build(db)
        plain = Path(tmp) / "unstemmed.db"
        stemmed = sqlite_lexical.SCHEMA, sqlite_lexical.DOC_SCHEMA
        sqlite_lexical.SCHEMA, sqlite_lexical.DOC_SCHEMA = (
            tuple(s.replace(sqlite_lexical.TOKENIZE, "unicode61 remove_diacritics 2") for s in x)
            for x in stemmed
        )
        try:  # built in this process, so the new index takes the patched tokeniser
            from funcpipe_rag.ingest import IngestRequest, ingest

            ingest(IngestRequest(roots=(str(CORPUS),), settings=RunSettings(index=str(plain))))
        finally:
            sqlite_lexical.SCHEMA, sqlite_lexical.DOC_SCHEMA = stemmed
        if not (MODEL_DIR / "model.onnx").is_file():
            raise SystemExit(f"{MODEL_DIR} is missing: `make setup` assembles the model")
        semantic = Path(tmp) / "onnx.db"
        _build(semantic, "--embedder", "onnx", "--model", str(MODEL_DIR))

        for name, path in SETS.items():
            queries = load_queries(path)
            for m in evaluate(db, queries).modes:
                rows.append(_row(f"{name}: {m.mode} (default)", m))
            for label, documents, phrases in (
                ("without document titles and paths", True, False),
                ("without phrases", False, True),
                ("without both (the earlier ranking)", True, True),
            ):
                with _lexical_without(documents, phrases):
                    for m in evaluate(db, queries, modes=("hybrid", "lexical")).modes:
                        rows.append(_row(f"{name}: {m.mode}, {label}", m))
            rrf = evaluate(db, queries, modes=("hybrid",), fusion="rrf")
            rows.append(_row(f"{name}: hybrid fused by RRF (k=60)", rrf.modes[0]))
            for mode in ("vector", "hybrid"):
                rows.append(
                    _row(
                        f"{name}: {mode}, hash query without stopwords",
                        _without_stopwords(db, mode, path),
                    )
                )
            for m in evaluate(plain, queries, modes=("hybrid", "lexical")).modes:
                rows.append(_row(f"{name}: {m.mode}, full-text index without stemming", m))
            for m in evaluate(semantic, queries).modes:
                rows.append(_row(f"{name}: {m.mode}, --embedder onnx (all-MiniLM-L6-v2)", m))
    return rows
