"""The official ``openai`` SDK talks to ``funcpipe serve`` and gets HashEmbedder's vectors."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from funcpipe_rag.embedders.hashing import HashEmbedder
from funcpipe_rag.serve import EmbeddingServer, FaultConfig

TEXTS = ["the circuit breaker trips", "a socket left open is a leak", "embeddings, éé"]


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as srv:
        yield srv


@pytest.mark.parametrize("encoding", [None, "float"])
def test_sdk_vectors_equal_hash_embedder(server: EmbeddingServer, encoding: str | None) -> None:
    extra = {} if encoding is None else {"encoding_format": encoding}
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
        resp = client.embeddings.create(model="text-embedding-3-small", input=TEXTS, **extra)
    assert resp.model == "text-embedding-3-small"
    assert [d.index for d in resp.data] == [0, 1, 2]
    got = np.array([d.embedding for d in resp.data], dtype=np.float32)
    assert np.allclose(got, HashEmbedder(dim=384).embed_texts(TEXTS), atol=1e-6)
    assert resp.usage.prompt_tokens == sum(map(len, TEXTS))


def test_sdk_explicit_base64_gets_the_raw_strings(server: EmbeddingServer) -> None:
    # The SDK decodes base64 only when it chose the format itself; asked explicitly, it
    # hands back the strings: little-endian float32 bytes.
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
        resp = client.embeddings.create(model="m", input=TEXTS, encoding_format="base64")
    got = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in resp.data])
    assert np.array_equal(got, HashEmbedder(dim=384).embed_texts(TEXTS))


def test_sdk_asks_for_base64_by_default(server: EmbeddingServer) -> None:
    before = len(server.stats()["request_log"])
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
        resp = client.embeddings.with_raw_response.create(model="m", input="hello")
    assert isinstance(resp.http_response.json()["data"][0]["embedding"], str)  # base64
    assert len(server.stats()["request_log"]) == before + 1


def test_sdk_retries_a_429_with_retry_after() -> None:
    faults = FaultConfig(fail_first=1, status=429, retry_after=0.05)
    with (
        EmbeddingServer(dim=16, faults=faults) as srv,
        openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=1) as client,
    ):
        resp = client.embeddings.create(model="m", input=["retry me"])
    assert len(resp.data[0].embedding) == 16
    log = srv.stats()["request_log"]
    assert [e["outcome"] for e in log] == ["status:429", "ok"]
    assert log[1]["t"] - log[0]["t"] >= 0.05  # the SDK honoured Retry-After


def test_sdk_lists_and_retrieves_models(server: EmbeddingServer) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
        models = list(client.models.list())
        one = client.models.retrieve("text-embedding-3-small")
    assert [m.id for m in models] == ["hash-ngram-v1"]
    assert models[0].object == "model" and models[0].owned_by == "funcpipe"
    assert one.id == "text-embedding-3-small" and one.created == models[0].created


def test_sdk_sees_a_limit_as_a_bad_request() -> None:
    with (
        EmbeddingServer(dim=16) as srv,
        openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.embeddings.create(model="m", input=["x"] * 2049)
    assert caught.value.code == "too_many_inputs" and "2048" in caught.value.message
