"""``funcpipe ingest``: parse flags into settings, run the library, render, exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ..config import RunSettings, resolve_settings
from ..errors import ConfigError, FuncpipeError, RunInterrupted
from ..ingest import IngestRequest, ingest
from ..reconcile import plan as plan_run
from ..sources import read_path_list
from ..summary import EXIT_SIGPIPE, EXIT_USAGE, RunSummary, headline
from . import render

_TUNING = "Tuning"
_OUTPUT = "Output"
_EMBED = "Embedder"
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
    RunInterrupted) where the run is; later ones only say cleanup is under way.

    Why not force-exit on a second Ctrl-C: cleanup is bounded — in-flight requests are
    cancelled by shutting their sockets down, the index commit is one transaction — and
    skipping it would lose paid work and leak what the report promises to release.
    """
    state = _SignalState()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if state.fired:
            os.write(2, b"funcpipe: cleaning up, resources are being released\n")
            return
        state.fired = state.interrupted = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise RunInterrupted(signum)

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


def _stdin_paths(null_separated: bool) -> Iterator[str]:
    # read1 returns what the pipe has now, so paths are walked as `find` produces them.
    read1 = getattr(sys.stdin.buffer, "read1", sys.stdin.buffer.read)
    yield from read_path_list(iter(lambda: read1(65536), b""), null_separated=null_separated)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush
    cannot raise again (the recipe in Python's signal module documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _plan(paths: list[str], settings: RunSettings, from_stdin: bool, null: bool) -> int:
    roots = tuple(_stdin_paths(null)) if from_stdin else tuple(paths)
    counts: dict[str, int] = {}
    chunks = to_embed = 0
    for entry in plan_run(roots, settings):
        sys.stdout.write(json.dumps(entry.to_jsonable(), ensure_ascii=False) + "\n")
        counts[entry.status] = counts.get(entry.status, 0) + 1
        chunks += entry.chunks
        to_embed += entry.to_embed
    order = ("new", "changed", "unchanged", "deleted", "skipped", "failed")
    summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in order)
    render.note_line(f"plan: {summary}; {chunks} chunks to store, {to_embed} to embed")
    return 0


def _write_report(summary: RunSummary, report: str, report_file: Path | None) -> None:
    if report_file is not None:
        report_file.write_text(json.dumps(summary.to_jsonable(), indent=2) + "\n")
    if report == "json":
        render.print_summary_json(summary)
    elif report == "text":
        render.print_report(summary)


def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders to ingest; '-' reads paths from stdin.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    index: Annotated[
        str | None,
        typer.Option(
            "--index", help="SQLite index file. [default: funcpipe.db]", rich_help_panel=_OUTPUT
        ),
    ] = None,
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
    report: Annotated[
        str | None,
        typer.Option(
            "--report",
            help="Report on stderr: text, json or none. [default: text]",
            rich_help_panel=_OUTPUT,
        ),
    ] = None,
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
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="hash (in process), openai, ollama or tei. [default: hash]",
            rich_help_panel=_EMBED,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Base URL of the embedding server.", rich_help_panel=_EMBED),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model name. [default: the embedder's own]", rich_help_panel=_EMBED
        ),
    ] = None,
    dim: Annotated[
        int | None,
        typer.Option(
            "--dim", help="Dimension of the hash embedder. [default: 384]", rich_help_panel=_EMBED
        ),
    ] = None,
    encoding_format: Annotated[
        str | None,
        typer.Option(
            "--encoding-format",
            help="How an OpenAI-compatible server sends vectors: base64 or float (float is "
            "used anyway if the server refuses base64). [default: base64]",
            rich_help_panel=_EMBED,
        ),
    ] = None,
    max_rate: Annotated[
        float | None,
        typer.Option(
            "--max-rate",
            help="Trip the breaker above this error rate, 0..1. [default: 0.2]",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    min_samples: Annotated[
        int | None,
        typer.Option(
            "--min-samples",
            help="Items seen before the breaker may trip. [default: 100]",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="Chunks per embedding request. [default: 64]",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            help="Embedding requests in flight. [default: 4]",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            "--chunk-size", help="Chunk size in characters. [default: 800]", rich_help_panel=_TUNING
        ),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(
            "--overlap",
            help="Overlap between chunks in characters. [default: 100]",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML settings file (see configs/default.toml).",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include", help="Only files matching this glob (repeatable).", rich_help_panel=_WALK
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Skip files and folders matching this glob (repeatable).",
            rich_help_panel=_WALK,
        ),
    ] = None,
    hidden: Annotated[
        bool | None,
        typer.Option("--hidden", help="Also walk hidden files and folders.", rich_help_panel=_WALK),
    ] = None,
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

    Exit codes: 0 all stored, 1 some items failed, 2 usage or configuration error,
    3 circuit breaker tripped, 4 leak detected, 130 Ctrl-C, 141 stdout closed, 143 SIGTERM.
    """
    flags = {
        "index": index, "embedder": embedder, "url": url, "model": model, "dim": dim,
        "encoding_format": encoding_format,
        "max_rate": max_rate, "min_samples": min_samples, "batch_size": batch_size,
        "concurrency": concurrency, "chunk_size": chunk_size, "overlap": overlap,
        "report": report if report is not None else ("none" if quiet else None),
        "include": include or None, "exclude": exclude or None, "hidden": hidden,
    }  # fmt: skip
    # The handlers stay in place while the report is written: a Ctrl-C then cannot
    # leave a half-written report file or a traceback.
    with orderly_signals() as signals:
        try:
            settings = resolve_settings(flags=flags, config_file=config)
            from_stdin = paths == ["-"]
            if plan:
                raise typer.Exit(_plan(paths, settings, from_stdin, null))
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
            with render.live_progress(not quiet) as progress:
                summary = ingest(request, on_progress=progress)
            signals.settle()
        except FuncpipeError as exc:
            render.error_line(str(exc))
            raise typer.Exit(EXIT_USAGE if isinstance(exc, ConfigError) else 1) from None
        if summary.exit_code == EXIT_SIGPIPE:
            _silence_stdout()
        _write_report(summary, settings.report, report_file)
        line = headline(summary)
        if line is not None:
            render.error_line(line)
    raise typer.Exit(summary.exit_code)
