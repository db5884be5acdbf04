"""JSON for the embedding wire: msgspec when it is installed, the standard library else.

A float answer of 64 vectors of 384 dimensions is ~300 KB of JSON numbers; the
standard library decodes it about five times slower than msgspec, and on the client
that decoding was most of its work per batch (``python -m bench real-http``). msgspec
is optional (``pip install 'funcpipe[fast]'``): without it everything works, slower.
(orjson decodes faster still, but a float ingest of the full real corpus peaked 9 MB
higher with it, past the 100 MB budget; decoding on 4 threads, orjson kept ~2 MB more
than the standard library, msgspec ~2 MB less.)

The two are held to one behaviour. What msgspec accepts it decodes to the same values
as :func:`json.loads` (both round floats correctly; integers stay exact). What it
refuses (``NaN``, ``Infinity``, numbers that overflow a double, invalid UTF-8) goes to
the standard library, which either accepts it too or raises its own error; nesting
too deep is a ``RecursionError`` from both. A caller sees the standard library's
values and errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _stdlib_dumps(obj: Any) -> bytes:
    # What httpx sends for ``json=``: compact, UTF-8, no NaN.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _load_fast() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    try:
        import msgspec
    except ImportError:
        return json.loads, _stdlib_dumps
    return msgspec.json.Decoder().decode, msgspec.json.encode


_fast_loads, _fast_dumps = _load_fast()
# Which decoder is in use, for the benchmarks' rows and the tests.
FAST = _fast_loads is not json.loads


def loads(content: bytes) -> Any:
    """:func:`json.loads` of ``content``, with the same values and the same errors."""
    try:
        return _fast_loads(content)
    except ValueError:  # every msgspec error is one: let the standard library answer
        return json.loads(content)


def dumps(obj: Any) -> bytes:
    """A request body: compact UTF-8 JSON of ``obj`` (strings, numbers, lists, dicts);
    raises as httpx's own encoding would (e.g. on a lone surrogate)."""
    try:
        return _fast_dumps(obj)
    except TypeError:  # a type msgspec does not encode: let the standard library say why
        return _stdlib_dumps(obj)
