"""Run statistics and the ``funcpipe.run/1`` JSON summary.

:class:`RunStats` is the mutable tally a run keeps while it streams; :class:`RunSummary`
is the frozen, honest account of what happened, built once at the end, from which the
exit code follows (see :func:`exit_code_for`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .policies.breakers import BreakInfo
from .policies.ledger import LedgerSnapshot, OsSnapshot
from .policies.reports import ErrReportBuilder, report_to_jsonable
from .result import ErrInfo

SCHEMA = "funcpipe.run/1"

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_BREAKER = 3
EXIT_LEAK = 4
EXIT_SIGINT = 130
EXIT_SIGPIPE = 141
EXIT_SIGTERM = 143

# Skips that call for something the user can do (install an extra, OCR a scan): each
# file's line is kept (the first few), as errors' are, so the report can name it.
NOTABLE_SKIPS = frozenset({"SKIP/NEEDS_EXTRA", "SKIP/NO_TEXT"})
MAX_SKIP_SAMPLES = 20


@dataclass(slots=True)
class RunStats:
    """Counters a run updates as items flow; read them for progress at any time."""

    files_seen: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_pruned: int = 0
    chunks_seen: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_failed: int = 0
    chunks_stored: int = 0
    bytes_seen: int = 0  # of the files read so far (progress and its ETA)
    current: str = ""  # the file being read
    skipped_by_code: Counter[str] = field(default_factory=Counter)
    files_by_reader: Counter[str] = field(default_factory=Counter)  # files each reader took
    skip_samples: list[ErrInfo] = field(default_factory=list)
    errors: ErrReportBuilder = field(default_factory=ErrReportBuilder)

    def skip(self, err: ErrInfo) -> None:
        """Count a skipped file; keep the first few notable ones (see NOTABLE_SKIPS)."""
        self.files_skipped += 1
        self.skipped_by_code[err.code] += 1
        if err.code in NOTABLE_SKIPS and len(self.skip_samples) < MAX_SKIP_SAMPLES:
            self.skip_samples.append(err)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, what it stored and what it left open."""

    status: str  # ok | partial | breaker | interrupted | error
    exit_code: int
    stats: RunStats
    breaker: BreakInfo[Any] | None
    ledger: LedgerSnapshot
    os_before: OsSnapshot
    os_after: OsSnapshot
    wall_s: float
    peak_rss_mb: float
    index_path: str | None
    reason: str = ""

    @property
    def leaked(self) -> bool:
        return leak_detected(self.ledger, self.os_before, self.os_after)

    def to_jsonable(self) -> dict[str, Any]:
        s = self.stats
        report = report_to_jsonable(s.errors.build())
        return {
            "schema": SCHEMA,
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "index": self.index_path,
            "files": {
                "seen": s.files_seen,
                "ingested": s.files_ingested,
                "unchanged": s.files_unchanged,
                "skipped": s.files_skipped,
                "failed": s.files_failed,
                "pruned": s.files_pruned,
                "by_reader": dict(sorted(s.files_by_reader.items())),
            },
            "chunks": {
                "seen": s.chunks_seen,
                "embedded": s.chunks_embedded,
                "reused": s.chunks_reused,
                "failed": s.chunks_failed,
                "stored": s.chunks_stored,
            },
            "breaker": None if self.breaker is None else self.breaker.to_jsonable(),
            "errors": {
                "by_code": report["by_code"],
                "by_stage": report["by_stage"],
                "samples": report["samples"],
            },
            "skipped": {
                "by_code": dict(s.skipped_by_code.most_common()),
                "samples": [e.to_jsonable() for e in s.skip_samples],
            },
            "resources": {
                **self.ledger.to_jsonable(),
                "os": {
                    "fds_before": self.os_before.fds,
                    "fds_after": self.os_after.fds,
                    "sockets_before": self.os_before.sockets,
                    "sockets_after": self.os_after.sockets,
                    "threads_before": self.os_before.threads,
                    "threads_after": self.os_after.threads,
                    "children_before": self.os_before.children,
                    "children_after": self.os_after.children,
                },
                "leak": self.leaked,
            },
            "timing": {
                "wall_s": round(self.wall_s, 4),
                "chunks_per_s": round(s.chunks_stored / self.wall_s, 1) if self.wall_s > 0 else 0.0,
            },
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def leak_detected(ledger: LedgerSnapshot, before: OsSnapshot, after: OsSnapshot) -> bool:
    """A leak: the ledger holds an open resource, a cleanup failed, the OS counts more
    descriptors, sockets, threads or child processes after the run than before it, or a
    server counts more of this run's sessions after it than before."""
    if ledger.open_total > 0 or ledger.cleanup_failures:
        return True
    if any(c.leaked for c in ledger.remote.values()):
        return True
    return (
        after.fds > before.fds
        or after.sockets > before.sockets
        or after.threads > before.threads
        or after.children > before.children
    )


def exit_code_for(status: str, *, leaked: bool, signal_exit: int | None) -> int:
    """Signals keep their shell codes (130, 143, 141); else a leak (4) outranks a
    breaker trip (3), which outranks failed items or an unexpected error (1)."""
    if signal_exit is not None:
        return signal_exit
    if leaked:
        return EXIT_LEAK
    codes = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "breaker": EXIT_BREAKER, "error": EXIT_PARTIAL}
    return codes[status]


_CAUSES = {
    "EMBED/CONNECT": "cannot reach the embedding server",
    "EMBED/TIMEOUT": "the embedding server did not answer in time",
    "EMBED/DROPPED": "the embedding server dropped connections",
    "EMBED/DEADLINE": "the embedding server answers too slowly, cut off at the retry budget",
    "EMBED/TOO_BIG_ANSWER": "the embedding server answers more than it may (max_answer_mb)",
    "EMBED/REDIRECT": "the embedding server redirects (give the final URL as --url)",
    "EMBED/HTTP_404": "the embedding server has no such route (check --url)",
}


def headline(summary: RunSummary) -> str | None:
    """One line that says how a run that was not clean ended, or None when it was."""
    if summary.status == "ok" and not summary.leaked:
        return None
    s = summary.stats
    verb = "stored" if summary.index_path is not None else "written"
    kept = f"{s.chunks_stored} chunks {verb}" + (
        " and kept" if summary.status != "ok" and s.chunks_stored else ""
    )
    by_code = s.errors.build().by_code
    top = next(iter(by_code.items()), None)
    cause = ""
    if top is not None:
        code, n = top
        cause = f"{_CAUSES[code]} ({code} x{n})" if code in _CAUSES else f"{code} x{n}"
    if summary.leaked:
        return f"LEAK: {summary.ledger.open_total} resources left open; {kept}"
    if summary.status == "breaker" and summary.breaker is not None:
        return f"stopped by the circuit breaker: {summary.breaker.reason}; {cause}; {kept}"
    if summary.status == "interrupted":
        return f"interrupted ({summary.reason}); {kept}"
    if summary.status == "error":
        return f"stopped on an unexpected error: {summary.reason}; {kept}"
    failed = s.files_failed + s.chunks_failed
    return f"{failed} item{'s' if failed != 1 else ''} failed: {cause}; {kept}"
