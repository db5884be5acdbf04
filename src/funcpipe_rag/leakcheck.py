"""``funcpipe leak-check``: run the real pipeline under faults and prove nothing leaks.

Each scenario runs the real ingest — in this process through the library (consumer
and producer exceptions, an early break), or as the real CLI in a subprocess (signals,
a closed pipe, server faults, which use a ``funcpipe serve`` subprocess with fault
flags) — and then reads the run's own account: the ledger's open count by kind and the
operating system's file descriptors, sockets and threads before and after.

A scenario also checks that its fault really fired (the server counted the stall, the
process really died of the signal, the pipe really closed). One that did not is
"not exercised", never "clean": a check that cannot fail proves nothing.

The two parser scenarios run on a tree of their own (a few PDFs, whatever PATH is
given) with parser workers made to hang, and also check from outside the run, in
``/proc``, that none of its worker processes outlived it (:mod:`.leakfaults`).

The module is one list of scenarios and their runners; it is longer than 500 lines
because each runner is spelled out, and splitting them would scatter one table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .config import RunSettings, resolve_settings
from .errors import FuncpipeError
from .index import IndexOptions, discard_index, is_postgres
from .ingest import IngestRequest, ingest
from .leakfaults import children, is_worker, kill_leftovers, write_parser_tree
from .readers.isolated import FAULT_ENV
from .summary import RunSummary

SCENARIOS: tuple[str, ...] = (
    "normal",
    "consumer-exception",
    "producer-exception",
    "breaker-trip",
    "early-break",
    "timeout",
    "server-crash",
    "dropped-connection",
    "sigint",
    "sigterm",
    "broken-pipe",
    "parser-hang",
    "parser-sigint",
)

_CLI = (sys.executable, "-m", "funcpipe_rag.cli")
_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """How one scenario ended and what it left behind."""

    name: str
    injected: str
    ended: str
    exercised: bool
    leaked: bool
    open_by_kind: Mapping[str, int] = field(default_factory=dict)
    os_delta: Mapping[str, int] = field(default_factory=dict)
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.leaked:
            return "LEAK"
        return "clean" if self.exercised else "not exercised"

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "injected": self.injected,
            "ended": self.ended,
            "exercised": self.exercised,
            "leaked": self.leaked,
            "verdict": self.verdict,
            "open_by_kind": dict(self.open_by_kind),
            "os_delta": dict(self.os_delta),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What to check: a tree (``None`` = the built-in corpus) and embedder settings.

    >>> Target()                                                  # built-in corpus, hash
    >>> Target(path=Path("docs"))
    >>> Target(path=Path("docs"), embedder={"embedder": "tei", "url": "http://127.0.0.1:8080"})
    >>> Target(index="postgresql://funcpipe@db.internal/scratch")   # the PostgreSQL backend

    ``index``: a PostgreSQL database to run the scenarios against; each scenario writes a
    throwaway collection of its own there and drops it afterwards. Without it every
    scenario writes a temporary SQLite file.
    """

    path: Path | None = None
    embedder: Mapping[str, str] = field(default_factory=dict)
    index: str = ""


def leak_exit_code(results: list[ScenarioResult]) -> int:
    """4 if any scenario leaked, 1 if any was not exercised, else 0."""
    if any(r.leaked for r in results):
        return 4
    return 0 if all(r.exercised for r in results) else 1


# -- the built-in corpus -----------------------------------------------------------------

_WORDS = (
    "stream",
    "chunk",
    "index",
    "vector",
    "breaker",
    "socket",
    "retry",
    "commit",
    "ledger",
    "closing",
    "pipeline",
    "server",
    "window",
    "garden",
    "recipe",
    "harbour",
    "lantern",
    "orchard",
    "signal",
    "thread",
    "buffer",
    "cursor",
    "archive",
)


def write_builtin_corpus(root: Path, files: int = 24, paragraphs: int = 12) -> Path:
    """A deterministic tree of prose, several hundred chunks, in nested folders."""
    for i in range(files):
        folder = root / f"part{i % 4}" / f"sec{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        paras = []
        for p in range(paragraphs):
            words = [_WORDS[(i * 7 + p * 5 + w * 3) % len(_WORDS)] for w in range(60)]
            sentences = [" ".join(words[s : s + 12]).capitalize() + "." for s in range(0, 60, 12)]
            paras.append(f"Note {i}.{p}. " + " ".join(sentences))
        (folder / f"doc{i:02}.md").write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return root


# -- helpers -------------------------------------------------------------------------------


def _flags(embedder: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key in ("embedder", "url", "model"):
        if embedder.get(key):
            out += [f"--{key}", embedder[key]]
    return out


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}
    env.update(extra)
    env.setdefault("NO_COLOR", "1")
    return env


def _result_from_report(
    name: str,
    injected: str,
    ended: str,
    exercised: bool,
    report: Mapping[str, Any] | None,
    detail: str = "",
) -> ScenarioResult:
    if report is None:  # no account at all is never clean
        return ScenarioResult(
            name, injected, ended, exercised, True, detail=detail or "no report written"
        )
    res = report["resources"]
    os_ = res["os"]
    return ScenarioResult(
        name,
        injected,
        ended,
        exercised,
        bool(res["leak"]),
        {k: c["open"] for k, c in res["by_kind"].items() if c["open"]},
        {
            k: os_[f"{k}_after"] - os_[f"{k}_before"]
            for k in ("fds", "sockets", "threads", "children")
        },
        detail,
    )


def _result_from_summary(
    name: str, injected: str, exercised: bool, summary: RunSummary, detail: str = ""
) -> ScenarioResult:
    detail = detail or summary.reason
    return _result_from_report(
        name, injected, f"status {summary.status}", exercised, summary.to_jsonable(), detail
    )


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc


class LocalServer:
    """A ``funcpipe serve`` subprocess with fault flags; killed or stopped at exit."""

    def __init__(self, work: Path, *flags: str) -> None:
        port_file = work / f"port-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [*_CLI, "serve", "--port", "0", "--port-file", str(port_file), "--quiet", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
        )
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("funcpipe serve did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def stats(self) -> dict[str, Any]:
        with httpx.Client(timeout=5) as client:
            doc: dict[str, Any] = client.get(f"{self.url}/stats").json()
            return doc

    def wait_for_requests(self, n: int, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if self.stats()["embed_requests"] >= n:
                    return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _Context:
    tree: Path
    work: Path
    target: Target

    def _fresh_index(self) -> dict[str, str]:
        """A new, throwaway index: an SQLite file, or a collection of the database."""
        stamp = time.monotonic_ns()
        if not self.target.index:
            return {"index": str(self.work / f"{stamp}.db")}
        collection = f"leak_check_{stamp}"
        self.collections.append(collection)
        return {"index": self.target.index, "collection": collection}

    def settings(self, **extra: Any) -> RunSettings:
        flags = {**dict(self.target.embedder), **extra, **self._fresh_index()}
        return resolve_settings(flags=flags, env={})

    def ingest_args(self, *extra: str, embedder: Mapping[str, str] | None = None) -> list[str]:
        report = self.work / f"report-{time.monotonic_ns()}.json"
        self.last_report = report
        return [
            *_CLI, "ingest", str(self.tree),
            *(arg for key, value in self._fresh_index().items() for arg in (f"--{key}", value)),
            "--report", "none", "--report-file", str(report),
            *_flags(self.target.embedder if embedder is None else embedder), *extra,
        ]  # fmt: skip

    def discard(self) -> None:
        """Drop the collections the scenarios wrote (a file index goes with the folder)."""
        while self.collections:
            name = self.collections.pop()
            # A server gone at this point leaves a scratch collection, nothing else.
            with contextlib.suppress(FuncpipeError):
                discard_index(self.target.index, IndexOptions(collection=name))

    last_report: Path = Path()
    collections: list[str] = field(default_factory=list)


def _run(ctx: _Context, args: list[str], **env: str) -> tuple[int, dict[str, Any] | None]:
    proc = subprocess.run(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env(**env),
        timeout=_WAIT_S * 2, check=False,
    )  # fmt: skip
    return proc.returncode, _read_report(ctx.last_report)


# -- scenarios -----------------------------------------------------------------------------


def _normal(ctx: _Context) -> ScenarioResult:
    code, report = _run(ctx, ctx.ingest_args())
    ran = report is not None and code in (0, 1)
    return _result_from_report("normal", "nothing", f"exit {code}", ran, report)


def _consumer_exception(ctx: _Context) -> ScenarioResult:
    fired: list[int] = []

    def consumer(_: object) -> None:
        fired.append(1)
        if len(fired) == 5:
            raise RuntimeError("injected consumer failure")

    summary = ingest(
        IngestRequest(roots=(str(ctx.tree),), settings=ctx.settings()), on_result=consumer
    )
    ok = "injected consumer failure" in summary.reason
    return _result_from_summary("consumer-exception", "consumer raises at item 5", ok, summary)


def _producer_exception(ctx: _Context) -> ScenarioResult:
    files = sorted(str(p) for p in ctx.tree.rglob("*") if p.is_file())
    raised: list[int] = []

    def paths() -> Iterator[str]:
        yield from files[:3]
        raised.append(1)
        raise RuntimeError("injected producer failure")

    summary = ingest(IngestRequest(path_list=paths(), settings=ctx.settings()))
    ok = bool(raised) and "injected producer failure" in summary.reason
    return _result_from_summary(
        "producer-exception", "path source raises after 3 files", ok, summary
    )


def _early_break(ctx: _Context) -> ScenarioResult:
    seen: list[int] = []

    def consumer(_: object) -> bool:
        seen.append(1)
        return len(seen) < 5

    summary = ingest(
        IngestRequest(roots=(str(ctx.tree),), settings=ctx.settings()), on_result=consumer
    )
    return _result_from_summary(
        "early-break", "consumer stops after 4 items", len(seen) == 5, summary
    )


def _served(ctx: _Context, server: LocalServer) -> dict[str, str]:
    return {"embedder": "openai", "url": server.url, "model": "leak-check"}


def _breaker_trip(ctx: _Context) -> ScenarioResult:
    with LocalServer(ctx.work, "--fail-rate", "1", "--status", "500") as server:
        args = ctx.ingest_args(
            "--min-samples", "5", "--batch-size", "4", embedder=_served(ctx, server)
        )
        code, report = _run(ctx, args, FUNCPIPE_MAX_ATTEMPTS="1")
    return _result_from_report(
        "breaker-trip", "HTTP 500 on every request", f"exit {code}", code == 3, report
    )


def _timeout(ctx: _Context) -> ScenarioResult:
    with LocalServer(ctx.work, "--stall-rate", "1") as server:
        args = ctx.ingest_args("--min-samples", "1000", embedder=_served(ctx, server))
        code, report = _run(ctx, args, FUNCPIPE_TIMEOUT="0.5", FUNCPIPE_RETRY_BUDGET="1")
        stalls = server.stats()["faults"]["stall"]
    saw = report is not None and "EMBED/TIMEOUT" in report["errors"]["by_code"]
    return _result_from_report(
        "timeout", "server never answers", f"exit {code}", stalls > 0 and saw, report,
        f"server counted {stalls} stalled requests",
    )  # fmt: skip


def _server_crash(ctx: _Context) -> ScenarioResult:
    with LocalServer(ctx.work, "--latency-ms", "100") as server:
        # Fewer attempts and samples: after the kill every request is refused, and the
        # run only has to end, not to wait out the default retry budget.
        args = ctx.ingest_args(
            "--batch-size", "4", "--min-samples", "20", embedder=_served(ctx, server)
        )  # fmt: skip
        env = _child_env(FUNCPIPE_MAX_ATTEMPTS="2")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        started = server.wait_for_requests(2)
        mid_run = started and proc.poll() is None
        server.kill()
        code = proc.wait(timeout=_WAIT_S * 2)
    report = _read_report(ctx.last_report)
    saw = report is not None and any(
        c in report["errors"]["by_code"] for c in ("EMBED/CONNECT", "EMBED/DROPPED")
    )
    return _result_from_report(
        "server-crash",
        "server SIGKILLed mid-run",
        f"exit {code}",
        mid_run and saw,
        report,
    )


def _dropped(ctx: _Context) -> ScenarioResult:
    with LocalServer(ctx.work, "--drop-rate", "0.2", "--seed", "1") as server:
        args = ctx.ingest_args("--batch-size", "8", embedder=_served(ctx, server))
        code, report = _run(ctx, args)
        drops = server.stats()["faults"]["drop"]
    return _result_from_report(
        "dropped-connection", "server drops 20% of connections", f"exit {code}",
        drops > 0, report, f"server dropped {drops} connections",
    )  # fmt: skip


def _signal(ctx: _Context, name: str, signum: int) -> ScenarioResult:
    with LocalServer(ctx.work, "--latency-ms", "150") as server:
        args = ctx.ingest_args(
            "--batch-size", "4", "--concurrency", "2", embedder=_served(ctx, server)
        )
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env()
        )
        started = server.wait_for_requests(2)
        mid_run = started and proc.poll() is None
        if mid_run:
            proc.send_signal(signum)
        code = proc.wait(timeout=_WAIT_S * 2)
    report = _read_report(ctx.last_report)
    handled = (
        mid_run
        and code == 128 + signum
        and report is not None
        and report["status"] == "interrupted"
    )
    return _result_from_report(
        name, f"{signal.Signals(signum).name} mid-run",
        f"exit {code}",
        handled, report,
    )  # fmt: skip


def _broken_pipe(ctx: _Context) -> ScenarioResult:
    args = ctx.ingest_args("--jsonl", "--no-index")
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_child_env()
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, like `| head -n 1`
    code = proc.wait(timeout=_WAIT_S * 2)
    report = _read_report(ctx.last_report)
    closed = (
        bool(first) and code == 141 and report is not None and report["reason"] == "stdout closed"
    )
    return _result_from_report(
        "broken-pipe", "stdout closed after one line", f"exit {code}", closed, report
    )


def _parser_hang(ctx: _Context) -> ScenarioResult:
    tree = write_parser_tree(ctx.work / "parser-hang")
    args = ctx.ingest_args("--parse-timeout", "1")
    args[args.index(str(ctx.tree))] = str(tree)
    code, report = _run(ctx, args, **{FAULT_ENV: "hang:*/stuck-*.pdf"})
    timeouts = report["errors"]["by_code"].get("READ/TIMEOUT", 0) if report else 0
    files = len(list(tree.iterdir()))
    went_on = report is not None and report["files"]["seen"] == files
    return _result_from_report(
        "parser-hang", "parsers hang on 3 of 9 files (1 s limit)", f"exit {code}",
        timeouts == 3 and went_on, report,
        f"{timeouts} READ/TIMEOUT; the run read {report['files']['seen'] if report else 0} "
        f"of {files} files",
    )  # fmt: skip


def _parser_sigint(ctx: _Context) -> ScenarioResult:
    tree = write_parser_tree(ctx.work / "parser-sigint")
    args = ctx.ingest_args()
    args[args.index(str(ctx.tree))] = str(tree)
    env = _child_env(**{FAULT_ENV: "hang:*.pdf"})
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers: list[int] = []
    deadline = time.monotonic() + _WAIT_S
    while proc.poll() is None and time.monotonic() < deadline and len(workers) < 2:
        workers = [p for p in children(proc.pid) if is_worker(p)]
        time.sleep(0.05)
    busy = len(workers) >= 2 and proc.poll() is None
    if busy:
        time.sleep(0.3)  # let them take their files: every PDF hangs
        proc.send_signal(signal.SIGINT)
    else:
        proc.kill()
    code = proc.wait(timeout=_WAIT_S * 2)
    left = kill_leftovers(workers)
    report = _read_report(ctx.last_report)
    handled = busy and code == 130 and report is not None and report["status"] == "interrupted"
    result = _result_from_report(
        "parser-sigint", "SIGINT while 2 parsers are busy", f"exit {code}", handled, report,
        f"worker pids {workers}: {len(left)} still alive after the run",
    )  # fmt: skip
    if left:  # a process outlived the run: a leak, whatever the run itself said
        result = dataclasses.replace(result, leaked=True)
    return result


_RUNNERS: dict[str, Callable[[_Context], ScenarioResult]] = {
    "normal": _normal,
    "consumer-exception": _consumer_exception,
    "producer-exception": _producer_exception,
    "breaker-trip": _breaker_trip,
    "early-break": _early_break,
    "timeout": _timeout,
    "server-crash": _server_crash,
    "dropped-connection": _dropped,
    "sigint": lambda ctx: _signal(ctx, "sigint", signal.SIGINT),
    "sigterm": lambda ctx: _signal(ctx, "sigterm", signal.SIGTERM),
    "broken-pipe": _broken_pipe,
    "parser-hang": _parser_hang,
    "parser-sigint": _parser_sigint,
}


def run_leak_check(
    target: Target,
    scenarios: tuple[str, ...] = SCENARIOS,
    *,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run ``scenarios`` against ``target``; an unknown name raises ``ConfigError``."""
    from .errors import ConfigError

    unknown = [s for s in scenarios if s not in _RUNNERS]
    if unknown:
        raise ConfigError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if target.path is not None and not target.path.exists():
        raise ConfigError(f"no such path: {target.path}")
    if target.index and not is_postgres(target.index):
        raise ConfigError(
            "--index takes a postgresql:// database (without it each scenario writes a "
            "temporary SQLite file)"
        )
    if target.embedder:
        resolve_settings(flags=dict(target.embedder), env={})  # validate now, not per scenario
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="funcpipe-leak-check-") as tmp:
        work = Path(tmp)
        tree = target.path if target.path is not None else write_builtin_corpus(work / "corpus")
        ctx = _Context(tree=tree, work=work, target=target)
        for name in scenarios:
            try:
                result = _RUNNERS[name](ctx)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                result = ScenarioResult(
                    name, "-", f"{type(exc).__name__}", False, False, detail=str(exc)
                )
            finally:
                ctx.discard()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
