"""HashEmbedder: bit-stable across processes and batches, unit (or zero) rows, lexical
similarity that behaves, sublinear tf, eager config checks, and a pinned vector space."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import funcpipe_rag
from funcpipe_rag.embedders.hashing import (
    HASH_EMBEDDER_VERSION,
    HashEmbedder,
    _ascii_words_feature_ids,
    _tokens,
    _word_feature_ids,
)
from funcpipe_rag.errors import ConfigError

TEXTS = [
    "The circuit breaker trips when the error rate crosses the threshold.",
    "Zürich café naïve résumé — ÉTÉ, straße; Ελληνικά κείμενα και 中文字符",
    "embedding embeddings embedded EMBED",
    "",
    "   \n\t ",
    "!!! ... ---",
    "snake_case_identifiers and 12345 numbers 3.14",
]

CIRCUIT_PARAGRAPH = (
    "A circuit breaker watches the error rate of calls to a downstream service. When the "
    "rate of errors crosses a threshold the breaker trips and opens, so further calls fail "
    "fast instead of piling up; after a cool-down it lets a trial call through."
)
BREAD_PARAGRAPH = (
    "To bake bread, mix flour, water, salt and yeast into a dough, knead it until smooth, "
    "let it rise for an hour, shape the loaf and bake it in a hot oven until the crust is "
    "golden brown."
)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_defaults_and_attributes() -> None:
    emb = HashEmbedder()
    assert (emb.name, emb.model, emb.dim) == ("hash", HASH_EMBEDDER_VERSION, 384)
    assert HASH_EMBEDDER_VERSION == "hash-ngram-v1"
    assert HashEmbedder(dim=8).dim == 8
    assert HashEmbedder(dim=65536).dim == 65536


def test_identical_in_a_process_with_another_hash_seed() -> None:
    expected = HashEmbedder(dim=256).embed_texts(TEXTS).tobytes().hex()
    code = (
        "import sys, json\n"
        "from funcpipe_rag.embedders.hashing import HashEmbedder\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(HashEmbedder(dim=256).embed_texts(texts).tobytes().hex())\n"
    )
    src = str(Path(funcpipe_rag.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    for seed in ("0", "4242"):
        env["PYTHONHASHSEED"] = seed
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(TEXTS),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        assert proc.stdout.strip() == expected


def test_rows_do_not_depend_on_the_rest_of_the_batch() -> None:
    emb = HashEmbedder()
    together = emb.embed_texts(TEXTS * 40)  # several vectorised groups
    for i, text in enumerate(TEXTS * 40):
        assert together[i].tobytes() == emb.embed_query(text).tobytes()


def test_shape_and_dtype() -> None:
    emb = HashEmbedder(dim=128)
    vecs = emb.embed_texts(TEXTS)
    assert vecs.shape == (len(TEXTS), 128)
    assert vecs.dtype == np.float32
    empty = emb.embed_texts([])
    assert empty.shape == (0, 128)
    assert empty.dtype == np.float32
    query = emb.embed_query("circuit breaker")
    assert query.shape == (128,)
    assert query.dtype == np.float32
    assert np.array_equal(emb.embed_texts(("circuit breaker",))[0], query)


def test_unit_norm_rows_and_zero_rows_for_no_words() -> None:
    vecs = HashEmbedder().embed_texts(TEXTS)
    norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
    for text, norm, row in zip(TEXTS, norms, vecs, strict=True):
        if re.search(r"\w", text):
            assert abs(norm - 1.0) < 1e-5
        else:
            assert not row.any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=8), st.sampled_from([8, 64, 384]))
def test_rows_are_finite_and_unit_or_zero(texts: list[str], dim: int) -> None:
    vecs = HashEmbedder(dim=dim).embed_texts(texts)
    assert vecs.shape == (len(texts), dim)
    assert np.isfinite(vecs).all()
    for text, row in zip(texts, vecs, strict=True):
        norm = float(np.linalg.norm(row.astype(np.float64)))
        has_words = bool(re.search(r"\w", unicodedata.normalize("NFC", text).lower()))
        if has_words and row.any():
            assert abs(norm - 1.0) < 1e-5
        else:
            # No words gives a zero row; words whose signed hashes cancel exactly would
            # too, which the property allows but realistic text never hits.
            assert norm == 0.0


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_fast_path_tokenises_like_the_regex(text: str) -> None:
    fast = [t.decode() if isinstance(t, bytes) else t for t in _tokens(text)]
    assert fast == re.findall(r"\w+", text.lower())


def test_case_and_unicode_normalisation_do_not_matter() -> None:
    emb = HashEmbedder()
    assert np.array_equal(emb.embed_query("Hello World"), emb.embed_query("hello world"))
    composed = unicodedata.normalize("NFC", "café crème")
    decomposed = unicodedata.normalize("NFD", "café crème")
    assert composed != decomposed
    assert np.array_equal(emb.embed_query(composed), emb.embed_query(decomposed))


def test_query_is_closer_to_the_matching_paragraph() -> None:
    emb = HashEmbedder()
    query = emb.embed_query("circuit breaker trips on error rate")
    circuit, bread = emb.embed_texts([CIRCUIT_PARAGRAPH, BREAD_PARAGRAPH])
    assert cosine(query, circuit) > cosine(query, bread) + 0.2


def test_character_trigrams_link_morphological_variants() -> None:
    emb = HashEmbedder()
    embedding, embeddings, bread = emb.embed_texts(["embedding", "embeddings", "bread"])
    assert cosine(embedding, embeddings) > 0.3
    assert cosine(embedding, embeddings) > cosine(embedding, bread)


def test_bigrams_reward_word_order() -> None:
    emb = HashEmbedder()
    query = emb.embed_query("error rate")
    assert cosine(query, emb.embed_query("error rate high")) > cosine(
        query, emb.embed_query("rate high error")
    )


def test_term_frequency_is_sublinear() -> None:
    emb = HashEmbedder()
    once = emb.embed_query("breaker")
    many = emb.embed_query("breaker " * 50 + "bread")
    # Linear tf would make the mix almost pure "breaker" (cosine ~0.999).
    assert 0.8 < cosine(once, many) < 0.99


def test_pinned_vector_space() -> None:
    """A change here changes every stored vector: give it a new model name instead."""
    vec = HashEmbedder().embed_query("hello")
    scale = 1.0 / np.sqrt(1.0 + 5 * 0.35**2)  # one unigram, five trigrams
    expected = {74: -scale, 134: -0.35 * scale}
    expected |= dict.fromkeys((240, 246, 315, 350), 0.35 * scale)
    assert np.flatnonzero(vec).tolist() == sorted(expected)
    assert np.allclose([vec[i] for i in sorted(expected)], [expected[i] for i in sorted(expected)])


@pytest.mark.parametrize("dim", [0, 7, -1, 65537, True, 8.0, "384"])
def test_bad_dim_is_a_config_error(dim: object) -> None:
    with pytest.raises(ConfigError, match="dim"):
        HashEmbedder(dim=dim)  # type: ignore[arg-type]


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown hash embedder model"):
        HashEmbedder(model="hash-ngram-v2")
    with pytest.raises(ValueError, match="model"):  # ConfigError is a ValueError too
        HashEmbedder(model="")


def test_a_single_string_is_refused() -> None:
    with pytest.raises(TypeError, match="single str"):
        HashEmbedder().embed_texts("not a list")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1), max_size=40))
def test_batched_word_ids_match_the_per_word_ids(words: list[str]) -> None:
    """The vectorised path (trigram CRC-32 by table) gives exactly the per-word bytes."""
    encoded = [w.encode("ascii") for w in words]
    assert _ascii_words_feature_ids(encoded) == [_word_feature_ids(w) for w in words]
