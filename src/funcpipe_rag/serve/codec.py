"""The three wire formats: embed requests read within limits, answers, and errors.

Requests are read by a small JSON scanner rather than ``json.loads``, so that nothing
is built that the limits do not allow: the inputs are counted as they are read and the
read stops at the first one over a limit; other fields are stepped over without being
built, and their nesting and size (in values) are capped. Strings are decoded by the
``json`` module's own ``scanstring``, so what is accepted decodes exactly as
``json.loads`` would decode it (a property test holds the two together).

Errors are answered in the route's own style::

    OpenAI  {"error": {"message": ..., "type": ..., "param": null, "code": ...}}
    Ollama  {"error": "..."}
    TEI     {"error": "...", "error_type": "validation"}
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .faults import CorruptMode
from .limits import LimitExceeded, ServerLimits

__all__ = [
    "EMBED_ROUTES",
    "Api",
    "BadRequest",
    "EmbedRequest",
    "encode",
    "error_body",
    "model_doc",
    "models_doc",
    "parse_embed",
]

Api = Literal["openai", "ollama", "tei"]
EMBED_ROUTES: Final[dict[str, Api]] = {
    "/v1/embeddings": "openai",
    "/api/embed": "ollama",
    "/embed": "tei",
}
_MAX_DEPTH: Final = 32  # nesting allowed in fields the server ignores
# Values allowed in fields the server ignores (real clients send a few: "user",
# "dimensions", Ollama's "options"); stepping over one costs a few microseconds, so
# this bounds the time a body can cost as well as its memory.
_MAX_IGNORED: Final = 10_000
_WS = re.compile(r"[ \t\n\r]*")
_NEXT_INPUT = re.compile(r'[ \t\n\r]*(?:(\])|,[ \t\n\r]*")')  # end of list, or next string
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null")
_TEI_TYPES: Final = {"invalid_request_error": "validation"}


class BadRequest(Exception):
    """A request body the server refuses with 400; ``str(exc)`` is the message sent."""


class _NotJson(BadRequest):
    def __init__(self) -> None:
        super().__init__("request body is not valid JSON")


@dataclass(frozen=True)
class EmbedRequest:
    api: Api
    texts: list[str]
    model: str
    base64: bool


class _Scanner:
    """A cursor over one JSON text that builds only the strings it is asked for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.skipped = 0

    def peek(self) -> str:
        """The next significant character ("" at the end), after skipping whitespace."""
        match = _WS.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
        return self.text[self.pos : self.pos + 1]

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def string(self) -> str:
        if self.take() != '"':
            raise _NotJson
        try:
            value, self.pos = scanstring(self.text, self.pos, True)
        except ValueError:
            raise _NotJson from None
        return str(value)

    def skip(self, depth: int = 0) -> None:
        """Step over one value without building it (strings are bounded by the body)."""
        self.skipped += 1
        if self.skipped > _MAX_IGNORED:
            raise BadRequest(f"request body has over {_MAX_IGNORED} values in ignored fields")
        char = self.peek()
        if char == '"':
            self.string()
            return
        if char not in ("[", "{"):
            match = _SCALAR.match(self.text, self.pos)
            if match is None:
                raise _NotJson
            self.pos = match.end()
            return
        if depth >= _MAX_DEPTH:
            raise BadRequest(f"request body is nested more than {_MAX_DEPTH} levels deep")
        close = "]" if char == "[" else "}"
        self.pos += 1
        if self.peek() == close:
            self.pos += 1
            return
        while True:
            if close == "}":
                self.string()
                if self.take() != ":":
                    raise _NotJson
            self.skip(depth + 1)
            char = self.take()
            if char == close:
                return
            if char != ",":
                raise _NotJson

    def end(self) -> None:
        if self.peek():
            raise _NotJson


def _read_texts(sc: _Scanner, key: str, limits: ServerLimits) -> list[str]:
    """The inputs: one string or a non-empty list of strings, refused at the first excess."""
    wrong_type = BadRequest(f"'{key}' must be a string or a list of strings")
    char = sc.peek()
    if char == "n" and sc.text.startswith("null", sc.pos):
        sc.pos += 4
        raise BadRequest(f"'{key}' is a required property")
    if char == '"':
        texts = [sc.string()]
        _check_length(texts[0], 0, limits)
        _check_total(len(texts[0]), limits)
        return texts
    if char != "[":
        raise wrong_type
    sc.pos += 1
    char = sc.take()
    if char == "]":
        raise BadRequest(f"'{key}' must not be an empty list")
    if char != '"':
        raise wrong_type
    # The hot loop of every request: one scanstring and one regex match per input, the
    # checks inlined (the helpers run only to raise).
    text, pos, texts, total = sc.text, sc.pos, [], 0
    most, longest, most_chars = limits.max_inputs, limits.max_input_chars, limits.max_total_chars
    while True:  # Invariant: pos is just past the opening quote of the next input.
        if len(texts) == most:  # refused before the next input is built
            raise LimitExceeded(
                "max_inputs", f"'{key}' has more than {most} inputs; the maximum is {most} per"
                " request",
            )  # fmt: skip
        try:
            value, pos = scanstring(text, pos, True)
        except ValueError:
            raise _NotJson from None
        total += len(value)
        if len(value) > longest or total > most_chars:
            _check_length(value, len(texts), limits)
            _check_total(total, limits)
        texts.append(value)
        match = _NEXT_INPUT.match(text, pos)
        if match is None:
            sc.pos = pos
            if sc.take() == "," and sc.peek() not in ('"', ""):
                raise wrong_type
            raise _NotJson
        if match.group(1):  # the closing bracket
            sc.pos = match.end()
            return texts
        pos = match.end()


def _check_length(text: str, index: int, limits: ServerLimits) -> None:
    if len(text) > limits.max_input_chars:
        raise LimitExceeded(
            "max_input_chars", f"input {index} is too long: {len(text)} characters; the maximum"
            f" is {limits.max_input_chars} characters per input",
        )  # fmt: skip


def _check_total(total: int, limits: ServerLimits) -> None:
    if total > limits.max_total_chars:
        raise LimitExceeded(
            "max_total_chars", f"the inputs hold more than {limits.max_total_chars} characters;"
            f" the maximum is {limits.max_total_chars} characters per request",
        )  # fmt: skip


def parse_embed(api: Api, body: bytes, limits: ServerLimits) -> EmbedRequest:
    """Read an embed request; raises :class:`BadRequest` or :class:`LimitExceeded`.

    Fields other than the inputs, ``model`` and ``encoding_format`` are checked for
    syntax and otherwise ignored. A repeated key counts once, the last time (as in
    ``json.loads``), but every copy of the inputs is held to the limits.
    """
    try:
        sc = _Scanner(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid JSON (UTF-8 expected)") from None
    if sc.peek() != "{":
        sc.skip()
        sc.end()
        raise BadRequest("request body must be a JSON object")
    key_of_texts = "inputs" if api == "tei" else "input"
    fields: dict[str, Any] = {}
    sc.pos += 1
    if sc.peek() != "}":
        while True:
            key = sc.string()
            if sc.take() != ":":
                raise _NotJson
            if key == key_of_texts:
                fields[key] = _read_texts(sc, key, limits)
            elif key in ("model", "encoding_format") and sc.peek() == '"':
                fields[key] = sc.string()
            else:  # kept as "present, not a string" when it is model or encoding_format
                fields[key] = None
                sc.skip()
            char = sc.take()
            if char == "}":
                break
            if char != ",":
                raise _NotJson
    else:
        sc.pos += 1
    sc.end()
    texts = fields.get(key_of_texts)
    if texts is None:
        raise BadRequest(f"'{key_of_texts}' is a required property")
    model = fields.get("model")
    if api != "tei" and not model:
        raise BadRequest("'model' is required and must be a non-empty string")
    encoding = fields.get("encoding_format", "float") if api == "openai" else "float"
    if encoding not in ("float", "base64"):
        raise BadRequest(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    return EmbedRequest(api, texts, model if isinstance(model, str) else "", encoding == "base64")


def encode(
    req: EmbedRequest, vectors: npt.NDArray[np.float32], corrupt: CorruptMode | None
) -> bytes:
    """The answer to ``req`` in its route's format, damaged as ``corrupt`` says."""
    if corrupt == "wrong-count":
        vectors = vectors[:-1]
    elif corrupt == "wrong-dim":
        vectors = vectors[:, :-1]
    elif corrupt == "nan":
        vectors = vectors.copy()
        vectors[0, 0] = np.nan
    tokens = sum(map(len, req.texts))
    doc: Any
    if req.api == "openai":
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                    if req.base64
                    else row.tolist()
                ),
            }
            for i, row in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        doc = {"object": "list", "data": data, "model": req.model, "usage": usage}
    elif req.api == "ollama":
        doc = {"model": req.model, "embeddings": vectors.tolist(), "prompt_eval_count": tokens}
    else:
        doc = vectors.tolist()
    # json emits the bare NaN token for a NaN float, which is what "nan" wants on the wire.
    out = json.dumps(doc, separators=(",", ":")).encode()
    return out[: len(out) // 2] if corrupt == "bad-json" else out


def error_body(
    api: Api | None,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> bytes:
    """An error document in the route's style; ``api=None`` (no embed route) is OpenAI's."""
    doc: dict[str, Any]
    if api == "ollama":
        doc = {"error": message}
    elif api == "tei":
        doc = {"error": message, "error_type": _TEI_TYPES.get(kind, kind)}
    else:
        doc = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(doc).encode()


def model_doc(model: str, created: int) -> dict[str, Any]:
    """One entry of OpenAI's model list (``GET /v1/models/{model}``)."""
    return {"id": model, "object": "model", "created": created, "owned_by": "funcpipe"}


def models_doc(models: list[str], created: int) -> dict[str, Any]:
    """OpenAI's ``GET /v1/models`` answer."""
    return {"object": "list", "data": [model_doc(m, created) for m in models]}
