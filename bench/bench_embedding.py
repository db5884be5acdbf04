"""Throughput of the in-process hashing embedder on ~800-character English-like chunks.

Run directly (``python bench/bench_embedding.py``) or call :func:`bench_hash_embedder`.
The corpus is generated from a seeded random vocabulary with a Zipf-like word
distribution, so every run embeds the same texts.
"""

from __future__ import annotations

import itertools
import random
import time

from funcpipe_rag.embedders.hashing import HashEmbedder

_SEED = 20240611
_VOCAB_SIZE = 8_000
_CHUNK_CHARS = 800
_BATCH = 64
_REPEATS = 3

# The most frequent English words take the top Zipf ranks, as in real prose.
_FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "not",
    "from",
    "at",
    "which",
    "an",
    "but",
    "have",
    "has",
    "can",
    "if",
    "when",
    "then",
    "each",
    "one",
    "all",
    "will",
    "its",
    "they",
    "we",
    "you",
    "more",
]
_ONSETS = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "w", "st", "tr"]
_ONSETS += ["br", "ch", "sh", "th", "pl", "gr", "cl"]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io"]
_CODAS = ["", "", "", "", "n", "r", "s", "t", "l", "nd", "ng", "st", "ck", "m"]
_SUFFIXES = ["", "", "", "", "", "", "", "", "s", "ed", "ing", "er", "ly", "tion", "ment"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set(_FUNCTION_WORDS)
    while len(words) < size:
        syllables = rng.choice((1, 1, 1, 1, 1, 1, 2, 2, 3))
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        words.add(word + rng.choice(_SUFFIXES))
    content = sorted(words - set(_FUNCTION_WORDS))
    rng.shuffle(content)  # rank (and so frequency) unrelated to spelling
    return _FUNCTION_WORDS + content


def make_chunks(n_chunks: int, *, seed: int = _SEED) -> list[str]:
    """``n_chunks`` deterministic English-like texts of about 800 characters each."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, _VOCAB_SIZE)
    cum_weights = list(itertools.accumulate(1.0 / rank for rank in range(1, len(vocab) + 1)))
    chunks: list[str] = []
    for _ in range(n_chunks):
        sentences: list[str] = []
        length = 0
        while length < _CHUNK_CHARS:
            words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(6, 22))
            sentence = " ".join(words).capitalize() + rng.choice(".....?!")
            sentences.append(sentence)
            length += len(sentence) + 1
        chunks.append(" ".join(sentences)[:_CHUNK_CHARS])
    return chunks


def bench_hash_embedder(n_chunks: int = 20_000) -> list[dict[str, object]]:
    """Time ``HashEmbedder.embed_texts`` over ``n_chunks`` chunks in batches of 64.

    Reports the best of three full passes (the first pass also fills the per-word
    feature cache, as the first few files of a real ingest do).
    """
    chunks = make_chunks(n_chunks)
    embedder = HashEmbedder()
    best = float("inf")
    for _ in range(_REPEATS):
        start = time.perf_counter()
        for i in range(0, len(chunks), _BATCH):
            embedder.embed_texts(chunks[i : i + _BATCH])
        best = min(best, time.perf_counter() - start)
    return [
        {
            "name": f"embed: hash {embedder.dim}-d, batch {_BATCH}",
            "chunks": n_chunks,
            "chunks_per_s": round(n_chunks / best, 1),
        }
    ]


if __name__ == "__main__":
    for row in bench_hash_embedder():
        print(row)
