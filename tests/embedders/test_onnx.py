"""The onnx embedder with a real model (all-MiniLM-L6-v2, int8 ONNX): its vectors are the
reference implementation's, its batching never changes a result, and its session is a
resource released with its threads on every path."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcpipe_rag.config import RunSettings
from funcpipe_rag.embedders.model_dir import find_model
from funcpipe_rag.embedders.onnx import OnnxEmbedder, open_onnx
from funcpipe_rag.errors import ConfigError, ResourceClosedError
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.result import Err, Ok
from tests.embedders.minilm import minilm_dir, os_threads, reference

ITEMS = reference()
TEXTS = [item["text"] for item in ITEMS]


def make(**kw: Any) -> OnnxEmbedder:
    return OnnxEmbedder(find_model(minilm_dir()), ledger=kw.pop("ledger", ResourceLedger()), **kw)


def vectors(results: list[Any]) -> np.ndarray:
    assert all(isinstance(r, Ok) for r in results), results
    return np.stack([r.value for r in results])


@pytest.fixture(scope="module")
def embedder() -> Iterator[OnnxEmbedder]:
    e = make()
    yield e
    e.close()


@pytest.fixture(scope="module")
def singles(embedder: OnnxEmbedder) -> dict[str, np.ndarray]:
    """Each reference text embedded alone: no padding, no company."""
    return {t: vectors(embedder.embed_batch([t]))[0] for t in TEXTS}


def test_vectors_match_the_reference_implementation(embedder: OnnxEmbedder) -> None:
    got = vectors(embedder.embed_batch(TEXTS))
    expected = np.array([item["vector"] for item in ITEMS], dtype=np.float32)
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert got.shape == (len(TEXTS), 384) == (len(TEXTS), embedder.dim)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    low = {TEXTS[i][:40]: round(float(c), 4) for i, c in enumerate(cosines) if c < 0.99}
    assert not low, low  # one per sentence: the int8 weights stay within 0.99 of fp32


def test_paraphrases_are_closer_than_unrelated_sentences(singles: dict[str, np.ndarray]) -> None:
    v = [singles[t] for t in TEXTS]
    pairs = [(0, 1), (2, 3), (4, 5)]  # bread, the breaker, a guitar: said two ways each
    for a, b in pairs:
        others = [i for i in range(9) if i not in (a, b)]
        assert v[a] @ v[b] > max(v[a] @ v[i] for i in others), (TEXTS[a], TEXTS[b])
        assert v[a] @ v[b] > 0.5


runs = st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=16)


@pytest.fixture(scope="module")
def batchers() -> Iterator[list[OnnxEmbedder]]:
    """The same model cut into batches four ways: one text each, tiny budgets, the
    default, and the whole window at once."""
    made = [
        make(max_rows=1, max_tokens=512),
        make(max_rows=3, max_tokens=64),
        make(),
        make(max_rows=64, max_tokens=10**6),
    ]
    yield made
    for e in made:
        e.close()


@settings(max_examples=15, deadline=None)
@given(picks=runs, which=st.integers(0, 3))
def test_results_stay_in_input_order_whatever_the_batching(
    picks: list[int], which: int, batchers: list[OnnxEmbedder], singles: dict[str, np.ndarray]
) -> None:
    texts = [TEXTS[i] for i in picks]
    got = vectors(batchers[which].embed_batch(texts))
    expected = np.stack([singles[t] for t in texts])
    assert ((got * expected).sum(axis=1) > 0.9999).all()


class _Spy:
    """Records the shape of every batch the real session runs."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.shapes: list[tuple[int, int]] = []
        self.rows: list[list[int]] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray], options: Any = None) -> Any:
        self.shapes.append(feeds["input_ids"].shape)
        self.rows.append([int(n) for n in feeds["attention_mask"].sum(axis=1)])
        return self.session.run(outputs, feeds, options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def test_each_small_batch_is_padded_to_its_own_longest_row() -> None:
    e = make(max_rows=4, max_tokens=256)
    spy = _Spy(e._session)
    e._session = spy
    try:
        texts = [f"short {i}" for i in range(5)] + TEXTS + ["word " * 400]
        results = e.embed_batch(texts)
    finally:
        e.close()
    assert all(isinstance(r, Ok) for r in results)
    lengths = [n for rows in spy.rows for n in rows]
    assert sorted(lengths) == lengths  # shortest first, across the window
    assert len(lengths) == len(texts)
    for (n_rows, width), rows in zip(spy.shapes, spy.rows, strict=True):
        assert width == max(rows)  # never a fixed length (the file's own pads to 128)
        assert n_rows <= 4 and (n_rows * width <= 256 or n_rows == 1)
    assert max(lengths) == 256  # cut at the model's maximum (sentence_bert_config.json)
    assert min(w for _, w in spy.shapes) < 16


def test_query_and_passage_prefixes() -> None:
    plain, prefixed = make(), make(query_prefix="query: ", passage_prefix="passage: ")
    try:
        q = prefixed.embed_query("how to bake bread")
        assert q.shape == (384,)
        assert q @ vectors(plain.embed_batch(["query: how to bake bread"]))[0] > 0.9999
        assert q @ plain.embed_query("how to bake bread") < 0.999
        p = vectors(prefixed.embed_batch(["flour and water"]))[0]
        assert p @ vectors(plain.embed_batch(["passage: flour and water"]))[0] > 0.9999
    finally:
        plain.close()
        prefixed.close()


def test_the_pooling_setting_changes_the_vector(singles: dict[str, np.ndarray]) -> None:
    for how in ("cls", "max"):
        e = OnnxEmbedder(find_model(minilm_dir(), pooling=how), ledger=ResourceLedger())
        try:
            v = vectors(e.embed_batch(TEXTS[:3]))
        finally:
            e.close()
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        assert (v * np.stack([singles[t] for t in TEXTS[:3]])).sum(axis=1).max() < 0.99, how


def test_the_session_is_a_ledger_resource_released_with_its_threads() -> None:
    ledger = ResourceLedger()
    before = os_threads()
    e = make(ledger=ledger, threads=2)
    assert ledger.snapshot().by_kind["model_session"].open == 1
    assert os_threads() > before  # ONNX Runtime's intra-op thread (a native one)
    e.embed_batch(["warm up the threads"])
    e.close()
    e.close()  # idempotent
    snap = ledger.snapshot()
    assert snap.by_kind["model_session"].acquired == snap.by_kind["model_session"].released == 1
    assert os_threads() == before
    with pytest.raises(ResourceClosedError):
        e.embed_batch(["after close"])
    with pytest.raises(ResourceClosedError):
        e.embed_query("after close")


def test_cancel_inflight_terminates_a_running_batch_and_resume_allows_more() -> None:
    e = make(threads=1, max_rows=64, max_tokens=10**6)
    texts = ["word " * 300 + str(i) for i in range(64)]  # one batch of seconds of work
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.extend(e.embed_batch(texts)))
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while not e._active and worker.is_alive():  # the run is in progress
            assert time.monotonic() < deadline
            time.sleep(0.005)
        e.cancel_inflight()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert len(out) == 64 and all(isinstance(r, Err) for r in out)
        assert {r.error.code for r in out} == {"EMBED/CANCELLED"}
        assert isinstance(e.embed_batch(["refused while cancelled"])[0], Err)
        e.resume()
        assert isinstance(e.embed_batch(["accepted again"])[0], Ok)
    finally:
        e.close()


def test_a_text_the_tokenizer_refuses_fails_alone(embedder: OnnxEmbedder) -> None:
    results = embedder.embed_batch(["fine", "\ud800 a lone surrogate", "also fine"])
    assert isinstance(results[0], Ok) and isinstance(results[2], Ok)
    assert isinstance(results[1], Err) and results[1].error.code == "EMBED/TOKENIZE"


def test_expect_dim(embedder: OnnxEmbedder) -> None:
    embedder.expect_dim(384)
    with pytest.raises(ConfigError, match="makes 384-d vectors, the index 96-d"):
        embedder.expect_dim(96)


@pytest.mark.parametrize("module", ["onnxruntime", "tokenizers"])
def test_without_the_extra_one_line_names_it(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    settings_ = RunSettings(embedder="onnx", model=str(minilm_dir()))
    with pytest.raises(ConfigError) as caught:
        open_onnx(settings_, ResourceLedger())
    assert str(caught.value) == (
        f"--embedder onnx needs the onnx extra ({module} is not installed): "
        "pip install 'funcpipe[onnx]'"
    )


def _copy_model(into: Path, **replace: bytes) -> Path:
    into.mkdir()
    for name in ("model.onnx", "tokenizer.json", "sentence_bert_config.json"):
        data = replace.get(name.split(".")[0]) or (minilm_dir() / name).read_bytes()
        (into / name).write_bytes(data)
    return into


def test_a_file_that_is_not_a_model_is_one_clear_line(tmp_path: Path) -> None:
    ledger = ResourceLedger()
    folder = _copy_model(tmp_path / "m", model=b"not an onnx model at all")
    with pytest.raises(ConfigError, match=r"cannot load the model .*model\.onnx"):
        open_onnx(RunSettings(embedder="onnx", model=str(folder)), ledger)
    assert ledger.snapshot().open_total == 0


def test_a_broken_tokenizer_file_is_one_clear_line(tmp_path: Path) -> None:
    folder = _copy_model(tmp_path / "m", tokenizer=b'{"version": "1.0", "model": 7}')
    with pytest.raises(ConfigError, match=r"cannot load the tokenizer .*tokenizer\.json"):
        open_onnx(RunSettings(embedder="onnx", model=str(folder)), ResourceLedger())
