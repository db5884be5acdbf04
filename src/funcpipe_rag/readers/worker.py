"""A parser worker: the process in which untrusted binary files are parsed.

Started by :mod:`.pool` as ``python -m funcpipe_rag.readers.worker --memory-mb N
--parent PID`` with its stdin and stdout as the two pipes of :mod:`.wire`. Before the
first job it

* ignores SIGINT (Ctrl-C is the run's to handle; the run then stops its workers),
* asks the kernel to kill it when the run dies (Linux ``PR_SET_PDEATHSIG``), so even a
  ``kill -9`` of the run leaves no parser behind,
* moves the protocol off fd 1 (a library that prints cannot corrupt the frames),
* imports the parsers, then caps its address space at what it uses now plus
  ``--memory-mb`` (``RLIMIT_AS``): a parser that balloons fails to allocate and the
  worker dies or reports ``READ/MEMORY``, never the run.

Each job runs the reader's own ``extract`` on the bytes the run hashed (or, for a large
file, on bytes it reads and checks against the hash itself), collects every piece,
and only then answers: ``STATUS`` first, so the run's time limit covers the parse and
not the time the run takes to read the answer. ``SIGALRM`` at the time limit plus a
grace period ends a worker whose run is gone or stuck.

``FUNCPIPE_TEST_PARSER_FAULT`` (tests and ``leak-check`` only) makes the worker
misbehave on files whose path matches a glob: ``hang:GLOB`` sleeps forever,
``balloon:GLOB`` allocates until the memory limit, ``crash:GLOB`` dies of SIGSEGV.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fnmatch
import math
import os
import resource
import signal
import sys
import time
from typing import Any

from ..policies.ledger import ResourceLedger
from ..result import Err
from ..walk import SourceFile
from . import wire
from .base import RawFile
from .isolated import FAULT_ENV, PARSERS

MAX_JOB_FRAME = 1 << 30
_PR_SET_PDEATHSIG = 1
_ALARM_GRACE_S = 5


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the run died before the request took effect
        os._exit(0)


def _preload() -> None:
    """Import the parsing libraries now, so their memory is not counted against a job."""
    for module in ("pypdfium2", "lxml.etree"):
        with contextlib.suppress(ImportError):
            __import__(module)


def _vm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(memory_mb: int) -> int:
    """Cap the address space at today's plus ``memory_mb``; returns today's, in MiB."""
    try:
        base = _vm_bytes()
    except OSError:
        base = 0
    limit = base + (memory_mb << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return base >> 20


def _fault(path: str) -> str:
    spec = os.environ.get(FAULT_ENV, "")
    kind, _, pattern = spec.partition(":")
    if kind and fnmatch.fnmatchcase(path, pattern or "*"):
        return kind
    return ""


def _misbehave(kind: str) -> None:
    if kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "balloon":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    elif kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)


def _job(header: dict[str, Any], data: bytes) -> list[bytes]:
    """Parse one file; the frames of the answer (STATUS, then a PIECE per piece)."""
    src = SourceFile(**header["source"])
    _misbehave(_fault(src.path))
    reader = PARSERS[header["reader"]]
    inline = header["inline"]
    raw = RawFile(src, header["file_hash"], header["size"], data[:8192], data if inline else None,
                  reader)  # fmt: skip
    got = reader.extract(raw, ResourceLedger())
    if isinstance(got, Err):
        e = got.error
        status = {"ok": False, "code": e.code, "msg": e.msg, "cause": e.cause, "ctx": e.ctx}
        return [wire.encode_json(wire.STATUS, status)]
    ex = got.value
    pieces = [wire.encode_json(wire.PIECE, [p.text, p.section, p.page]) for p in ex.pieces]
    doc = ex.document
    status = {"ok": True, "title": doc.title, "encoding": doc.encoding, "pieces": len(pieces)}
    return [wire.encode_json(wire.STATUS, status), *pieces]


def _serve(inp: int, out: int, memory_mb: int) -> None:
    while True:
        frame = wire.read_frame(inp, MAX_JOB_FRAME)
        if frame is None:
            return  # the run closed our stdin: done
        kind, payload = frame
        if kind != wire.JOB:
            raise wire.WireError(f"expected a job, got frame kind {kind}")
        header = wire.decode_json(payload)
        data_frame = wire.read_frame(inp, MAX_JOB_FRAME)
        if data_frame is None:
            return
        signal.alarm(math.ceil(float(header["timeout_s"])) + _ALARM_GRACE_S)
        retire = False
        try:
            frames = _job(header, data_frame[1])
        except MemoryError:
            msg = f"the parser ran out of memory (limit {memory_mb} MiB, parse_memory_mb)"
            frames, retire = [_failure("READ/MEMORY", msg)], True
        except Exception as exc:  # a parser bug is one file's failure, not the worker's end
            msg = f"the parser failed: {type(exc).__name__}: {exc}"
            frames = [_failure("READ/PARSER", msg[:500])]
        signal.alarm(0)
        for f in frames:
            wire.write_all(out, f)
        wire.write_all(out, wire.encode_json(wire.END, {"retire": retire}))
        if retire:
            return  # the heap may be fragmented past use: the run starts a fresh worker


def _failure(code: str, msg: str) -> bytes:
    return wire.encode_json(wire.STATUS, {"ok": False, "code": code, "msg": msg})


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(prog="funcpipe-parser-worker")
    args.add_argument("--memory-mb", type=int, required=True)
    args.add_argument("--parent", type=int, required=True)
    opts = args.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(opts.parent)
    # A parser that crashes on a hostile file must not write the file's data to disk.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _preload()
    base_mb = _limit_memory(opts.memory_mb)
    wire.write_all(out, wire.encode_json(wire.HELLO, {"pid": os.getpid(), "base_mb": base_mb}))
    _serve(0, out, opts.memory_mb)
    # Every answer is written (unbuffered) and nothing else is held: skip the
    # interpreter's teardown, so a run's end does not wait for it.
    os._exit(0)


if __name__ == "__main__":
    main()
