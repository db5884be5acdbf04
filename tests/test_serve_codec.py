"""funcpipe_rag.serve.codec: embed requests read within limits, agreeing with json.loads."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from funcpipe_rag.serve import ServerLimits
from funcpipe_rag.serve.codec import Api, BadRequest, EmbedRequest, error_body, parse_embed
from funcpipe_rag.serve.limits import LimitExceeded

SMALL = ServerLimits(max_inputs=4, max_input_chars=12, max_total_chars=30)


def reference(api: Api, body: bytes, limits: ServerLimits) -> EmbedRequest | str:
    """What the reader must decide, written the obvious way: json.loads, then the checks.

    Returns the request, or "bad" / "limit:<kind>" for a refusal.
    """
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return "bad"
    if not isinstance(doc, dict):
        return "bad"
    key = "inputs" if api == "tei" else "input"
    value = doc.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return "bad"
    total = 0
    for i, text in enumerate(value):  # in order: the first excess decides the refusal
        if i == limits.max_inputs:
            return "limit:max_inputs"
        if len(text) > limits.max_input_chars:
            return "limit:max_input_chars"
        total += len(text)
        if total > limits.max_total_chars:
            return "limit:max_total_chars"
    model = doc.get("model")
    if api != "tei" and not (isinstance(model, str) and model):
        return "bad"
    encoding = doc.get("encoding_format", "float") if api == "openai" else "float"
    if encoding not in ("float", "base64"):
        return "bad"
    return EmbedRequest(api, value, model if isinstance(model, str) else "", encoding == "base64")


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON


def decide(api: Api, body: bytes, limits: ServerLimits) -> EmbedRequest | str:
    try:
        return parse_embed(api, body, limits)
    except LimitExceeded as exc:
        return f"limit:{exc.kind}"
    except BadRequest:
        return "bad"


def assert_agrees(api: Api, body: bytes, limits: ServerLimits) -> None:
    """The reader decides as the reference does, except that it may refuse an excess
    before it reaches a fault later in the document (the reference reads it all first)."""
    got, want = decide(api, body, limits), reference(api, body, limits)
    assert got == want or (want == "bad" and str(got).startswith("limit:")), (got, want)


texts = st.text(st.characters(codec="utf-8"), max_size=14)
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
inputs = st.one_of(texts, st.lists(texts, max_size=6), json_values)
documents = st.fixed_dictionaries(
    {},
    optional={
        "input": inputs,
        "inputs": inputs,
        "model": st.sampled_from(["m", ""]) | json_values,
        "encoding_format": st.sampled_from(["float", "base64", "int8"]) | json_values,
        "user": json_values,
        "options": json_values,
    },
)


def encodings(doc: object) -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            json.dumps(doc).encode(),
            json.dumps(doc, ensure_ascii=False, indent=2).encode(),
            json.dumps(doc, separators=(",", ":")).encode(),
        ]
    )


@given(api=st.sampled_from(["openai", "ollama", "tei"]), body=documents.flatmap(encodings))
@example(api="openai", body=b'{"model": "m", "input": ["a", "b"], "input": "c"}')
@example(api="tei", body=b'{"inputs": "x", "truncate": true} ')
def test_reader_agrees_with_json_loads_on_documents(api: Api, body: bytes) -> None:
    assert_agrees(api, body, SMALL)


@given(
    api=st.sampled_from(["openai", "ollama", "tei"]),
    body=documents.flatmap(encodings),
    cut=st.integers(min_value=0),
    junk=st.sampled_from([b"", b"x", b"}", b",", b"]", b'"', b"\\", b"\x00", b"\xff", b" 1"]),
)
def test_reader_agrees_with_json_loads_on_damaged_documents(
    api: Api, body: bytes, cut: int, junk: bytes
) -> None:
    at = cut % (len(body) + 1)
    assert_agrees(api, body[:at] + junk + body[at:], SMALL)


def test_limits_are_inclusive() -> None:
    limits = ServerLimits(max_inputs=3, max_input_chars=5, max_total_chars=12)

    def body(value: object) -> bytes:
        return json.dumps({"model": "m", "input": value}).encode()

    assert parse_embed("openai", body(["abcde", "abcde", "ab"]), limits).texts[2] == "ab"
    for value, kind in [
        (["a", "b", "c", "d"], "max_inputs"),
        (["abcdef"], "max_input_chars"),
        ("abcdef", "max_input_chars"),
        (["abcde", "abcde", "abc"], "max_total_chars"),
    ]:
        with pytest.raises(LimitExceeded) as caught:
            parse_embed("openai", body(value), limits)
        assert caught.value.kind == kind


def test_escapes_count_as_the_characters_they_stand_for() -> None:
    limits = ServerLimits(max_input_chars=2)
    body = b'{"model": "m", "input": "\\u00e9\\ud83d\\ude00"}'  # two characters, 18 bytes
    assert parse_embed("openai", body, limits).texts == ["\u00e9\U0001f600"]


def test_the_count_is_refused_before_the_list_is_built() -> None:
    # A million short strings in 5 MB: json.loads would build every one (about 60 MB of
    # objects); the reader holds only the decoded body and the inputs it accepted.
    body = b'{"model":"m","input":[' + b",".join([b'"ab"'] * 1_000_000) + b"]}"
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as caught:
            parse_embed("openai", body, ServerLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.kind == "max_inputs" and "more than 2048 inputs" in str(caught.value)
    assert peak < 2 * len(body), f"peak {peak / 1e6:.1f} MB for a {len(body) / 1e6:.1f} MB body"


def test_ignored_fields_are_not_built_and_their_size_and_nesting_are_capped() -> None:
    # json.loads would build every empty list (56 bytes each) and spend its time on them.
    wide = b'{"model":"m","input":"x","user":[' + b",".join([b"[]"] * 9_998) + b"]}"
    tracemalloc.start()
    try:
        assert parse_embed("openai", wide, ServerLimits()).texts == ["x"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(wide)
    wider = b'{"model":"m","input":"x","user":[' + b",".join([b"[]"] * 2_000_000) + b"]}"
    with pytest.raises(BadRequest, match="over 10000 values in ignored fields"):
        parse_embed("openai", wider, ServerLimits())
    deep = b'{"model":"m","input":"x","user":' + b"[" * 100 + b"]" * 100 + b"}"
    with pytest.raises(BadRequest, match="nested more than 32 levels"):
        parse_embed("openai", deep, ServerLimits())


@pytest.mark.parametrize(
    ("kind", "status"),
    [("max_body_bytes", (413, 413, 413)), ("max_inputs", (400, 413, 413))],
)
def test_refusal_status_by_route(kind: Any, status: tuple[int, int, int]) -> None:
    exc = LimitExceeded(kind, "no")
    assert (exc.status("openai"), exc.status("ollama"), exc.status("tei")) == status


def test_error_bodies_in_each_route_style() -> None:
    assert json.loads(error_body("openai", "bad", code="c")) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": "c"}
    }
    assert json.loads(error_body("ollama", "bad")) == {"error": "bad"}
    assert json.loads(error_body("tei", "bad")) == {"error": "bad", "error_type": "validation"}
