"""Everything the CLI draws on stderr. The only module that imports Rich, lazily.

Progress is drawn only on a terminal; ``NO_COLOR`` is honoured by Rich itself.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..leakcheck import ScenarioResult
    from ..reconcile import VerifyReport
    from ..search import Hit
    from ..summary import RunStats, RunSummary


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=False)


def error_line(message: str) -> None:
    """One clear line on stderr, no traceback."""
    from rich.markup import escape

    console = stderr_console()
    # soft_wrap: one line stays one line, whatever the terminal width (scripts grep it).
    console.print(f"[bold red]funcpipe:[/] {escape(message)}", soft_wrap=True)


def note_line(message: str) -> None:
    """One informational line on stderr."""
    stderr_console().print(message, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def live_progress(enabled: bool) -> Iterator[Any]:
    """Yield a ``RunStats -> None`` callback that redraws a status line, or a no-op."""
    console = stderr_console()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("starting")

    def update(s: RunStats) -> None:
        progress.update(
            task,
            description=(
                f"files {s.files_seen} (unchanged {s.files_unchanged}, failed {s.files_failed})"
                f" · chunks {s.chunks_seen}: embedded {s.chunks_embedded}, reused"
                f" {s.chunks_reused}, stored {s.chunks_stored}, failed {s.chunks_failed}"
            ),
        )

    with progress:
        yield update


def print_summary_json(summary: RunSummary) -> None:
    sys.stderr.write(json.dumps(summary.to_jsonable(), indent=2) + "\n")


def print_report(summary: RunSummary) -> None:
    """The leak report table, then the outcome, errors, skips and a breaker trip."""
    from rich.table import Table

    console = stderr_console()
    doc = summary.to_jsonable()
    res = doc["resources"]
    table = Table(title="Resources (leak report)", title_justify="left")
    table.add_column("kind")
    table.add_column("acquired", justify="right")
    table.add_column("released", justify="right")
    table.add_column("open", justify="right")
    for kind, c in res["by_kind"].items():
        style = "bold red" if c["open"] else ""
        table.add_row(kind, str(c["acquired"]), str(c["released"]), str(c["open"]), style=style)
    os_ = res["os"]
    for label, key in (
        ("OS file descriptors", "fds"),
        ("OS sockets", "sockets"),
        ("OS threads", "threads"),
    ):
        before, after = os_[f"{key}_before"], os_[f"{key}_after"]
        style = "bold red" if after > before else "dim"
        table.add_row(label, f"before {before}", f"after {after}", str(after - before), style=style)
    console.print(table)
    verdict = (
        "[bold red]LEAK DETECTED[/]" if res["leak"] else "[green]no leaks[/] (ledger and OS agree)"
    )
    console.print(f"{verdict}: open total {res['open_total']}")
    for failure in res["cleanup_failures"]:
        console.print(
            f"[red]cleanup failed[/]: {failure['kind']} {failure['label']}: {failure['error']}"
        )

    f, c = doc["files"], doc["chunks"]
    console.print(
        f"files: {f['seen']} seen, {f['ingested']} ingested, {f['unchanged']} unchanged, "
        f"{f['skipped']} skipped, {f['failed']} failed"
    )
    console.print(
        f"chunks: {c['seen']} seen, {c['embedded']} embedded, {c['reused']} reused, "
        f"{c['failed']} failed, {c['stored']} stored"
        + (f" in {summary.index_path}" if summary.index_path else "")
    )
    if doc["skipped"]["by_code"]:
        skipped = ", ".join(f"{k} {v}" for k, v in doc["skipped"]["by_code"].items())
        console.print(f"skipped: {skipped}")
    if doc["errors"]["by_code"]:
        errors = ", ".join(f"{k} {v}" for k, v in doc["errors"]["by_code"].items())
        console.print(f"[yellow]errors[/]: {errors}")
        for sample in doc["errors"]["samples"][:5]:
            console.print(
                f"  {sample['code']} {sample['path'] or ''}: {sample['msg']}", markup=False
            )
    if summary.breaker is not None:
        b = summary.breaker
        console.print(f"[bold red]circuit breaker tripped[/] ({b.code}): {b.reason}")
    status = doc["status"] + (f" ({doc['reason']})" if doc["reason"] else "")
    console.print(
        f"status: {status}; exit {doc['exit_code']}; {doc['timing']['wall_s']:.2f} s, "
        f"{doc['timing']['chunks_per_s']:.0f} chunks/s, peak RSS {doc['peak_rss_mb']} MB"
    )


def print_hits(hits: list[Hit], *, as_json: bool) -> None:
    """Search results on stdout: data, so scripts can read it."""
    if as_json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_jsonable(), ensure_ascii=False) + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not hits:
        console.print("no results")
    for rank, hit in enumerate(hits, 1):
        console.print(f"[bold]{rank}. {hit.score:.3f}[/]  {hit.path} [{hit.start}:{hit.end}]")
        snippet = " ".join(hit.text.split())
        console.print("   " + (snippet[:300] + ("…" if len(snippet) > 300 else "")), markup=False)


def scenario_line(result: ScenarioResult) -> None:
    """One line per finished scenario, so a long check shows progress."""
    console = stderr_console()
    console.print(f"  {result.name}: {result.verdict}", markup=False, highlight=False)


def print_leak_matrix(results: list[ScenarioResult]) -> None:
    """The leak-check matrix: one row per scenario, on stderr."""
    from rich.table import Table

    console = stderr_console()
    table = Table(title="funcpipe leak-check", title_justify="left")
    for column in (
        "scenario",
        "injected",
        "ended",
        "ledger open",
        "OS Δ fds/sockets/threads",
        "verdict",
    ):
        table.add_column(column)
    for r in results:
        still_open = ", ".join(f"{k} {v}" for k, v in r.open_by_kind.items()) or "0"
        delta = "/".join(str(r.os_delta.get(k, "?")) for k in ("fds", "sockets", "threads"))
        style = {"LEAK": "bold red", "not exercised": "yellow"}.get(r.verdict, "green")
        table.add_row(r.name, r.injected, r.ended, still_open, delta, f"[{style}]{r.verdict}[/]")
    console.print(table)
    for r in results:
        if r.detail:
            console.print(f"{r.name}: {r.detail}", markup=False)


def print_verify(report: VerifyReport) -> None:
    """What verify found, on stderr: counts, then one line per issue."""
    console = stderr_console()
    console.print(
        f"{report.index}: {report.documents} documents, {report.chunks} chunks, "
        f"{report.vectors} vectors",
        markup=False,
    )
    for finding in report.issues[:200]:
        console.print(f"  {finding.code} {finding.detail}", markup=False, soft_wrap=True)
    if len(report.issues) > 200:
        console.print(f"  ... and {len(report.issues) - 200} more", markup=False)
    verdict = (
        "[green]consistent[/]" if report.ok else f"[bold red]{len(report.issues)} mismatches[/]"
    )
    console.print(verdict)
