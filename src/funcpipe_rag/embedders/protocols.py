"""Wire formats of the three embedding APIs funcpipe speaks, and answer validation.

=================  ====================  ===========================================
protocol           request               answer
=================  ====================  ===========================================
OpenAI-compatible  POST {url}/v1/embeddings  ``{"data": [{"index", "embedding"}]}``
                   ``{"input", "model",``    (``embedding`` a list of floats, or
                   ``"encoding_format"}``    base64 float32 when asked for)
Ollama             POST {url}/api/embed  ``{"embeddings": [[...], ...]}``
                   ``{"input", "model"}``
TEI                POST {url}/embed      a bare list of vectors
                   ``{"inputs"}``
=================  ====================  ===========================================

Parsing is total: every malformed answer becomes :class:`BadAnswer` with a stable code
(``EMBED/BAD_JSON``, ``EMBED/BAD_COUNT``, ``EMBED/BAD_INDEX``, ``EMBED/BAD_DIM``,
``EMBED/NOT_FINITE``), never a crash. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import wirejson

Vector = npt.NDArray[np.float32]


class BadAnswer(Exception):
    """The server answered 2xx with something that is not a valid embedding answer."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code


@dataclass(frozen=True, slots=True)
class WireProtocol:
    name: str
    path: str

    def body(self, texts: Sequence[str], model: str, encoding_format: str) -> dict[str, Any]:
        if self.name == "openai":
            return {"input": list(texts), "model": model, "encoding_format": encoding_format}
        if self.name == "ollama":
            return {"input": list(texts), "model": model}
        return {"inputs": list(texts)}

    def parse(self, content: bytes, n: int) -> list[Vector]:
        """The ``n`` vectors of an answer, in input order; raises :class:`BadAnswer`."""
        try:
            doc = wirejson.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadAnswer("EMBED/BAD_JSON", f"answer is not JSON: {exc}") from None
        except RecursionError:  # "[[[[..." a few thousand deep: not a crash of the run
            raise BadAnswer("EMBED/BAD_JSON", "answer is JSON nested too deep") from None
        if self.name == "openai":
            raw = _openai_vectors(doc, n)
        elif self.name == "ollama":
            if not isinstance(doc, dict) or not isinstance(doc.get("embeddings"), list):
                raise BadAnswer("EMBED/BAD_JSON", "answer has no 'embeddings' list")
            raw = doc["embeddings"]
        else:
            if not isinstance(doc, list):
                raise BadAnswer("EMBED/BAD_JSON", "answer is not a list of vectors")
            raw = doc
        if len(raw) != n:
            raise BadAnswer("EMBED/BAD_COUNT", f"asked for {n} vectors, got {len(raw)}")
        matrix = _base64_matrix(raw)
        if matrix is not None:
            return list(matrix)
        return [_to_vector(v) for v in raw]


PROTOCOLS = {
    "openai": WireProtocol("openai", "/v1/embeddings"),
    "ollama": WireProtocol("ollama", "/api/embed"),
    "tei": WireProtocol("tei", "/embed"),
}


def _openai_vectors(doc: Any, n: int) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise BadAnswer("EMBED/BAD_JSON", "answer has no 'data' list")
    data = doc["data"]
    if len(data) != n:
        raise BadAnswer("EMBED/BAD_COUNT", f"asked for {n} vectors, got {len(data)}")
    slots: list[Any] = [None] * n
    for position, item in enumerate(data):
        if not isinstance(item, dict) or "embedding" not in item:
            raise BadAnswer("EMBED/BAD_JSON", f"data[{position}] has no 'embedding'")
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            raise BadAnswer("EMBED/BAD_INDEX", f"data[{position}].index {index!r} out of range")
        if slots[index] is not None:
            raise BadAnswer("EMBED/BAD_INDEX", f"index {index} answered twice")
        slots[index] = item["embedding"]
    return slots


def _load_unpadded_b64decode() -> Callable[[str], bytes]:
    """The validating base64 decoder for whole answers: pybase64's when it is installed
    (the ``fast`` extra), the standard library's else.

    Why: ``base64.b64decode(validate=True)`` took ~560 us for one answer of 64 vectors of
    384 dimensions (131 KB of base64), a fifth of the client's CPU per request; pybase64
    takes ~13 us. Only for the strings :func:`_base64_matrix` passes (no padding, a
    length that is a multiple of 4): for those both accept exactly the strings of the
    base64 alphabet and decode them alike (``tests/embedders/test_wirejson.py``).
    """
    try:
        import pybase64
    except ImportError:
        return functools.partial(base64.b64decode, validate=True)
    return functools.partial(pybase64.b64decode, validate=True)


_unpadded_b64decode = _load_unpadded_b64decode()


def _base64_matrix(raw: list[Any]) -> npt.NDArray[np.float32] | None:
    """Every base64 vector of an answer decoded at once, one row each; ``None`` when
    they are not all alike and valid (the per-vector path then says what is wrong).

    Strings of one length, a multiple of 4, without padding, decode group by group: so
    their concatenation is valid exactly when each one is, and decodes to their bytes
    end to end. One decode, one copy and one finiteness check for the whole answer
    instead of one each per vector (and the rows share one array).
    """
    if not raw or not all(isinstance(v, str) for v in raw):
        return None
    size = len(raw[0])
    if size == 0 or size % 4 or (size // 4 * 3) % 4 or any(len(v) != size for v in raw):
        return None
    joined = "".join(raw)
    if "=" in joined:
        return None
    try:
        blob = _unpadded_b64decode(joined)
    except (binascii.Error, ValueError):
        return None
    matrix = np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(len(raw), -1)
    if not np.isfinite(matrix).all():
        return None
    return matrix


def _to_vector(raw: Any) -> Vector:
    if isinstance(raw, str):  # OpenAI base64: little-endian float32 bytes
        try:
            blob = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadAnswer("EMBED/BAD_JSON", "embedding is not valid base64") from None
        if len(blob) % 4:
            raise BadAnswer("EMBED/BAD_JSON", "base64 embedding is not float32 data")
        vec = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    elif isinstance(raw, list):
        # One C-level conversion; a per-number isinstance check cost ~28% of the
        # client's CPU per batch (bench_http). Nested lists and words fail here; JSON
        # true/false and numeric strings would pass as numbers, a leniency no real
        # server needs.
        try:
            vec = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadAnswer("EMBED/BAD_JSON", "embedding is not a list of numbers") from None
        if vec.ndim != 1:
            raise BadAnswer("EMBED/BAD_JSON", "embedding is not a flat list of numbers")
    else:
        raise BadAnswer("EMBED/BAD_JSON", "embedding is not a list of numbers")
    if vec.size == 0:
        raise BadAnswer("EMBED/BAD_DIM", "empty embedding")
    if not np.isfinite(vec).all():
        raise BadAnswer("EMBED/NOT_FINITE", "embedding holds NaN or infinity")
    return vec


def check_dims(vectors: Sequence[Vector], expected: int) -> int:
    """The one dimension of ``vectors`` (and ``expected`` when non-zero), else BadAnswer."""
    dims = {v.size for v in vectors}
    if expected:
        dims.add(expected)
    if len(dims) > 1:
        raise BadAnswer("EMBED/BAD_DIM", f"inconsistent dimensions {sorted(dims)}")
    return dims.pop() if dims else expected
