"""The frames a run and its parser workers exchange over a pair of pipes.

A frame is a 5-byte header — payload length (4 bytes, big-endian) and a kind byte —
then the payload. Payloads are JSON, except ``DATA`` (a file's raw bytes). JSON, not
pickle, on purpose: a worker parses untrusted files, and a worker whose parser was
subverted must not be able to make the run execute anything; the run only ever decodes
plain values from it, and caps every frame's size.

Run -> worker: ``JOB`` (what to parse) then ``DATA`` (the bytes that were hashed, or
nothing when the worker must read a large file itself and check its hash).
Worker -> run: ``HELLO`` once ready, then per job ``STATUS`` (sent only once the whole
file is parsed: the run's time limit stops there), ``PIECE`` per piece of text, ``END``.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">IB")

JOB = ord("J")
DATA = ord("D")
HELLO = ord("H")
STATUS = ord("S")
PIECE = ord("P")
END = ord("K")


class WireError(Exception):
    """A frame that breaks the protocol (unknown kind, over the size cap, bad JSON)."""


def encode(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def encode_json(kind: int, value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates (file names that are not UTF-8) as escapes.
    return encode(kind, json.dumps(value, ensure_ascii=True).encode("ascii"))


def decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise WireError(f"bad JSON in a frame: {exc}") from None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a blocking descriptor."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes | None:
    """Exactly ``n`` bytes from a blocking descriptor; ``None`` at end of file."""
    parts: list[bytes] = []
    left = n
    while left:
        block = os.read(fd, min(left, 1 << 20))
        if not block:
            return None
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def read_frame(fd: int, max_len: int) -> tuple[int, bytes] | None:
    """One frame from a blocking descriptor (the worker's side); ``None`` at end of file."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    length, kind = HEADER.unpack(head)
    if length > max_len:
        raise WireError(f"frame of {length} bytes is over the cap of {max_len}")
    payload = read_exact(fd, length) if length else b""
    if payload is None:
        return None
    return kind, payload


class FrameBuffer:
    """Frames cut from bytes that arrive in pieces (the run's non-blocking side)."""

    def __init__(self, max_len: int) -> None:
        self._buf = bytearray()
        self._max_len = max_len

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buf) >= HEADER.size:
            length, kind = HEADER.unpack_from(self._buf)
            if length > self._max_len:
                raise WireError(f"frame of {length} bytes is over the cap of {self._max_len}")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append((kind, bytes(self._buf[HEADER.size : end])))
            del self._buf[:end]
        return frames


__all__ = [
    "DATA",
    "END",
    "HELLO",
    "JOB",
    "PIECE",
    "STATUS",
    "FrameBuffer",
    "WireError",
    "decode_json",
    "encode",
    "encode_json",
    "read_exact",
    "read_frame",
    "write_all",
]
