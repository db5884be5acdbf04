"""The embedding wire's JSON: the fast decoder behaves as the standard library, and
base64 answers decoded in one piece give what decoding each vector gives."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.embedders import protocols, wirejson
from funcpipe_rag.embedders.protocols import PROTOCOLS, BadAnswer, _to_vector

OPENAI = PROTOCOLS["openai"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def outcome(decode: Any, content: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(content)
    except Exception as exc:  # the error's type is part of the behaviour
        return "raised", type(exc)


def test_the_fast_decoder_is_installed_by_make_setup() -> None:
    # The benchmarks measure it; a setup without it would be measuring the fallback.
    assert wirejson.FAST


@given(json_values)
def test_loads_gives_the_standard_librarys_values(value: Any) -> None:
    content = json.dumps(value).encode()
    assert wirejson.loads(content) == json.loads(content)


@pytest.mark.parametrize(
    "content",
    [
        b'{"data": [{"index": 0, "embedding": [NaN, 1]}]}',  # the standard library accepts NaN
        b"[Infinity, -Infinity]",
        b"[1e400]",  # overflows a double: msgspec refuses, json says inf
        b"123456789012345678901234567890",
        b"[" * 5000 + b"]" * 5000,  # deeper than either allows
        b'{"a": "\xff"}',  # not UTF-8
        b"",
        b"{",
        b'{"a": 1} x',
    ],
)
def test_what_the_fast_decoder_refuses_gets_the_standard_librarys_answer(content: bytes) -> None:
    assert outcome(wirejson.loads, content) == outcome(json.loads, content)


@given(st.dictionaries(st.text(), st.lists(st.text(), max_size=4) | st.text(), max_size=4))
def test_dumps_is_compact_utf8_json_of_the_body(body: dict[str, Any]) -> None:
    sent = wirejson.dumps(body)
    assert json.loads(sent) == body
    assert sent == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_dumps_refuses_a_lone_surrogate_as_httpx_would() -> None:
    with pytest.raises(UnicodeEncodeError):
        wirejson.dumps({"input": ["\ud800"]})


def b64_answer(rows: list[bytes], order: list[int] | None = None) -> bytes:
    order = order if order is not None else list(range(len(rows)))
    data = [{"index": i, "embedding": base64.b64encode(rows[i]).decode()} for i in order]
    return json.dumps({"data": data}).encode()


def one_by_one(content: bytes) -> list[np.ndarray[Any, Any]] | str:
    """What decoding every vector alone gives (or the code it fails with)."""
    try:
        data = sorted(json.loads(content)["data"], key=lambda d: d["index"])
        return [_to_vector(d["embedding"]) for d in data]
    except BadAnswer as exc:
        return exc.code


def parsed(content: bytes, n: int) -> list[np.ndarray[Any, Any]] | str:
    try:
        return OPENAI.parse(content, n)
    except BadAnswer as exc:
        return exc.code


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(1, 7),  # dimensions 1, 2, 4, 5, 7 pad; 3 and 6 do not
            st.permutations(list(range(n))),
        )
    ),
    st.sampled_from(["finite", "nan", "ragged", "short"]),
    st.randoms(use_true_random=False),
)
def test_base64_answers_decoded_in_one_piece_equal_one_by_one(
    shape: tuple[int, int, list[int]], fault: str, rnd: Any
) -> None:
    n, dim, order = shape
    matrix = np.array([[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(n)], "<f4")
    rows = [r.tobytes() for r in matrix]
    at = rnd.randrange(n)
    if fault == "nan":
        rows[at] = np.full(dim, np.nan, "<f4").tobytes()
    elif fault == "ragged":
        rows[at] += np.zeros(3, "<f4").tobytes()
    elif fault == "short":
        rows[at] = rows[at][:-1] if len(rows[at]) > 1 else b"\0\0"
    content = b64_answer(rows, order)
    got, want = parsed(content, n), one_by_one(content)
    if isinstance(want, str):
        assert got == want
        return
    assert not isinstance(got, str)
    assert [v.dtype for v in got] == [np.dtype(np.float32)] * n
    assert [v.tolist() for v in got] == [v.tolist() for v in want]
    if fault == "finite":
        assert np.array_equal(np.stack(got), matrix)


def test_a_bad_character_in_one_base64_vector_fails_the_answer() -> None:
    rows = [np.ones(6, "<f4").tobytes() for _ in range(3)]
    content = b64_answer(rows).replace(b'IA/"}, {"index": 2', b'I!/"}, {"index": 2', 1)
    assert content != b64_answer(rows)
    assert parsed(content, 3) == "EMBED/BAD_JSON"


def test_huge_integers_parse_as_the_standard_library_would() -> None:
    huge = 2**70
    in_vector = json.dumps({"data": [{"index": 0, "embedding": [huge, 1]}]}).encode()
    assert np.array_equal(parsed(in_vector, 1)[0], np.array([huge, 1], np.float32))
    as_index = json.dumps({"data": [{"index": huge, "embedding": [1.0]}]}).encode()
    assert parsed(as_index, 1) == "EMBED/BAD_INDEX"


def test_the_fast_base64_decoder_is_installed_by_make_setup() -> None:
    assert protocols._unpadded_b64decode.func is not base64.b64decode


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64_outcome(decode: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", decode(text)
    except ValueError:  # binascii.Error is one; the parser catches both
        return "raised", ValueError


@given(
    st.lists(
        st.text(B64_ALPHABET, min_size=4, max_size=4)
        | st.text(B64_ALPHABET + "-_ \n.!\x00é", min_size=4, max_size=4),
        max_size=40,
    ).map("".join)
)
def test_the_fast_base64_decoder_answers_as_the_standard_library(text: str) -> None:
    """On what the whole-answer path gives it (no padding, a multiple of 4 long): the
    same bytes, or a refusal from both."""
    fast = protocols._unpadded_b64decode
    assert b64_outcome(fast, text) == b64_outcome(
        lambda t: base64.b64decode(t, validate=True), text
    )
