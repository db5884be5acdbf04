"""``funcpipe ingest``: parse flags into settings, run the library, render, exit."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from ..config import RunSettings
from ..errors import RunInterrupted
from ..index import leftover_rebuild
from ..policies.interrupts import raise_or_defer
from ..reconcile import plan as plan_run
from ..summary import EXIT_PARTIAL, EXIT_SIGPIPE, RunSummary, headline
from ..walk import measure_tree, read_path_list
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes, silence_stdout

_OUTPUT = "Output"
_WALK = "Walk"
_INDEX = "Incremental index"


class _SignalState:
    fired = False
    interrupted = False

    def settle(self) -> None:
        """The run is over: from now on a signal only prints the cleanup note."""
        self.fired = True


@contextlib.contextmanager
def orderly_signals() -> Iterator[_SignalState]:
    """SIGINT and SIGTERM stop the run in order: the first raises (KeyboardInterrupt or
    RunInterrupted) where the run is, or as soon as a resource being made has an owner;
    later ones only say cleanup is under way.

    Why not force-exit on a second Ctrl-C: cleanup is bounded — in-flight requests are
    cancelled by shutting their sockets down, the index commit is one transaction — and
    skipping it would lose paid work and leak what the report promises to release.
    """
    state = _SignalState()

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.fired:
            os.write(2, b"funcpipe: cleaning up, resources are being released\n")
            return
        state.fired = state.interrupted = True
        # Raised where the run is, unless it is just making a resource and has not yet
        # bound it where a finally closes it (policies.interrupts): then at the end of that.
        stop = KeyboardInterrupt() if signum == signal.SIGINT else RunInterrupted(signum)
        raise_or_defer(stop, frame)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        # After a signal the process is on its way out: a late second signal, still
        # pending in the interpreter, must not reach a restored default handler and
        # kill the process after the report was written. Otherwise restore (the
        # command may run inside a test runner's process).
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_IGN if state.interrupted else old)


@contextlib.contextmanager
def run_collector() -> Iterator[None]:
    """The startup heap frozen for the cyclic garbage collector during one ingest.

    Why: the collector's full collections scanned everything imported before the run
    (the interpreter, typer, numpy): frozen, that heap is skipped (GC CPU of a hash
    ingest of the real corpus 0.81 s -> 0.60 s). The young-collection threshold stays
    the default: raising it to 10,000 took GC to 0.06 s but let cyclic garbage of HTTP
    runs pile up, +16 MB peak RSS on the full real corpus (102-103 MB against 86 MB,
    over the 100 MB budget), for no total CPU time that could be told from noise.
    In the CLI only: the process is funcpipe's own; the command may run inside a test
    runner's process, so it is undone on the way out.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _stdin_paths(null_separated: bool) -> Iterator[str]:
    # read1 returns what the pipe has now, so paths are walked as `find` produces them.
    read1 = getattr(sys.stdin.buffer, "read1", sys.stdin.buffer.read)
    yield from read_path_list(iter(lambda: read1(65536), b""), null_separated=null_separated)


def _plan(paths: list[str], settings: RunSettings, from_stdin: bool, null: bool) -> int:
    roots = tuple(_stdin_paths(null)) if from_stdin else tuple(paths)
    counts: dict[str, int] = {}
    chunks = to_embed = 0
    out = sys.stdout.write
    for entry in plan_run(roots, settings):
        out(entry.to_json_line())
        counts[entry.status] = counts.get(entry.status, 0) + 1
        chunks += entry.chunks
        to_embed += entry.to_embed
    order = ("new", "changed", "unchanged", "deleted", "skipped", "failed")
    summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in order)
    render.note_line(f"plan: {summary}; {chunks} chunks to store, {to_embed} to embed")
    # As the run itself would: files that cannot be read make it exit 1.
    return EXIT_PARTIAL if counts.get("failed") else 0


def _write_report(summary: RunSummary, report: str, report_file: Path | None) -> None:
    if report_file is not None:
        report_file.write_text(json.dumps(summary.to_jsonable(), indent=2) + "\n")
    if report == "json":
        render.print_summary_json(summary)
    elif report == "text":
        render.print_report(summary)


@with_settings("ingest")
def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders to ingest; '-' reads paths from stdin.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    *,
    flags: dict[str, Any],
    no_index: Annotated[
        bool,
        typer.Option(
            "--no-index", help="Do not write an index (use with --jsonl).", rich_help_panel=_OUTPUT
        ),
    ] = False,
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help="Write one NDJSON record per stored chunk on stdout.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    with_vectors: Annotated[
        bool,
        typer.Option(
            "--with-vectors",
            help="Include the embedding in each NDJSON record.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--report-file",
            help="Write the funcpipe.run/1 JSON summary to FILE.",
            rich_help_panel=_OUTPUT,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress and no text report (errors still print).",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
    null: Annotated[
        bool,
        typer.Option(
            "-0",
            "--null",
            help="Paths on stdin are NUL-separated (find -print0).",
            rich_help_panel=_WALK,
        ),
    ] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Dry run: list new / changed / unchanged / deleted files (NDJSON on stdout) "
            "and chunk counts; embed and write nothing.",
            rich_help_panel=_INDEX,
        ),
    ] = False,
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="Rebuild the index from PATHs with the current embedder and chunker (another "
            "vector space is otherwise refused); the old index serves until the new one is "
            "complete, and an interrupted rebuild resumes.",
            rich_help_panel=_INDEX,
        ),
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="With '-': the stdin list is the whole corpus; forget indexed files not in it. "
            "(Walked folders are always pruned of deleted files.)",
            rich_help_panel=_INDEX,
        ),
    ] = False,
) -> None:
    """Walk PATHs, chunk, embed, store in the index; report every resource on stderr.

    An existing index remembers how it was built (embedder, model, URL, dimension,
    chunking): a plain run uses those. Exit codes: 0 all stored, 1 some items failed,
    2 usage or configuration error, 3 circuit breaker tripped, 4 leak detected,
    130 Ctrl-C, 141 stdout closed, 143 SIGTERM.
    """
    if quiet and flags.get("report") is None:
        flags["report"] = "none"
    # The handlers stay in place while the report is written: a Ctrl-C then cannot
    # leave a half-written report file or a traceback.
    with orderly_signals() as signals:
        with exit_codes():
            settings = resolve_command(
                flags, config, use_index=not no_index, rebuild=reembed
            ).settings
            from_stdin = paths == ["-"]
            leftover = leftover_rebuild(settings.index, settings.index_options())
            if leftover is not None and not reembed and not no_index:
                render.note_line(
                    f"funcpipe: an unfinished --reembed rebuild is beside the index ({leftover}); "
                    f"`funcpipe ingest ... --reembed` with its settings resumes it, deleting "
                    "it discards it"
                )
            if plan:
                raise typer.Exit(_plan(paths, settings, from_stdin, null))
            from ..ingest import IngestRequest, ingest  # not needed by --plan: numpy

            request = IngestRequest(
                settings=settings,
                roots=() if from_stdin else tuple(paths),
                path_list=_stdin_paths(null) if from_stdin else None,
                use_index=not no_index,
                jsonl=sys.stdout if jsonl else None,
                with_vectors=with_vectors,
                prune_listed=prune,
                reembed=reembed,
            )
            show = not quiet and render.stderr_console().is_terminal
            size = measure_tree(request.roots, settings.walk_options()) if show else None
            with render.live_progress(show, size) as progress, run_collector():
                summary = ingest(request, on_progress=progress)
            signals.settle()
        if summary.exit_code == EXIT_SIGPIPE:
            silence_stdout()
        _write_report(summary, settings.report, report_file)
        line = headline(summary)
        if line is not None and settings.report != "json":
            render.error_line(line)
    raise typer.Exit(summary.exit_code)
