"""JSON for the embedding wire: orjson when it is installed, the standard library else.

A float answer of 64 vectors of 384 dimensions is ~300 KB of JSON numbers; the
standard library decodes it about ten times slower than orjson, and on the client that
decoding is most of its work per batch (``python -m bench http``). orjson is optional
(``pip install 'funcpipe[fast]'``): without it everything works, only slower.

The two are held to one behaviour. What orjson accepts it decodes to the same values
as :func:`json.loads` (both round floats correctly), with one difference: an integer
outside [-2**63, 2**64) comes back as the nearest float, where the standard library
keeps it exact — the same float32 in a vector, and out of range as an ``index`` either
way. What orjson refuses (``NaN``, ``Infinity``, numbers that overflow a double,
nesting past 1,024 levels, invalid UTF-8) goes to the standard library, which either
accepts it too or raises its own error: a caller sees the standard library's errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _stdlib_dumps(obj: Any) -> bytes:
    # What httpx sends for ``json=``: compact, UTF-8, no NaN.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _load_orjson() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes], type[Exception]]:
    try:
        import orjson
    except ImportError:
        return json.loads, _stdlib_dumps, ValueError
    return orjson.loads, orjson.dumps, orjson.JSONDecodeError


_fast_loads, _fast_dumps, _FastError = _load_orjson()
# Which decoder is in use, for the benchmarks' rows and the tests.
FAST = _fast_loads is not json.loads


def loads(content: bytes) -> Any:
    """:func:`json.loads` of ``content``, with the same values and the same errors."""
    try:
        return _fast_loads(content)
    except _FastError:
        return json.loads(content)


def dumps(obj: Any) -> bytes:
    """A request body: compact UTF-8 JSON of ``obj`` (strings, numbers, lists, dicts);
    raises as httpx's own encoding would (e.g. on a lone surrogate)."""
    try:
        return _fast_dumps(obj)
    except TypeError:  # orjson's JSONEncodeError: let the standard library say why
        return _stdlib_dumps(obj)
