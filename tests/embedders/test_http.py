"""HttpEmbedder edge cases through httpx.MockTransport (answers a real server does not
give on demand); the loopback tests against `funcpipe serve` live in tests/cli."""

from __future__ import annotations

import base64
import email.utils
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.embedders.failures import is_retryable, parse_retry_after
from funcpipe_rag.embedders.http import HttpEmbedder
from funcpipe_rag.errors import ConfigError, ResourceClosedError
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.policies.retries import RetryPolicy
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.fakes import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


def vec(i: int, dim: int = 4) -> list[float]:
    return [float(i + 1)] + [0.0] * (dim - 1)


def openai_ok(request: httpx.Request, *, dim: int = 4) -> httpx.Response:
    body = json.loads(request.content)
    data = [{"index": i, "embedding": vec(i, dim)} for i in range(len(body["input"]))]
    return httpx.Response(200, json={"data": data})


def make(handler: Handler, protocol: str = "openai", **kw: Any) -> tuple[HttpEmbedder, FakeClock]:
    clock = FakeClock()
    kw.setdefault("retry", RetryPolicy(max_attempts=4, max_elapsed=60.0))
    emb = HttpEmbedder(
        protocol=protocol,
        url="http://127.0.0.1:9",
        model="m",
        ledger=ResourceLedger(),
        clock=clock,
        rng=random.Random(0),
        transport=httpx.MockTransport(handler),
        **kw,
    )
    return emb, clock


def oks(results: list[Any]) -> list[list[float]]:
    assert all(isinstance(r, Ok) for r in results), results
    return [r.value.tolist() for r in results]


@given(st.permutations(list(range(6))))
def test_openai_answers_are_matched_by_index_not_position(order: list[int]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = [{"index": i, "embedding": vec(i)} for i in order]
        return httpx.Response(200, json={"data": data})

    emb, _ = make(handler)
    try:
        assert oks(emb.embed_batch([f"t{i}" for i in range(6)])) == [vec(i) for i in range(6)]
    finally:
        emb.close()


def test_openai_base64_ollama_and_tei_formats() -> None:
    def b64(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["encoding_format"] == "base64" and body["model"] == "m"
        data = [
            {"index": i, "embedding": base64.b64encode(np.array(vec(i), "<f4").tobytes()).decode()}
            for i in range(len(body["input"]))
        ]
        return httpx.Response(200, json={"data": data})

    def ollama(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/embed"
        body = json.loads(request.content)
        return httpx.Response(200, json={"embeddings": [vec(i) for i in range(len(body["input"]))]})

    def tei(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/embed"
        body = json.loads(request.content)
        return httpx.Response(200, json=[vec(i) for i in range(len(body["inputs"]))])

    for handler, protocol, extra in (
        (b64, "openai", {"encoding_format": "base64"}),
        (ollama, "ollama", {}),
        (tei, "tei", {}),
    ):
        emb, _ = make(handler, protocol, **extra)
        try:
            assert oks(emb.embed_batch(["a", "b"])) == [vec(0), vec(1)]
            assert emb.dim == 4
        finally:
            emb.close()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(200, content=b"{not json"), "EMBED/BAD_JSON"),
        (
            httpx.Response(200, json={"data": [{"index": 0, "embedding": vec(0)}]}),
            "EMBED/BAD_COUNT",
        ),
        (
            httpx.Response(200, json={"data": [{"index": 0, "embedding": vec(0)}] * 2}),
            "EMBED/BAD_INDEX",
        ),
        (
            httpx.Response(
                200,
                json={
                    "data": [{"index": 0, "embedding": vec(0)}, {"index": 1, "embedding": [1.0]}]
                },
            ),
            "EMBED/BAD_DIM",
        ),
        (
            httpx.Response(
                200,
                content=b'{"data": [{"index": 0, "embedding": [NaN, 1]},'
                b' {"index": 1, "embedding": [1, 1]}]}',
            ),
            "EMBED/NOT_FINITE",
        ),
        (httpx.Response(200, json={"data": [{"index": 0}, {"index": 1}]}), "EMBED/BAD_JSON"),
    ],
)
def test_malformed_answers_are_errs_with_a_clear_code_and_not_retried(
    answer: httpx.Response, code: str
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer

    emb, _ = make(handler)
    try:
        results = emb.embed_batch(["a", "b"])
    finally:
        emb.close()
    assert all(isinstance(r, Err) and r.error.code == code for r in results)
    assert len(calls) == 1


def test_dimension_must_stay_the_same_across_batches() -> None:
    dims = iter([4, 8])
    emb, _ = make(lambda r: openai_ok(r, dim=next(dims)))
    try:
        assert all(isinstance(r, Ok) for r in emb.embed_batch(["a"]))
        second = emb.embed_batch(["b"])
    finally:
        emb.close()
    assert isinstance(second[0], Err) and second[0].error.code == "EMBED/BAD_DIM"


def test_503_is_retried_with_backoff_then_succeeds() -> None:
    statuses = iter([503, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return openai_ok(request) if status == 200 else httpx.Response(status, text="busy")

    emb, clock = make(handler)
    try:
        assert oks(emb.embed_batch(["a"])) == [vec(0)]
    finally:
        emb.close()
    assert len(clock.sleeps) == 2 and 0.25 <= clock.sleeps[0] <= 0.5 <= clock.sleeps[1] <= 1.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("3600", 30.0), (None, None)],
)
def test_429_retry_after_is_honoured_and_capped(header: str | None, expected: float | None) -> None:
    statuses = iter([429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(statuses) == 429:
            headers = {"Retry-After": header} if header else {}
            return httpx.Response(429, headers=headers)
        return openai_ok(request)

    emb, clock = make(
        handler, retry=RetryPolicy(max_attempts=3, max_elapsed=60, retry_after_cap=30)
    )
    try:
        assert oks(emb.embed_batch(["a"])) == [vec(0)]
    finally:
        emb.close()
    if expected is None:
        assert clock.sleeps[0] <= 0.5
    else:
        assert clock.sleeps == [expected]


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(7.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, text="no")

    emb, clock = make(handler)
    try:
        results = emb.embed_batch(["a", "b"])
    finally:
        emb.close()
    assert len(calls) == 1 and clock.sleeps == []
    assert all(isinstance(r, Err) and r.error.code == f"EMBED/HTTP_{status}" for r in results)


def test_attempts_are_capped_and_the_err_says_why() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    emb, _ = make(handler, retry=RetryPolicy(max_attempts=3, max_elapsed=60))
    try:
        (result,) = emb.embed_batch(["a"])
    finally:
        emb.close()
    assert isinstance(result, Err)
    assert result.error.code == "EMBED/CONNECT"
    assert result.error.ctx["attempts"] == 3 and result.error.ctx["gave_up"] == "max attempts"
    assert len(calls) == 3


def test_retry_budget_stops_retries_before_attempts_run_out() -> None:
    emb, clock = make(
        lambda r: httpx.Response(503),
        retry=RetryPolicy(max_attempts=50, base_delay=1, max_elapsed=5),
    )
    try:
        (result,) = emb.embed_batch(["a"])
    finally:
        emb.close()
    assert isinstance(result, Err) and result.error.ctx["gave_up"] == "retry budget spent"
    assert clock.now < 5


def test_413_splits_the_batch_down_to_what_fits() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["input"])
        sizes.append(n)
        return httpx.Response(413) if n > 2 else openai_ok(request)

    emb, _ = make(handler)
    try:
        results = emb.embed_batch([f"t{i}" for i in range(7)])
    finally:
        emb.close()
    assert len(oks(results)) == 7
    # 7 is refused, halves 3 + 4; 3 is refused, 1 + 2 pass; 4 is refused, 2 + 2 pass.
    assert sizes == [7, 3, 1, 2, 4, 2, 2]


def test_context_length_error_isolates_the_one_offending_input() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        if any(len(t) > 100 for t in inputs):
            error = {"message": "This model's maximum context length is 8192 tokens"}
            return httpx.Response(400, json={"error": error})
        return openai_ok(request)

    texts = ["ok"] * 5 + ["x" * 500] + ["ok"] * 4
    emb, _ = make(handler)
    try:
        results = emb.embed_batch(texts)
    finally:
        emb.close()
    failed = [i for i, r in enumerate(results) if isinstance(r, Err)]
    assert failed == [5]
    assert results[5].error.code == "EMBED/CONTEXT_LENGTH"  # type: ignore[union-attr]


def test_api_key_is_sent_but_never_shown() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(500, text="server error")

    secret = "sk-very-secret-123"
    emb, _ = make(handler, api_key=secret, retry=RetryPolicy(max_attempts=1))
    try:
        (result,) = emb.embed_batch(["a"])
    finally:
        emb.close()
    assert seen == [f"Bearer {secret}"]
    assert secret not in repr(emb)
    assert secret not in json.dumps(result.error.to_jsonable())  # type: ignore[union-attr]


def test_configuration_is_checked_when_built_and_use_after_close_fails() -> None:
    with pytest.raises(ConfigError, match="needs --model"):
        HttpEmbedder(protocol="openai", url="http://x", model="", ledger=ResourceLedger())
    with pytest.raises(ConfigError, match="http://"):
        HttpEmbedder(protocol="tei", url="x", model="", ledger=ResourceLedger())
    emb, _ = make(openai_ok)
    emb.close()
    emb.close()
    with pytest.raises(ResourceClosedError, match="closed"):
        emb.embed_batch(["a"])


def test_retryable_classification() -> None:
    def err(code: str, status: int | None = None) -> ErrInfo:
        return ErrInfo(code, "x", ctx={} if status is None else {"status": status})

    assert all(is_retryable(err("EMBED/HTTP", s)) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable(err("EMBED/HTTP", s)) for s in (400, 401, 403, 404, 413, 422))
    assert all(is_retryable(err(c)) for c in ("EMBED/CONNECT", "EMBED/TIMEOUT", "EMBED/DROPPED"))
    assert not is_retryable(err("EMBED/BAD_JSON", 200))
    assert not any(is_retryable(err(c, 200)) for c in ("EMBED/TOO_BIG_ANSWER", "EMBED/BAD_DIM"))
    assert not is_retryable(err("EMBED/REDIRECT", 307))
