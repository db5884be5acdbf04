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
* an index whose hash embedder leaves the stopwords out of every text and query (the
  candidate for a ``hash-ngram-v2`` model; not shipped: its vectors rank better alone
  and worse fused, on both sets);

and the same questions on an index built with the in-process semantic model
(``--embedder onnx``, all-MiniLM-L6-v2 as ``make setup`` assembles it), every mode.

Last, how much of a hash-embedder figure is the draw of its hash function: the same
embedder with its buckets and signs drawn by ``SALTS`` other members of the same hash
family (each feature id XORed with a constant before the MurmurHash3 finalizer: the
same features, weights and dimension, only which features collide changes), an index
each, hybrid and vector MRR on both sets as mean, standard deviation, lowest and
highest, beside ``hash-ngram-v1``'s own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from funcpipe_rag.config import RunSettings
from funcpipe_rag.embedders import hashing
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
from funcpipe_rag.ingest import IngestRequest, ingest
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


@contextlib.contextmanager
def _hash_without_stopwords() -> Iterator[None]:
    """The hash embedder leaving the lexical query's stopwords out of every text it
    embeds (texts and queries alike; word ids cached before are set aside and put back)."""
    tokens, cache = hashing._tokens, hashing._WORD_CACHE._ids
    stop = ranking.STOPWORDS | {w.encode() for w in ranking.STOPWORDS}

    def kept(text: str) -> list[Any]:
        return [w for w in tokens(text) if w not in stop]

    hashing._tokens, hashing._WORD_CACHE._ids = kept, {}
    try:
        yield
    finally:
        hashing._tokens, hashing._WORD_CACHE._ids = tokens, cache


SALTS = 8


@contextlib.contextmanager
def _salted_hash(salt: int) -> Iterator[None]:
    """The hash embedder drawing its buckets and signs with another member of its hash
    family: every feature id XORed with a constant derived from ``salt`` first."""
    fmix = hashing._fmix32
    key = np.uint32((salt * 0x9E3779B1) & 0xFFFFFFFF)
    hashing._fmix32 = lambda h: fmix(h ^ key)
    try:
        yield
    finally:
        hashing._fmix32 = fmix


def _salted_rows(tmp: Path, v1: dict[tuple[str, str], float]) -> list[Row]:
    """MRR over ``SALTS`` hash functions per set and mode, beside v1's (``v1``)."""
    mrrs: dict[tuple[str, str], list[float]] = {}
    for salt in range(1, SALTS + 1):
        db = tmp / f"salt-{salt}.db"
        with _salted_hash(salt):
            ingest(IngestRequest(roots=(str(CORPUS),), settings=RunSettings(index=str(db))))
            for name, path in SETS.items():
                for m in evaluate(db, load_queries(path), modes=("hybrid", "vector")).modes:
                    mrrs.setdefault((name, m.mode), []).append(m.mrr)
    rows: list[Row] = []
    for (name, mode), values in mrrs.items():
        a = np.array(values)
        rows.append(
            {
                "name": f"{name}: {mode}, hash embedder drawn by {SALTS} other hash functions",
                "queries": len(load_queries(SETS[name])),
                "mrr": round(float(a.mean()), 3),
                "mrr_sd": round(float(a.std()), 3),
                "mrr_min": round(float(a.min()), 3),
                "mrr_max": round(float(a.max()), 3),
                "v1_mrr": round(v1[(name, mode)], 3),
                "v1_beats": f"{int((a < v1[(name, mode)]).sum())}/{SALTS}",
            }
        )
    return rows


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
            ingest(IngestRequest(roots=(str(CORPUS),), settings=RunSettings(index=str(plain))))
        finally:
            sqlite_lexical.SCHEMA, sqlite_lexical.DOC_SCHEMA = stemmed
        no_stop = Path(tmp) / "hash-without-stopwords.db"
        with _hash_without_stopwords():
            ingest(IngestRequest(roots=(str(CORPUS),), settings=RunSettings(index=str(no_stop))))
        if not (MODEL_DIR / "model.onnx").is_file():
            raise SystemExit(f"{MODEL_DIR} is missing: `make setup` assembles the model")
        semantic = Path(tmp) / "onnx.db"
        _build(semantic, "--embedder", "onnx", "--model", str(MODEL_DIR))

        v1: dict[tuple[str, str], float] = {}
        for name, path in SETS.items():
            queries = load_queries(path)
            for m in evaluate(db, queries).modes:
                rows.append(_row(f"{name}: {m.mode} (default)", m))
                v1[(name, m.mode)] = m.mrr
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
            with _hash_without_stopwords():
                for m in evaluate(no_stop, queries, modes=("hybrid", "vector")).modes:
                    rows.append(_row(f"{name}: {m.mode}, hash embedder without stopwords", m))
            for m in evaluate(semantic, queries).modes:
                rows.append(_row(f"{name}: {m.mode}, --embedder onnx (all-MiniLM-L6-v2)", m))
        rows += _salted_rows(Path(tmp), v1)
    return rows
