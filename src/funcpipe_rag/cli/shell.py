"""One error-to-exit-code path for every command, and the shell's closed-pipe rule."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer

from ..errors import ConfigError, FuncpipeError
from ..summary import EXIT_PARTIAL, EXIT_SIGPIPE, EXIT_USAGE
from . import render


def silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush
    cannot raise again (the recipe in Python's signal module documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Turn funcpipe's exceptions into one clear line and the documented exit code:
    2 for usage and configuration (a damaged or mismatched index included), 1 for
    other failures (a locked index, a write that failed, a query that could not be
    embedded), 141 quietly for a closed stdout (``... | head``)."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(EXIT_SIGPIPE) from None
    except ConfigError as exc:
        render.error_line(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except FuncpipeError as exc:
        render.error_line(str(exc))
        raise typer.Exit(EXIT_PARTIAL) from None
