"""The parser pool: binary formats are parsed in worker processes with limits.

A hostile PDF or DOCX can make any parser loop for ever or inflate gigabytes. So the
readers of binary formats (:data:`~.isolated.PARSERS`) never run in the run's process:
:class:`ProcessParserPool` sends each file to one of a few worker processes
(:mod:`.worker`) and waits for the answer with a **time limit** per file
(``parse_timeout``); each worker's address space is capped at its idle size plus
``parse_memory_mb``. A worker that overruns the time is killed (``READ/TIMEOUT``); one
that runs out of memory dies or says so (``READ/MEMORY``); one that crashes is
``READ/CRASH``. The file fails, the worker is replaced on demand, the run goes on.

Design choices, and why:

* **Workers are fresh interpreters** (``subprocess`` = fork + exec), started together
  on the first binary file (their start-ups overlap) and kept for the run. Not
  ``fork`` alone: the run has threads (HTTP embedding workers, SQLite) whose locks a
  forked child would inherit held. Not ``multiprocessing``: its spawn and forkserver
  methods start a resource-tracker process that outlives the run, ``Pool`` adds helper
  threads, and neither can kill one task's worker and go on. Start-up costs an
  interpreter and the parsing libraries' imports (0.2-0.8 s), once per worker.
* **The bytes parsed are the bytes hashed**: a small file's in-memory buffer is sent
  down the pipe; for a large one the worker reads the file and checks the hash itself.
* **The answer comes after the parse**: a worker collects every piece (within its
  memory cap) and sends its status first, so the time limit covers parsing, never the
  time the run takes to read the answer; and a file that fails half-way stores nothing.
* **No threads**: the run waits on the workers' pipes with ``poll``; nothing of the
  pool outlives :meth:`close`, which kills busy workers, ends idle ones, reaps every
  process and closes every pipe. Each live worker is one ``parser_process`` in the
  ledger. Workers ignore SIGINT (the run stops them) and die with the run (Linux
  ``PR_SET_PDEATHSIG``) if it is killed outright.

The orchestrators know only the :class:`ParserPool` protocol and :func:`open_parser_pool`.
"""

from __future__ import annotations

import enum
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError, ResourceClosedError
from ..policies.ledger import Handle, ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from . import wire
from .base import Document, DocumentReader, Extraction, RawFile, TextPiece, reader_id
from .isolated import FAULT_ENV, PARSERS

_WORKER_ENV = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TMPDIR", "VIRTUAL_ENV"})
_READ_BLOCK = 1 << 16  # a pipe holds 64 KiB: a larger read only costs a larger buffer
_STOP_WAIT_S = 2.0
_MAX_MSG = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseLimits:
    """What one binary file's parse may cost, and how many workers parse at once.

    >>> ParseLimits()                                   # 60 s, 1024 MiB, 2 workers
    >>> ParseLimits(timeout_s=5, memory_mb=256)
    >>> ParseLimits(workers=1)
    """

    timeout_s: float = 60.0
    memory_mb: int = 1024
    workers: int = 2
    start_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.timeout_s > 0 or not self.start_timeout_s > 0:
            raise ConfigError("parse time limits must be > 0 seconds")
        if self.memory_mb < 16:
            raise ConfigError(f"parse_memory_mb must be at least 16, got {self.memory_mb}")
        if self.workers < 1:
            raise ConfigError(f"a parser pool needs at least 1 worker, got {self.workers}")


class ParseTicket:
    """A file handed to the pool; :meth:`ParserPool.result` gives its outcome."""

    __slots__ = ("outcome", "raw")

    def __init__(self, raw: RawFile) -> None:
        self.raw = raw
        self.outcome: Result[Extraction, ErrInfo] | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None


class ParserPool(Protocol):
    """Parses the files of some readers out of process (see the module docstring)."""

    @property
    def capacity(self) -> int:
        """How many files may be parsing at once."""
        ...

    def takes(self, reader: DocumentReader) -> bool: ...

    def submit(self, raw: RawFile) -> ParseTicket:
        """Start parsing ``raw`` (a worker is started if none is free)."""
        ...

    def result(self, ticket: ParseTicket) -> Result[Extraction, ErrInfo]:
        """Wait, within the time limit, for the outcome of ``ticket``."""
        ...

    def close(self) -> None: ...


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class _Job:
    ticket: ParseTicket
    deadline: float
    status: dict[str, Any] | None = None
    text_bytes: int = 0
    pieces: list[TextPiece] | None = None


class _Worker:
    """One worker process, its two pipes and its ledger entry."""

    def __init__(self, proc: subprocess.Popen[bytes], handle: Handle, max_frame: int) -> None:
        self.proc = proc
        self.handle = handle
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.inp = proc.stdin.fileno()
        self.out = proc.stdout.fileno()
        self.frames = wire.FrameBuffer(max_frame)
        self.ready = False
        # Invariant: job is the file this worker is parsing or answering, else None.
        self.job: _Job | None = None


class ProcessParserPool:
    """Parser workers as processes: lazily started, limited, replaced, reaped.

    Use it as a context manager or call :meth:`close` (idempotent). Not thread-safe: one
    run's pipeline drives it.
    """

    def __init__(
        self,
        limits: ParseLimits,
        ledger: ResourceLedger,
        readers: Iterable[str] = tuple(PARSERS),
    ) -> None:
        self.limits = limits
        self._ledger = ledger
        self._names = frozenset(readers)
        self._workers: list[_Worker] = []
        self._state = _State.OPEN
        self._budget = limits.memory_mb << 20
        self.started = 0  # workers started so far (a replaced worker counts again)

    # -- the protocol ------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self.limits.workers

    def takes(self, reader: DocumentReader) -> bool:
        return reader.name in self._names

    def submit(self, raw: RawFile) -> ParseTicket:
        if self._state is _State.CLOSED:
            raise ResourceClosedError("the parser pool is closed")
        ticket = ParseTicket(raw)
        for _ in range(2):  # a worker found dead when given the file is replaced once
            worker = self._free_worker(ticket)
            if worker is None:
                return ticket  # no worker could start: the outcome says why
            # Busy before the first byte is sent: a send cut short (Ctrl-C) leaves a
            # worker that close() kills, never one mistaken for idle.
            worker.job = _Job(ticket, time.monotonic() + self.limits.timeout_s)
            try:
                self._send(worker, raw)
            except OSError:
                worker.job = None
                self._reap(worker, kill=True)
                continue
            return ticket
        ticket.outcome = self._fail(raw, "READ/CRASH", "the parser worker died before parsing")
        return ticket

    def result(self, ticket: ParseTicket) -> Result[Extraction, ErrInfo]:
        while ticket.outcome is None:
            if self._state is _State.CLOSED:
                raise ResourceClosedError("the parser pool is closed")
            if not self._pump():  # cannot happen: every job's end sets its outcome
                ticket.outcome = self._fail(ticket.raw, "READ/PARSER", "the parse was lost")
        return ticket.outcome

    def close(self) -> None:
        """Kill busy workers, end idle ones, reap all and close their pipes.

        Every worker is told first (SIGKILL, or end of input) and waited for after, so
        they exit together rather than one after another.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        workers = list(self._workers)
        for worker in workers:
            self._stop(worker, kill=worker.job is not None or not worker.ready)
        failure: BaseException | None = None
        for worker in workers:
            try:
                self._reap(worker, kill=False)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> ProcessParserPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers -----------------------------------------------------------------------

    def _free_worker(self, ticket: ParseTicket) -> _Worker | None:
        while True:
            for w in self._workers:
                if w.job is None and w.ready:
                    return w
            if len(self._workers) < self.capacity:
                # Every missing worker is started at once, so their start-ups overlap.
                launched = [self._launch() for _ in range(self.capacity - len(self._workers))]
                ready = [w for w in map(self._await_ready, launched) if w is not None]
                if ready:
                    return ready[0]
                if not self._workers:
                    ticket.outcome = self._fail(
                        ticket.raw, "READ/PARSER", "no parser worker could start"
                    )
                    return None
            self._pump()  # all busy: wait for one to finish

    def _launch(self) -> _Worker | None:
        """Start one worker process (not waiting for it); ``None`` if it cannot start."""
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = _worker_env()
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        cmd = [
            sys.executable, "-m", "funcpipe_rag.readers.worker",
            "--memory-mb", str(self.limits.memory_mb), "--parent", str(os.getpid()),
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
                close_fds=True,
                env=env,
                # Its own process group: a Ctrl-C at the terminal reaches the run only,
                # which then stops its workers in order.
                process_group=0,
            )
        except OSError:
            return None
        handle = self._ledger.acquire("parser_process", f"pid {proc.pid}")
        worker = _Worker(proc, handle, self._budget + (1 << 16))
        self._workers.append(worker)
        self.started += 1
        return worker

    def _await_ready(self, worker: _Worker | None) -> _Worker | None:
        """Wait for ``worker``'s hello; a worker that dies or stays silent is reaped."""
        if worker is None:
            return None
        deadline = time.monotonic() + self.limits.start_timeout_s
        while not worker.ready:
            left = deadline - time.monotonic()
            frames = self._read(worker, left) if left > 0 else None
            if frames is None:
                self._reap(worker, kill=True)
                return None
            worker.ready = any(kind == wire.HELLO for kind, _ in frames)
        return worker

    def _send(self, worker: _Worker, raw: RawFile) -> None:
        src = raw.source
        header = {
            "reader": raw.reader.name,
            "source": {
                "path": src.path, "fs_path": src.fs_path, "doc_id": src.doc_id,
                "size": src.size, "mtime_ns": src.mtime_ns, "abs_path": src.abs_path,
            },
            "file_hash": raw.file_hash,
            "size": raw.size,
            "inline": raw.data is not None,
            "timeout_s": self.limits.timeout_s,
        }  # fmt: skip
        wire.write_all(worker.inp, wire.encode_json(wire.JOB, header))
        wire.write_all(worker.inp, wire.encode(wire.DATA, raw.data or b""))

    def _read(self, worker: _Worker, timeout_s: float) -> list[tuple[int, bytes]] | None:
        """Frames that arrive within ``timeout_s`` ([] if none); ``None`` at end of file."""
        ready, _, _ = select.select([worker.out], [], [], max(timeout_s, 0))
        if not ready:
            return []
        block = os.read(worker.out, _READ_BLOCK)
        if not block:
            return None
        try:
            return worker.frames.feed(block)
        except wire.WireError:
            return None

    def _stop(self, worker: _Worker, *, kill: bool) -> None:
        """Tell ``worker`` to go: SIGKILL, or end of input (an idle worker then exits)."""
        proc = worker.proc
        if kill and proc.returncode is None:
            proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()

    def _reap(self, worker: _Worker, *, kill: bool) -> int | None:
        """Stop ``worker`` (kill, or end of input), wait for it, close its pipes."""
        proc = worker.proc
        try:
            self._stop(worker, kill=kill)
            try:
                proc.wait(timeout=_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            if worker in self._workers:
                self._workers.remove(worker)
            self._ledger.release(worker.handle)
            job, worker.job = worker.job, None
            if job is not None and job.ticket.outcome is None:
                job.ticket.outcome = self._fail(
                    job.ticket.raw, "READ/PARSER", "the run stopped while this file was parsed"
                )
        return proc.returncode

    # -- waiting -------------------------------------------------------------------------

    def _pump(self) -> bool:
        """Wait for any busy worker to say something (or a time limit), then act on it;
        False if no worker was busy."""
        busy = [w for w in self._workers if w.job is not None]
        if not busy:
            return False
        now = time.monotonic()
        wait = min(w.job.deadline for w in busy if w.job is not None) - now
        poller = select.poll()
        for w in busy:
            poller.register(w.out, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = dict(poller.poll(math.ceil(max(wait, 0) * 1000)))
        for w in busy:
            if w.out in events:
                self._drain(w)
        now = time.monotonic()
        for w in busy:
            job = w.job
            if job is not None and w in self._workers and now >= job.deadline:
                self._drain(w, timeout_s=0)  # an answer that arrived just in time counts
                if w.job is job:
                    self._time_out(w, job)
        return True

    def _drain(self, worker: _Worker, timeout_s: float = 0) -> None:
        frames = self._read(worker, timeout_s)
        if frames is None:
            self._died(worker)
            return
        for kind, payload in frames:
            if worker not in self._workers:
                return
            self._on_frame(worker, kind, payload)

    def _on_frame(self, worker: _Worker, kind: int, payload: bytes) -> None:
        job = worker.job
        if job is None:
            return self._broken(worker, "spoke while idle")
        raw = job.ticket.raw
        try:
            if kind == wire.STATUS:
                job.status = _as_dict(wire.decode_json(payload))
                job.pieces = []
                # The parse is done: what is left is the transfer, bounded all the same.
                job.deadline = time.monotonic() + self.limits.timeout_s
            elif kind == wire.PIECE and job.pieces is not None:
                job.text_bytes += len(payload)
                if job.text_bytes > self._budget:
                    self._reap(worker, kill=True)
                    job.ticket.outcome = self._fail(
                        raw, "READ/MEMORY", f"extracted text over {self.limits.memory_mb} MiB "
                        "(parse_memory_mb)",
                    )  # fmt: skip
                    return None
                job.pieces.append(_piece(wire.decode_json(payload)))
            elif kind == wire.END and job.status is not None:
                worker.job = None
                job.ticket.outcome = self._outcome(raw, job)
                if _as_dict(wire.decode_json(payload)).get("retire"):
                    self._reap(worker, kill=False)
            else:
                return self._broken(worker, f"sent frame kind {kind} out of turn")
        except (wire.WireError, ValueError, TypeError) as exc:
            return self._broken(worker, str(exc))
        return None

    def _outcome(self, raw: RawFile, job: _Job) -> Result[Extraction, ErrInfo]:
        status = job.status or {}
        if not status.get("ok"):
            # The worker is not trusted: only a READ/ or SKIP/ code, a bounded message,
            # and the file's own doc_id (a failure keeps the file's old chunks; a skip
            # only when the reader said so) are taken from it.
            code = str(status.get("code", ""))
            if not code.startswith(("READ/", "SKIP/")):
                code = "READ/PARSER"
            ctx = status.get("ctx")
            keep = not code.startswith("SKIP/") or (isinstance(ctx, dict) and "doc_id" in ctx)
            cause = status.get("cause")
            return Err(
                ErrInfo(
                    code=code,
                    msg=str(status.get("msg", ""))[:_MAX_MSG],
                    stage="read",
                    path=raw.source.path,
                    cause=str(cause)[:_MAX_MSG] if cause else None,
                    ctx={"doc_id": raw.source.doc_id} if keep else {},
                )
            )
        doc = Document(
            raw.source,
            raw.file_hash,
            reader_id(raw.reader),
            encoding=str(status.get("encoding", "")),
            title=str(status.get("title", "")),
        )
        return Ok(Extraction(doc, iter(job.pieces or [])))

    # -- failures ----------------------------------------------------------------------

    def _fail(self, raw: RawFile, code: str, msg: str) -> Err[ErrInfo]:
        return Err(
            make_errinfo(code, msg, stage="read", path=raw.source.path, doc_id=raw.source.doc_id)
        )

    def _time_out(self, worker: _Worker, job: _Job) -> None:
        worker.job = None
        self._reap(worker, kill=True)
        job.ticket.outcome = self._fail(
            job.ticket.raw,
            "READ/TIMEOUT",
            f"parsing took longer than {self.limits.timeout_s:g} s (parse_timeout); "
            "the parser was stopped",
        )

    def _broken(self, worker: _Worker, why: str) -> None:
        job, worker.job = worker.job, None
        self._reap(worker, kill=True)
        if job is not None:
            job.ticket.outcome = self._fail(
                job.ticket.raw, "READ/PARSER", f"the parser worker broke the protocol: {why}"
            )

    def _died(self, worker: _Worker) -> None:
        """The worker closed its end mid-job: it crashed, or ran out of memory."""
        job, worker.job = worker.job, None
        code = self._reap(worker, kill=False)
        if job is None or job.ticket.outcome is not None:
            return
        raw = job.ticket.raw
        if code in (-signal.SIGABRT, -signal.SIGKILL):
            # PDFium and C++ allocators abort when an allocation fails under RLIMIT_AS;
            # the kernel's OOM killer sends SIGKILL.
            job.ticket.outcome = self._fail(
                raw,
                "READ/MEMORY",
                f"the parser ran out of memory (limit {self.limits.memory_mb} MiB, "
                "parse_memory_mb) and was stopped",
            )
        elif code == -signal.SIGALRM:
            job.ticket.outcome = self._fail(
                raw, "READ/TIMEOUT", "the parser overran its time limit and stopped itself"
            )
        else:
            how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit {code}"
            job.ticket.outcome = self._fail(raw, "READ/CRASH", f"the parser crashed ({how})")


def _worker_env() -> dict[str, str]:
    """The environment a worker gets: what Python and the locale need, nothing else.

    A worker parses untrusted files; should a parser be subverted, it finds no API key
    (``FUNCPIPE_API_KEY``, ``OPENAI_API_KEY``) or other secret of the run's environment.
    """
    return {
        k: v
        for k, v in os.environ.items()
        if k in _WORKER_ENV or k.startswith(("LC_", "PYTHON")) or k == FAULT_ENV
    }


def _as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise wire.WireError("expected a JSON object")
    return value


def _piece(value: Any) -> TextPiece:
    if not (isinstance(value, list) and len(value) == 3):
        raise wire.WireError("a piece must be [text, section, page]")
    text, section, page = value
    if not isinstance(text, str) or not isinstance(section, str):
        raise wire.WireError("a piece's text and section must be strings")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool)):
        raise wire.WireError("a piece's page must be an integer")
    return TextPiece(text, section, page)


def open_parser_pool(limits: ParseLimits, ledger: ResourceLedger) -> ParserPool:
    """A parser pool for the binary readers; no process starts until a file needs one."""
    return ProcessParserPool(limits, ledger)


__all__ = [
    "ParseLimits",
    "ParseTicket",
    "ParserPool",
    "ProcessParserPool",
    "open_parser_pool",
]
