"""Chunking throughput: funcpipe's ``iter_spans`` against LangChain's recursive splitter.

Both run side by side in one process on the same deterministic English-like text with
chunk_size 800 and overlap 100, best of 3 each. funcpipe is fed the text in 1 MiB pieces,
as the ingestion pipeline reads files. LangChain is optional (the ``bench`` extra); without
it the comparison row says it was not measured.

Run: ``python bench/bench_chunking.py``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator

from funcpipe_rag.chunking.splitter import ChunkerSettings, iter_spans

CHUNK_SIZE = 800
OVERLAP = 100
PIECE = 1 << 20  # 1 MiB pieces, as files are read
REPEATS = 3
SEED = 20240601


def paragraphs(seed: int = SEED) -> Iterator[str]:
    """An endless stream of paragraphs of sentences over one seeded vocabulary with a
    Zipf-like word frequency (so more text is more text, not more words)."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    letter_weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    vocab = sorted(
        {
            "".join(
                rng.choices(letters, letter_weights, k=rng.choice((1, 2, 2, 3, 3, 4, 5, 6, 7, 9)))
            )
            for _ in range(5000)
        }
    )
    rng.shuffle(vocab)
    cum_weights = list(itertools.accumulate(1.0 / (rank + 3) ** 0.9 for rank in range(len(vocab))))
    while True:
        sentences = []
        for _ in range(rng.randint(2, 8)):
            words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(5, 28))
            if rng.random() < 0.3:
                words[rng.randrange(len(words))] += ","
            end = rng.choices((".", "?", "!", ":"), (90, 5, 3, 2))[0]
            sentences.append(" ".join(words).capitalize() + end)
        paragraph = " ".join(sentences)
        if rng.random() < 0.1:  # now and then a list or code-like block with single newlines
            paragraph = "\n".join(f"- {s}" for s in sentences)
        yield paragraph


def english_like_text(n_chars: int, seed: int = SEED) -> str:
    """At least ``n_chars`` of :func:`paragraphs`, cut to exactly ``n_chars``."""
    chosen: list[str] = []
    total = 0
    for paragraph in paragraphs(seed):
        if total >= n_chars:
            break
        chosen.append(paragraph)
        total += len(paragraph) + 2
    return "\n\n".join(chosen)[:n_chars]


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), PIECE):
        yield text[i : i + PIECE]


def _best_of(run: Callable[[], int]) -> tuple[int, float]:
    best = float("inf")
    count = 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - t0)
    return count, best


def bench_chunking(n_chars: int = 8_000_000) -> list[dict[str, object]]:
    """Time both splitters on the same text; one row per splitter."""
    text = english_like_text(n_chars)
    settings = ChunkerSettings(chunk_size=CHUNK_SIZE, overlap=OVERLAP)

    def run_funcpipe() -> int:
        return sum(1 for _ in iter_spans(_pieces(text), settings))

    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError:
        splitter = None
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=OVERLAP)

    fp_chunks, fp_seconds = _best_of(run_funcpipe)
    fp_row: dict[str, object] = {
        "name": "chunking: funcpipe iter_spans",
        "chars": len(text),
        "chunks": fp_chunks,
        "seconds": round(fp_seconds, 4),
        "chunks_per_s": round(fp_chunks / fp_seconds),
        "mb_per_s": round(len(text) / fp_seconds / 1e6, 1),
    }
    if splitter is None:
        fp_row["ratio_vs_langchain"] = None
        return [
            fp_row,
            {
                "name": "chunking: langchain RecursiveCharacterTextSplitter",
                "measured": False,
                "note": "langchain_text_splitters not installed (pip install '.[bench]')",
            },
        ]

    lc_splitter = splitter

    def run_langchain() -> int:
        return len(lc_splitter.split_text(text))

    lc_chunks, lc_seconds = _best_of(run_langchain)
    # Speed on the same text: how many times less time funcpipe needs than LangChain.
    fp_row["ratio_vs_langchain"] = round(lc_seconds / fp_seconds, 2)
    lc_row: dict[str, object] = {
        "name": "chunking: langchain RecursiveCharacterTextSplitter",
        "chars": len(text),
        "chunks": lc_chunks,
        "seconds": round(lc_seconds, 4),
        "chunks_per_s": round(lc_chunks / lc_seconds),
        "mb_per_s": round(len(text) / lc_seconds / 1e6, 1),
        "ratio_vs_langchain": 1.0,
    }
    return [fp_row, lc_row]


if __name__ == "__main__":
    for row in bench_chunking():
        print(row)
