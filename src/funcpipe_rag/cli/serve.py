"""``funcpipe serve``: run the local embedding server until SIGINT or SIGTERM."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, cast

import typer

from ..errors import ConfigError
from ..serve import CorruptMode, EmbeddingServer, FaultConfig, ServerLimits
from ..summary import EXIT_USAGE
from . import render

_FAULTS = "Fault injection"
_LIMITS = "Limits"
_DEFAULT = ServerLimits()
_MIB = 1024 * 1024
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _body_bytes(max_body_mb: float) -> int:
    """``--max-body-mb`` (MiB, fractions allowed) in bytes."""
    if not (math.isfinite(max_body_mb) and max_body_mb * _MIB >= 1):
        raise ConfigError(f"--max-body-mb must be a positive number, got {max_body_mb!r}")
    return int(max_body_mb * _MIB)


def _warn_if_exposed(server: EmbeddingServer) -> None:
    if not server.loopback:
        render.note_line(
            f"funcpipe: warning: {server.url} is reachable from the network and has no"
            " authentication: anyone who can reach this host can use it (--host 127.0.0.1"
            " keeps it local)"
        )


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a poller never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def _block_stop_signals() -> set[int | signal.Signals] | None:
    """Hold SIGINT/SIGTERM for :func:`_wait_for_stop_signal`; None where unsupported.

    Blocked before the server threads start (they inherit the mask), so a signal can
    never land as an exception in the middle of start-up or shutdown.
    """
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _wait_for_stop_signal(old_mask: set[int | signal.Signals] | None) -> None:
    if old_mask is None:  # no sigwait (Windows): Ctrl-C arrives as KeyboardInterrupt
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return
    signal.sigwait(_STOP_SIGNALS)


def _restore_signals(old_mask: set[int | signal.Signals] | None) -> None:
    if old_mask is None:
        return
    # Swallow a second Ctrl-C / SIGTERM sent during shutdown before unblocking.
    for signum in signal.sigpending() & _STOP_SIGNALS:
        signal.sigwait({signum})
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind; 0 picks a free one.")] = 8088,
    port_file: Annotated[
        Path | None,
        typer.Option("--port-file", help="Write the bound port to FILE once listening."),
    ] = None,
    dim: Annotated[int, typer.Option("--dim", help="Vector dimension.")] = 384,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No final stats on stderr.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per request on stderr.")
    ] = False,
    fail_rate: Annotated[
        float,
        typer.Option(
            "--fail-rate",
            help="Fraction of requests answered with --status.",
            rich_help_panel=_FAULTS,
        ),
    ] = 0.0,
    status: Annotated[
        int,
        typer.Option("--status", help="HTTP status of injected failures.", rich_help_panel=_FAULTS),
    ] = 500,
    retry_after: Annotated[
        float | None,
        typer.Option(
            "--retry-after",
            help="Retry-After seconds on injected failures.",
            rich_help_panel=_FAULTS,
        ),
    ] = None,
    fail_first: Annotated[
        int,
        typer.Option(
            "--fail-first", help="The first N embed requests fail.", rich_help_panel=_FAULTS
        ),
    ] = 0,
    latency_ms: Annotated[
        float,
        typer.Option(
            "--latency-ms", help="Delay before each embed answer.", rich_help_panel=_FAULTS
        ),
    ] = 0.0,
    stall_rate: Annotated[
        float,
        typer.Option(
            "--stall-rate", help="Fraction of requests never answered.", rich_help_panel=_FAULTS
        ),
    ] = 0.0,
    drop_rate: Annotated[
        float,
        typer.Option(
            "--drop-rate",
            help="Fraction of connections closed unanswered.",
            rich_help_panel=_FAULTS,
        ),
    ] = 0.0,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", help="413 above this many inputs.", rich_help_panel=_FAULTS),
    ] = None,
    context_limit: Annotated[
        int | None,
        typer.Option(
            "--context-limit", help="400 for an input over C characters.", rich_help_panel=_FAULTS
        ),
    ] = None,
    corrupt: Annotated[
        str | None,
        typer.Option(
            "--corrupt", help="bad-json, wrong-count, wrong-dim or nan.", rich_help_panel=_FAULTS
        ),
    ] = None,
    corrupt_rate: Annotated[
        float | None,
        typer.Option(
            "--corrupt-rate", help="Corrupt this fraction (default: all).", rich_help_panel=_FAULTS
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the fault schedule.", rich_help_panel=_FAULTS)
    ] = 0,
    max_body_mb: Annotated[
        float,
        typer.Option(
            "--max-body-mb",
            help="413 for a request body over this many MiB.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.max_body_bytes / _MIB,
    max_inputs: Annotated[
        int,
        typer.Option("--max-inputs", help="Inputs per request.", rich_help_panel=_LIMITS),
    ] = _DEFAULT.max_inputs,
    max_input_chars: Annotated[
        int,
        typer.Option("--max-input-chars", help="Characters per input.", rich_help_panel=_LIMITS),
    ] = _DEFAULT.max_input_chars,
    max_total_chars: Annotated[
        int,
        typer.Option(
            "--max-total-chars",
            help="Characters per request, all inputs together.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.max_total_chars,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            help="Open connections; more get a 503.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.max_connections,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            help="Seconds for a request line and headers to arrive.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.header_timeout,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            help="Seconds for a body to arrive, or an answer to be taken.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.body_timeout,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout",
            help="Seconds a keep-alive connection may wait idle.",
            rich_help_panel=_LIMITS,
        ),
    ] = _DEFAULT.idle_timeout,
) -> None:
    """Serve embeddings (OpenAI, Ollama and TEI routes) with optional fault injection.

    Prints the URL on stdout once listening, and a warning on stderr when the address
    is reachable from other machines (there is no authentication); SIGINT or SIGTERM
    stops it (exit 0). Exit 2 for invalid flags, 1 if the address cannot be bound.
    """
    try:
        faults = FaultConfig(
            fail_rate=fail_rate, status=status, retry_after=retry_after, fail_first=fail_first,
            latency_ms=latency_ms, stall_rate=stall_rate, drop_rate=drop_rate,
            max_batch=max_batch, context_limit=context_limit,
            corrupt=cast(CorruptMode | None, corrupt), corrupt_rate=corrupt_rate, seed=seed,
        )  # fmt: skip
        limits = ServerLimits(
            max_body_bytes=_body_bytes(max_body_mb), max_inputs=max_inputs,
            max_input_chars=max_input_chars, max_total_chars=max_total_chars,
            max_connections=max_connections, header_timeout=header_timeout,
            body_timeout=body_timeout, idle_timeout=idle_timeout,
        )  # fmt: skip
        log = (lambda line: print(line, file=sys.stderr, flush=True)) if verbose else None
        server = EmbeddingServer(
            host=host, port=port, dim=dim, faults=faults, limits=limits, on_log=log
        )
    except ConfigError as exc:
        render.error_line(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    old_mask = _block_stop_signals()
    try:
        try:
            server.start()
        except OSError as exc:
            render.error_line(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
        with server:
            _warn_if_exposed(server)
            if port_file is not None:
                try:
                    _write_port_file(port_file, server.port)
                except OSError as exc:
                    render.error_line(f"cannot write --port-file {port_file}: {exc.strerror}")
                    raise typer.Exit(EXIT_USAGE) from None
            print(server.url, flush=True)
            _wait_for_stop_signal(old_mask)
    finally:
        _restore_signals(old_mask)
    if not quiet:
        stats = {k: v for k, v in server.stats().items() if k != "request_log"}
        print(json.dumps({"funcpipe_serve_stats": stats}), file=sys.stderr, flush=True)
