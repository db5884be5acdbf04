"""Retrieval quality: run labelled questions through every search mode and score them.

A labelled set is JSON Lines, one question a line::

    {"id": "q01", "query": "how long does the soup simmer", "paths": ["kitchen/soup.md"]}
    {"query": "...", "chunk_ids": ["3f2a..."]}

``paths`` name the files that answer the question (the stored path, a trailing part of
it that starts at a folder, or the absolute path); ``chunk_ids`` name chunks. Each
label is an answer; a hit answers when any of its places is labelled.

Metrics, over the first ``depth`` (10) hits of each question, averaged over questions:

* Hit@k: 1 when an answer is among the first k hits, else 0.
* MRR (at 10): 1 / the rank of the first answer; 0 when none is in the first 10.
* nDCG@10: each label counts once, at the first rank that returns it; a rank earns
  gain 1 when it returns a label not seen before, discounted by ``1 / log2(rank + 1)``,
  and the sum is divided by the best possible one (all labels first, at most 10).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunSettings
from .errors import ConfigError
from .index import SEARCH_MODES, Hit, Query, open_index
from .index.ranking import path_tail_matches
from .policies.ledger import ResourceLedger
from .search import query_vector

DEPTH = 10
CUTOFFS = (1, 5, 10)


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    """One question and the files (or chunks) that answer it."""

    id: str
    text: str
    paths: tuple[str, ...] = ()
    chunk_ids: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.paths + self.chunk_ids


def _strings(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {what} must be a list of non-empty strings")
    return tuple(value)


def load_queries(path: Path) -> list[LabelledQuery]:
    """The labelled questions of a JSON Lines file; a bad line is a ``ConfigError``
    naming its number. Blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"queries file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read queries file {path}: {exc}") from None
    queries: list[LabelledQuery] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{where}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: each line must be a JSON object")
        text = doc.get("query")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: 'query' must be a non-empty string")
        paths = _strings(doc.get("paths", doc.get("path")), "'paths'", where)
        chunk_ids = _strings(doc.get("chunk_ids"), "'chunk_ids'", where)
        if not paths and not chunk_ids:
            raise ConfigError(f"{where}: give the 'paths' or 'chunk_ids' that answer the query")
        qid = doc.get("id", f"line {number}")
        queries.append(LabelledQuery(str(qid), text, paths, chunk_ids))
    if not queries:
        raise ConfigError(f"{path} holds no queries")
    return queries


def answered(hit: Hit, query: LabelledQuery) -> frozenset[str]:
    """The labels of ``query`` this hit returns (any of its places)."""
    paths = hit.paths or (hit.path,)
    found = {p for p in query.paths for path in paths if path_tail_matches(p, path)}
    found |= {c for c in query.chunk_ids if c in (hit.chunk_ids or (hit.chunk_id,))}
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class QueryScore:
    """One question in one mode: the rank of its first answer and its metrics."""

    id: str
    mode: str
    first: int | None  # 1-based rank of the first answer within the depth, or None
    hits_at: tuple[float, ...]  # one per CUTOFFS
    rr: float
    ndcg: float


def score_ranking(
    qid: str, mode: str, relevance: Sequence[frozenset[str]], labels: int, depth: int = DEPTH
) -> QueryScore:
    """Metrics of one ranked list: ``relevance[i]`` is the set of labels hit ``i + 1``
    returns; ``labels`` is how many labels the question has."""
    ranked = list(relevance[:depth])
    first = next((i + 1 for i, found in enumerate(ranked) if found), None)
    seen: set[str] = set()
    dcg = 0.0
    for i, found in enumerate(ranked):
        if found - seen:
            dcg += 1.0 / math.log2(i + 2)
        seen |= found
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(labels, depth)))
    return QueryScore(
        id=qid,
        mode=mode,
        first=first,
        hits_at=tuple(1.0 if first is not None and first <= c else 0.0 for c in CUTOFFS),
        rr=1.0 / first if first is not None else 0.0,
        ndcg=dcg / ideal if ideal else 0.0,
    )


@dataclass(frozen=True, slots=True)
class ModeMetrics:
    """Averages over every question of one mode."""

    mode: str
    queries: int
    hits_at: tuple[float, ...]
    mrr: float
    ndcg: float

    def to_jsonable(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            f"hit@{c}": round(h, 4) for c, h in zip(CUTOFFS, self.hits_at, strict=True)
        }
        doc.update(mrr=round(self.mrr, 4), **{f"ndcg@{DEPTH}": round(self.ndcg, 4)})
        return doc


def summarise(mode: str, scores: Sequence[QueryScore]) -> ModeMetrics:
    n = len(scores)
    if not n:
        return ModeMetrics(mode, 0, tuple(0.0 for _ in CUTOFFS), 0.0, 0.0)
    return ModeMetrics(
        mode=mode,
        queries=n,
        hits_at=tuple(sum(s.hits_at[i] for s in scores) / n for i in range(len(CUTOFFS))),
        mrr=sum(s.rr for s in scores) / n,
        ndcg=sum(s.ndcg for s in scores) / n,
    )


@dataclass(slots=True)
class EvalReport:
    """Metrics per mode, each question's first-answer rank, and labels the index lacks."""

    index: str
    queries: int
    modes: list[ModeMetrics] = field(default_factory=list)
    per_query: list[QueryScore] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)

    def to_jsonable(self) -> dict[str, Any]:
        firsts: dict[str, dict[str, int | None]] = {}
        for s in self.per_query:
            firsts.setdefault(s.id, {})[s.mode] = s.first
        return {
            "schema": "funcpipe.eval/1",
            "index": self.index,
            "queries": self.queries,
            "depth": DEPTH,
            "modes": {m.mode: m.to_jsonable() for m in self.modes},
            "first_answer_rank": firsts,
            "unknown_labels": self.unknown_labels,
        }


def evaluate(
    index_path: str | Path,
    queries: Sequence[LabelledQuery],
    *,
    modes: Sequence[str] = SEARCH_MODES,
    settings: RunSettings | None = None,
    url: str = "",
    ledger: ResourceLedger | None = None,
    fusion: str = "combsum",
) -> EvalReport:
    """Run every question in every mode against the index and score the rankings.

    Each question is embedded once, the way the index was built (over HTTP when it was
    built over HTTP: ``url`` and ``settings`` as for a search). ``fusion`` is how the
    hybrid mode fuses (see :func:`funcpipe_rag.index.ranking.fuse`).
    """
    ledger = ledger if ledger is not None else ResourceLedger()
    settings = settings if settings is not None else RunSettings()
    report = EvalReport(str(index_path), len(queries))
    opened = open_index(index_path, None, ledger, readonly=True, options=settings.index_options())
    with contextlib.closing(opened) as index:
        stored = [(d.path, d.abs_path) for d in index.documents()]
        report.unknown_labels = sorted(
            {
                p
                for q in queries
                for p in q.paths
                if not any(path_tail_matches(p, path, abs_path) for path, abs_path in stored)
            }
        )
        for q in queries:
            vector = None
            if any(m != "lexical" for m in modes):
                vector = query_vector(index, q.text, url, ledger, settings)
            for mode in modes:
                query = Query(text=q.text, vector=vector, mode=mode, k=DEPTH, fusion=fusion)
                hits = index.search(query)
                relevance = [answered(h, q) for h in hits]
                report.per_query.append(score_ranking(q.id, mode, relevance, len(q.labels)))
    report.modes = [summarise(m, [s for s in report.per_query if s.mode == m]) for m in modes]
    return report


def iter_misses(report: EvalReport, mode: str) -> Iterator[QueryScore]:
    """Questions of ``mode`` with no answer in the first 10 hits."""
    return (s for s in report.per_query if s.mode == mode and s.first is None)


__all__ = [
    "CUTOFFS",
    "DEPTH",
    "EvalReport",
    "LabelledQuery",
    "ModeMetrics",
    "QueryScore",
    "answered",
    "evaluate",
    "iter_misses",
    "load_queries",
    "score_ranking",
    "summarise",
]
