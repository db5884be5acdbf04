"""Everything the CLI draws on stderr. The only module that imports Rich, lazily.

Progress is drawn only on a terminal; ``NO_COLOR`` is honoured by Rich itself.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..evaluation import EvalReport
    from ..index import Hit
    from ..leakcheck import ScenarioResult
    from ..reconcile import VerifyReport
    from ..summary import RunStats, RunSummary
    from ..walk import TreeSize


def stderr_console() -> Console:
    """Rich on stderr. Not on a terminal (a log, a pipe), lines are never wrapped."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, soft_wrap=True, width=10_000)
    return console


def error_line(message: str) -> None:
    """One clear line on stderr, no traceback."""
    from rich.markup import escape

    console = stderr_console()
    # soft_wrap: one line stays one line, whatever the terminal width (scripts grep it).
    console.print(f"[bold red]funcpipe:[/] {escape(message)}", soft_wrap=True)


def note_line(message: str) -> None:
    """One informational line on stderr, as it is (no markup, no emoji codes, no wrap).

    Written without Rich: a plain line needs none, and ``ingest --plan`` then never
    imports it.
    """
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02}:{rest % 60:02}"


class ProgressView:
    """Two lines that fit any width: the counts line, then the file being read.

    The counts line drops its least important parts (then shrinks the bar) rather than
    wrap or cut a number; the file name loses its head, never its tail.
    """

    def __init__(self, size: TreeSize | None) -> None:
        self.size = size
        self.stats: RunStats | None = None
        self._t0 = time.monotonic()

    def _parts(self, s: RunStats, elapsed: float) -> tuple[float | None, list[tuple[str, str]]]:
        size = self.size
        fraction = None
        files = f"{s.files_seen:,} files"
        if size is not None and size.entries:
            files = f"{s.files_seen:,}/{size.entries:,} files"
            fraction = min(1.0, s.bytes_seen / size.bytes) if size.bytes else None
        done = s.chunks_embedded + s.chunks_reused
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [
            (files, "bold"),
            (f"{done:,} chunks", ""),
            (f"{rate:,.0f}/s", "cyan"),
            (_clock(elapsed), "dim"),
        ]
        if fraction is not None and fraction > 0.01:
            eta = elapsed * (1 - fraction) / fraction
            parts.insert(2, (f"ETA {_clock(eta)}", "cyan"))
            parts.insert(1, (f"{fraction:4.0%}", ""))
        failed = s.files_failed + s.chunks_failed
        if failed:
            parts.insert(1, (f"{failed:,} failed", "bold red"))
        return fraction, parts

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        s = self.stats
        if s is None:
            return
        width = max(20, options.max_width)
        fraction, parts = self._parts(s, time.monotonic() - self._t0)
        # Drop from the end (least important) until the text and a 10-wide bar fit.
        while len(parts) > 1 and sum(len(t) + 1 for t, _ in parts) + 10 > width:
            parts.pop()
        line = Text(" ").join(Text(t, style=st) for t, st in parts)
        bar_width = width - line.cell_len - 1
        row = Table.grid(padding=(0, 1))
        if fraction is not None and bar_width >= 5:
            row.add_row(ProgressBar(total=1.0, completed=fraction, width=bar_width), line)
        else:
            row.add_row(line)
        yield row
        current = s.current
        if current:
            room = width - 2
            if len(current) > room:
                current = "…" + current[-(room - 1) :]
            yield Text("  " + current, style="dim", no_wrap=True, overflow="crop")


@contextlib.contextmanager
def live_progress(enabled: bool, size: TreeSize | None = None) -> Iterator[Any]:
    """Yield a ``RunStats -> None`` callback that redraws the progress, or None.

    Drawn only on a terminal. Redrawn by the callback itself (no refresh thread), so the
    run's count of threads before and after is not disturbed.
    """
    console = stderr_console()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.live import Live

    view = ProgressView(size)
    with Live(view, console=console, transient=True, auto_refresh=False) as live:

        def update(s: RunStats) -> None:
            view.stats = s
            live.refresh()

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
        ("OS child processes", "children"),
    ):
        before, after = os_[f"{key}_before"], os_[f"{key}_after"]
        style = "bold red" if after > before else "dim"
        table.add_row(label, f"before {before}", f"after {after}", str(after - before), style=style)
    labels = {"pg_sessions": "PostgreSQL sessions"}
    for name, count in res["remote"].items():
        before, after = count["before"], count["after"]
        style = "bold red" if before >= 0 and after > before else "dim"
        delta = str(after - before) if min(before, after) >= 0 else "?"
        table.add_row(
            labels.get(name, name), f"before {before}", f"after {after}", delta, style=style
        )
    console.print(table)
    witnesses = "ledger, OS and server agree" if res["remote"] else "ledger and OS agree"
    verdict = "[bold red]LEAK DETECTED[/]" if res["leak"] else f"[green]no leaks[/] ({witnesses})"
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
    if f["by_reader"]:
        console.print(
            "files by reader: " + ", ".join(f"{k} {v}" for k, v in f["by_reader"].items())
        )
    console.print(
        f"chunks: {c['seen']} seen, {c['embedded']} embedded, {c['reused']} reused, "
        f"{c['failed']} failed, "
        + (
            f"{c['stored']} stored in {summary.index_path}"
            if summary.index_path
            else f"{c['stored']} written (no index)"
        )
    )
    if doc["skipped"]["by_code"]:
        skipped = ", ".join(f"{k} {v}" for k, v in doc["skipped"]["by_code"].items())
        console.print(f"skipped: {skipped}")
        for sample in doc["skipped"]["samples"][:5]:
            console.print(
                f"  {sample['code']} {sample['path'] or ''}: {sample['msg']}", markup=False
            )
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


def _hit_lines(rank: int, hit: Hit, query: str) -> tuple[str, str, Any]:
    """The header, the ranking line and the passage of one hit, as plain text."""
    from ..passages import best_passage

    where = f"{hit.path} [{hit.start}:{hit.end}]"
    # A section path usually starts with the document's title heading: show it once.
    section_has_title = hit.section == hit.title or hit.section.startswith(hit.title + " > ")
    extra = [x for x in (hit.title, hit.section) if x]
    if hit.title and hit.section and section_has_title:
        extra = [hit.section]
    if hit.page is not None:
        extra.append(f"p. {hit.page}")
    header = f"{rank}. {hit.score:.3f}  {where}" + (f"  ({' · '.join(extra)})" if extra else "")
    why = ""
    if hit.mode == "hybrid":
        # A ranking that did not nominate the hit has no rank and no score: a dash.
        why = " · ".join(
            f"{c.mode} #{c.rank} {c.score:.3f}"
            if c.rank is not None and c.score is not None
            else f"{c.mode} -"
            for c in hit.contributions
        )
    return header, why, best_passage(hit.text, query)


def print_hits(hits: list[Hit], *, query: str, as_json: bool) -> None:
    """Search results on stdout (data, so scripts can read it).

    ``--json``: one ``funcpipe.hit/1`` object per line. On a terminal: each hit's
    best-matching passage with the query's words highlighted (``NO_COLOR`` leaves them
    bold, uncoloured). Piped: the same lines as plain text, one per line, never wrapped.
    """
    if as_json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_jsonable(), ensure_ascii=False) + "\n")
        return
    if not sys.stdout.isatty():
        if not hits:
            sys.stdout.write("no results\n")
        for rank, hit in enumerate(hits, 1):  # hit by hit: a closed pipe stops it early
            header, why, passage = _hit_lines(rank, hit, query)
            out = [header]
            if why:
                out.append(f"   {why}")
            dots = ("…" if passage.cut_before else "", "…" if passage.cut_after else "")
            out.append(f"   {dots[0]}{passage.text}{dots[1]}")
            if len(hit.paths) > 1:
                out.append(f"   also in: {', '.join(hit.paths[1:])}")
            sys.stdout.write("".join(line + "\n" for line in out))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    if not hits:
        console.print("no results")
    for rank, hit in enumerate(hits, 1):
        header, why, passage = _hit_lines(rank, hit, query)
        console.print(Text(header, style="bold"))
        if why:
            console.print(Text("   " + why, style="dim"))
        body = Text("   " + ("…" if passage.cut_before else ""))
        offset = len(body)
        body.append(passage.text)
        for start, end in passage.marks:
            body.stylize("bold yellow", offset + start, offset + end)
        if passage.cut_after:
            body.append("…")
        console.print(body)
        if len(hit.paths) > 1:
            console.print(Text(f"   also in: {', '.join(hit.paths[1:])}", style="dim"))


def print_eval(report: EvalReport) -> None:
    """``funcpipe eval``: one row per mode on stdout, then the questions each mode
    missed within 10 and labels that name no file of the index on stderr."""
    from rich.console import Console
    from rich.table import Table

    from ..evaluation import CUTOFFS, DEPTH, iter_misses

    table = Table(
        title=f"funcpipe eval: {report.queries} queries, {report.index}", title_justify="left"
    )
    table.add_column("mode")
    for column in (*(f"Hit@{c}" for c in CUTOFFS), "MRR", f"nDCG@{DEPTH}"):
        table.add_column(column, justify="right")
    for m in report.modes:
        table.add_row(m.mode, *(f"{x:.3f}" for x in (*m.hits_at, m.mrr, m.ndcg)))
    Console(highlight=False).print(table)
    console = stderr_console()
    for m in report.modes:
        missed = [s.id for s in iter_misses(report, m.mode)]
        if missed:
            console.print(f"{m.mode}: no answer in the first {DEPTH} for {', '.join(missed)}",
                          markup=False)  # fmt: skip
    if report.unknown_labels:
        console.print(
            f"labels naming no file of the index: {', '.join(report.unknown_labels)}",
            markup=False,
        )


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
        "OS Δ fds/sockets/threads/children",
        "verdict",
    ):
        table.add_column(column)
    for r in results:
        still_open = ", ".join(f"{k} {v}" for k, v in r.open_by_kind.items()) or "0"
        delta = "/".join(
            str(r.os_delta.get(k, "?")) for k in ("fds", "sockets", "threads", "children")
        )
        style = {"LEAK": "bold red", "not exercised": "yellow"}.get(r.verdict, "green")
        table.add_row(r.name, r.injected, r.ended, still_open, delta, f"[{style}]{r.verdict}[/]")
    console.print(table)
    for r in results:
        if r.detail:
            console.print(f"{r.name}: {r.detail}", markup=False)


def print_settings(rows: list[tuple[str, Any, str]]) -> None:
    """``funcpipe config``: one row per setting, on stdout (it is the command's data)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="funcpipe settings", title_justify="left")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for name, value, origin in rows:
        shown = ", ".join(value) if isinstance(value, tuple) else str(value)
        style = "" if origin == "default" else "bold"
        table.add_row(name, shown or "''", origin, style=style)
    Console(highlight=False).print(table)


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
