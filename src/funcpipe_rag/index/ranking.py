"""Ranking pieces every backend shares: query terms, path filters, and fusion.

A backend ranks in its own engine (SQLite: vector blocks and FTS5; PostgreSQL: pgvector
and full-text search) and hands its rankings to :func:`lexical` and :func:`fuse`, so
hybrid scores mean the same thing whatever stores the index. Everything here is pure: no
I/O.

Fusion, measured on the labelled sets (``python -m bench retrieval``; README): each
ranking's scores divided by its best score for the query, then weighted equally
(max-normalised CombSUM): hybrid MRR 0.889 (sample set) and 0.898 (held-out set) against
0.834 and 0.835 for reciprocal rank fusion (k = 60). RRF gives a ranking's order the
same say whatever its scores, so a weak ranking (the hash embedder's cosines) pulls a
clear lexical winner down; normalised scores keep the margin a ranking saw. Equal
weights, because the better ranking is a property of the embedder (a semantic model's
cosines beat BM25 on paraphrase), not of the corpus; other weights, min-max or z-score
normalisation and giving a ranking's lowest score to contents it did not nominate moved
the two labelled sets in opposite directions, so none is shipped. RRF stays available
(``method="rrf"``) for comparison.

The lexical ranking (:func:`lexical`) adds two pieces of evidence to BM25 over chunk
text, both measured on the labelled set and on a held-out set written before they were
tried (README): the chunk's *document* — its title and the words of its path, matched
by the same terms (a file called ``quick-tomato-soup.md`` is about tomato soup) — and
*adjacent query words found side by side* (``"signal tests"``), searched as phrases
besides the single terms.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .base import Contribution, Hit, Query

if TYPE_CHECKING:
    from .base import Vector

CANDIDATES = 100
"""Contents each ranking nominates for fusion (or 4 k, when more are asked for)."""

FUSIONS = ("combsum", "rrf")
RRF_K = 60
"""The rank constant of reciprocal rank fusion (``method="rrf"``): larger flattens the
head of each list."""

_WORD = re.compile(r"[^\W_]+")
_MAX_TERMS = 32  # a pasted paragraph stays a cheap query

# Words too common to tell chunks apart: dropped from the lexical query (a query made
# only of them keeps them). BM25 already gives them little weight; dropping them keeps
# a question like "how does the ..." from matching, and scoring, nearly every chunk.
_STOP_TEXT = """a about above after again all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each few
for from further had has have having he her here hers herself him himself his how i if in
into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
yourself yourselves"""
STOPWORDS = frozenset(_STOP_TEXT.split())


DOCUMENT_WEIGHT = 0.25
"""How much a chunk's document (title and path words) adds to its lexical score: up to
this fraction of the query's best chunk BM25. Measured 0.1-0.4 on both labelled sets
(README): flat between 0.2 and 0.3; above that, titles outvote the text."""


def query_terms(text: str) -> tuple[str, ...]:
    """The words of ``text`` a lexical ranking looks for: lowercased runs of letters and
    digits (``max_rate`` is ``max``, ``rate``), stopwords dropped unless nothing else is
    left, each once, in order, at most 32."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in STOPWORDS] or words
    return tuple(dict.fromkeys(kept))[:_MAX_TERMS]


def query_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """Adjacent words of ``text`` that are both query terms (neither a stopword), each
    pair once, in order, at most 32: a chunk holding them side by side (as a phrase)
    scores above one holding them apart."""
    words = [w.lower() for w in _WORD.findall(text)]
    pairs = [
        (a, b) for a, b in itertools.pairwise(words) if a not in STOPWORDS and b not in STOPWORDS
    ]
    return tuple(dict.fromkeys(pairs))[:_MAX_TERMS]


@dataclass(frozen=True, slots=True)
class TextQuery:
    """What a lexical ranking matches: any of ``terms``, or any of ``pairs`` as a phrase
    (every word is letters and digits only, so no engine's query syntax can hide in it).
    """

    terms: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, text: str) -> TextQuery:
        return cls(query_terms(text), query_pairs(text))


def path_matcher(globs: Sequence[str]) -> Callable[[str, str], bool]:
    """A test ``(path, abs_path) -> bool`` for ``--path`` globs (any one may match).

    A glob matches a stored path, any trailing part of it that starts at a folder
    (``recipes/*.md`` matches ``sample_corpus/kitchen/recipes/dal.md``), or the absolute
    path. Matching is ``fnmatch`` with case: ``*`` also crosses ``/``.
    """
    patterns = tuple(globs)

    def matches(path: str, abs_path: str) -> bool:
        if not patterns:
            return True
        parts = path.split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatchcase(candidate, p) for p in patterns for candidate in (*tails, abs_path)
        )

    return matches


def path_tail_matches(label: str, path: str, abs_path: str = "") -> bool:
    """True when ``label`` names this file: the stored path, a trailing part of it that
    starts at a folder, or the absolute path (used by ``eval`` labels)."""
    label = label.strip("/")
    return path == label or path.endswith("/" + label) or abs_path.endswith("/" + label)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A content one ranking nominated: its key (the content hash) and raw score; for a
    chunk row of the lexical ranking, also the document holding that row."""

    key: str
    score: float
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Fused:
    """A content after ranking: its final score and what each ranking said about it."""

    key: str
    score: float
    contributions: tuple[Contribution, ...]


def _ranked(cands: Iterable[Candidate]) -> dict[str, tuple[int, float]]:
    """Key -> (1-based rank, score); a key seen twice keeps its first (best) place."""
    out: dict[str, tuple[int, float]] = {}
    for cand in cands:
        if cand.key not in out:
            out[cand.key] = (len(out) + 1, cand.score)
    return out


def fuse(
    vector: Sequence[Candidate],
    lexical: Sequence[Candidate],
    *,
    method: str = "combsum",
    weights: tuple[float, float] = (0.5, 0.5),
    k: int = RRF_K,
) -> list[Fused]:
    """Two rankings (each best first) fused into one, best first.

    ``combsum`` (the default): each ranking's scores are divided by that ranking's best
    score for this query (negative cosines count as 0), and a content scores
    ``w_vector * cosine / best_cosine + w_lexical * bm25 / best_bm25`` over the rankings
    that nominated it: 1.0 when it is the best of both. ``rrf``: ``sum(w / (k + rank))``
    over the rankings that nominated it, scaled so that first in both is 1.0.

    A ranking that did not nominate a content adds nothing for it (its candidates are
    its best few; below them its score is small). Ties go to the better single rank,
    then to the key, so the order is deterministic.
    """
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {method!r}")
    vr, lr = _ranked(vector), _ranked(lexical)
    wv, wl = weights
    rrf_top = (wv + wl) / (k + 1)
    best = {
        mode: max((max(s, 0.0) for _, s in ranking.values()), default=0.0)
        for mode, ranking in (("vector", vr), ("lexical", lr))
    }
    fused: list[tuple[float, int, str, tuple[Contribution, ...]]] = []
    for key in dict.fromkeys([*vr, *lr]):
        parts = []
        for mode, ranking, weight in (("vector", vr, wv), ("lexical", lr, wl)):
            if key not in ranking:
                parts.append(Contribution(mode, None, None, 0.0))
                continue
            rank, score = ranking[key]
            if method == "rrf":
                share = weight / (k + rank) / rrf_top
            else:
                top = best[mode]
                share = weight * max(score, 0.0) / top if top > 0 else 0.0
            parts.append(Contribution(mode, rank, score, share))
        best_rank = min((c.rank for c in parts if c.rank is not None), default=1 << 30)
        fused.append((sum(c.share for c in parts), best_rank, key, tuple(parts)))
    fused.sort(key=lambda f: (-f[0], f[1], f[2]))
    return [Fused(key, score, parts) for score, _, key, parts in fused]


def lexical(rows: Sequence[Candidate], documents: Mapping[str, float]) -> list[Candidate]:
    """The lexical ranking: chunk rows (BM25 over their text, best first, each naming its
    document) with their documents' evidence added, best first.

    ``documents`` holds a score for each document whose title or path matches the query
    (any engine's own scale, higher is better). A row scores ``bm25 + DOCUMENT_WEIGHT *
    best_bm25 * doc / best_doc``: a row of the best-matching document gains a quarter of
    the query's best BM25. Only rows whose text matched are ranked, so a title alone never
    nominates a chunk. Ties keep the rows' own order.
    """
    top = max((r.score for r in rows), default=0.0)
    best_doc = max(documents.values(), default=0.0)
    if top <= 0 or best_doc <= 0:
        return list(rows)
    bonus = DOCUMENT_WEIGHT * top / best_doc
    scored = [
        (r.score + bonus * max(documents.get(r.doc, 0.0), 0.0), i, r) for i, r in enumerate(rows)
    ]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [Candidate(r.key, score, r.doc) for score, _, r in scored]


def single(cands: Sequence[Candidate], mode: str) -> list[Fused]:
    """One ranking as final results: its own scores, its own order (first place kept)."""
    return [
        Fused(key, score, (Contribution(mode, rank, score),))
        for key, (rank, score) in _ranked(cands).items()
    ]


def rank(query: Query, by_vector: Sequence[Candidate], by_text: Sequence[Candidate]) -> list[Fused]:
    """The final ranking of ``query`` from its backend's two candidate lists."""
    if query.mode == "hybrid":
        return fuse(by_vector, by_text, method=query.fusion)
    return single(by_vector if query.mode == "vector" else by_text, query.mode)


@dataclass(frozen=True, slots=True)
class Place:
    """One chunk holding a content, as a backend reads it for a hit."""

    chunk_id: str
    doc_id: str
    path: str
    start: int
    end: int
    text: str
    title: str
    section: str
    page: int | None
    reader: str
    encoding: str


def hit_of(fused: Fused, mode: str, places: Sequence[Place]) -> Hit | None:
    """The hit for one content: its first place (``places`` come ordered by path, then
    offset) and every path; None when no place holds it (never, in a consistent index:
    the rankings read the same snapshot)."""
    if not places:
        return None
    first = places[0]
    return Hit(
        score=fused.score,
        chunk_id=first.chunk_id,
        path=first.path,
        start=first.start,
        end=first.end,
        text=first.text,
        title=first.title,
        section=first.section,
        page=first.page,
        reader=first.reader,
        encoding=first.encoding,
        mode=mode,
        content_hash=fused.key,
        paths=tuple(dict.fromkeys(p.path for p in places)),
        chunk_ids=tuple(p.chunk_id for p in places),
        contributions=fused.contributions,
    )


class RankingEngine(Protocol):
    """What a backend ranks with, inside the one snapshot a search reads. ``docs``, when
    not None, restricts every answer to those documents (a ``--path`` filter)."""

    def document_paths(self) -> Iterable[tuple[str, str, str]]:
        """(doc_id, path, abs_path) of every stored document."""
        ...

    def vector_candidates(self, vector: Vector, n: int, docs: list[str] | None) -> list[Candidate]:
        """The ``n`` contents with the best positive cosine, best first."""
        ...

    def text_candidates(
        self, query: TextQuery, rows: int, docs: list[str] | None
    ) -> list[Candidate]:
        """The best ``rows`` chunk rows matching ``query`` (any term, or any pair as a
        phrase) by their text, as contents naming their document, best first."""
        ...

    def document_scores(self, query: TextQuery, docs: Sequence[str]) -> dict[str, float]:
        """doc_id -> how well the title and path of each of ``docs`` match ``query``
        (higher is better; documents that do not match are left out)."""
        ...

    def places(self, key: str, docs: list[str] | None) -> list[Place]:
        """The chunks holding content ``key``, by path, then offset."""
        ...


def search_in(engine: RankingEngine, query: Query) -> list[Hit]:
    """The hits of ``query``, best first: the flow every backend shares (the path
    filter, each ranking's candidates, fusion, text for the hits kept)."""
    n = max(CANDIDATES, 4 * query.k)
    docs = None
    if query.paths:
        matches = path_matcher(query.paths)
        docs = [str(d) for d, path, abs_path in engine.document_paths() if matches(path, abs_path)]
    by_vector: list[Candidate] = []
    by_text: list[Candidate] = []
    if docs is None or docs:  # a filter that matches no file leaves nothing to rank
        if query.ranks_vectors:
            assert query.vector is not None  # Query checks it
            by_vector = engine.vector_candidates(query.vector, n, docs)
        if query.ranks_text:
            # Identical chunks tie and crowd the list: ask for more rows than contents.
            text = TextQuery.of(query.text)
            rows = engine.text_candidates(text, 2 * n, docs)
            found = sorted({r.doc for r in rows})
            by_text = lexical(rows, engine.document_scores(text, found) if found else {})
    hits: list[Hit] = []
    for fused in rank(query, by_vector, by_text):
        if len(hits) == query.k or fused.score < query.min_score:
            break
        hit = hit_of(fused, query.mode, engine.places(fused.key, docs))
        if hit is not None:
            hits.append(hit)
    return hits


__all__ = [
    "CANDIDATES",
    "DOCUMENT_WEIGHT",
    "FUSIONS",
    "RRF_K",
    "STOPWORDS",
    "Candidate",
    "Fused",
    "Place",
    "RankingEngine",
    "TextQuery",
    "fuse",
    "hit_of",
    "lexical",
    "path_matcher",
    "path_tail_matches",
    "query_pairs",
    "query_terms",
    "rank",
    "search_in",
    "single",
]
