"""Read an embedding server's answer body: bounded in size and in time.

``response.content`` trusts the server: an endless chunked answer grows the client's
memory until it dies, and a trickle of bytes keeps it waiting forever. Here the body
is read chunk by chunk from a streamed response and refused as soon as it passes its
cap (:class:`AnswerTooBig`, before any byte when ``Content-Length`` already says so)
or its request's deadline (:class:`DeadlinePassed`).

funcpipe asks for uncompressed answers (``Accept-Encoding: identity``); a server that
compresses anyway is decoded here, piece by piece, with the cap applied to the decoded
size, so a small gzip bomb cannot expand past it either.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import httpx

from .transport import Deadline

MIB = 1 << 20
# Per float of an answer written as JSON text: up to ~25 characters with its separator
# ("-1.2345678956196457e-05, "), more when pretty-printed.
_BYTES_PER_FLOAT = 32
# A dimension to plan for while the model's own is unknown (large models use 4096).
_DIM_FLOOR = 4096
# An error answer is only read for its message.
ERROR_BODY_CAP = 64 * 1024


class AnswerTooBig(Exception):
    """The answer is longer than the cap; ``declared`` when Content-Length said so."""

    def __init__(self, size: int, cap: int, *, declared: bool) -> None:
        super().__init__(f"answer of {size} bytes passed the cap of {cap} bytes")
        self.size = size
        self.cap = cap
        self.declared = declared


class DeadlinePassed(Exception):
    """The answer was still arriving when the request's deadline passed."""

    def __init__(self, received: int) -> None:
        super().__init__(f"{received} bytes received before the deadline")
        self.received = received


class BadEncoding(Exception):
    """The answer is compressed in a way funcpipe neither asked for nor decodes."""


def answer_cap(n_texts: int, dim: int, max_answer_mb: float) -> int:
    """Bytes an answer for ``n_texts`` inputs may take.

    ``max_answer_mb`` > 0 is the user's cap; 0 sizes it from the request: every input's
    vector (``dim``, at least 4096) as JSON text, plus 1 MiB for the envelope.

    >>> answer_cap(64, 384, 0) // MIB
    9
    >>> answer_cap(64, 384, 2.5) == int(2.5 * MIB)
    True
    """
    if max_answer_mb > 0:
        return int(max_answer_mb * MIB)
    return n_texts * max(dim, _DIM_FLOOR) * _BYTES_PER_FLOAT + MIB


def declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def read_answer(
    response: httpx.Response, *, cap: int, deadline: Deadline, truncate: bool = False
) -> bytes:
    """The body of a streamed ``response``, at most ``cap`` bytes.

    Raises :class:`AnswerTooBig` (unless ``truncate``: then the first ``cap`` bytes are
    returned and the rest is never read), :class:`DeadlinePassed` or
    :class:`BadEncoding`; httpx's own errors pass through.
    """
    declared = declared_length(response)
    if declared is not None and declared > cap and not truncate:
        raise AnswerTooBig(declared, cap, declared=True)
    chunks: Iterable[bytes]
    decode: Callable[[bytes, int], bytes]
    if response.is_stream_consumed:
        # A transport that hands over a body already read and decoded (httpx's
        # MockTransport): nothing left to bound but its size, checked below.
        chunks, decode = (response.content,), _identity
    else:
        chunks = response.iter_raw()
        decode = _decoder(response.headers.get("content-encoding", ""))
    parts: list[bytes] = []
    size = 0
    for raw in chunks:
        if deadline.left() <= 0:
            raise DeadlinePassed(size)
        data = decode(raw, cap - size + 1)
        if size + len(data) > cap:
            if truncate:
                parts.append(data[: cap - size])
                break
            raise AnswerTooBig(size + len(data), cap, declared=False)
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _identity(raw: bytes, _limit: int) -> bytes:
    return raw


def _decoder(encoding: str) -> Callable[[bytes, int], bytes]:
    """A function from a raw chunk (and a size limit) to its decoded bytes."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return _identity
    if name not in ("gzip", "x-gzip", "deflate"):
        raise BadEncoding(f"answer is compressed with {encoding!r}, which was not asked for")
    # wbits 47: a gzip or zlib header, detected; what HTTP calls deflate is zlib.
    inflater = zlib.decompressobj(wbits=47)

    def decode(raw: bytes, limit: int) -> bytes:
        try:
            # At most `limit` bytes out, however much `raw` would expand to: one byte
            # past the cap is enough to know the answer is too big.
            return inflater.decompress(raw, limit)
        except zlib.error as exc:
            raise BadEncoding(f"answer is not valid {name} data: {exc}") from None

    return decode
