"""``funcpipe verify``: reconcile an index with its tree; exit 1 on any mismatch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import resolve_settings
from ..reconcile import verify
from . import render
from .shell import exit_codes


def verify_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Folders or files the index was built from (optional).", metavar="PATH"
        ),
    ] = None,
    index: Annotated[Path, typer.Option("--index", help="SQLite index file.")] = Path(
        "funcpipe.db"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML settings (walk options).")
    ] = None,
) -> None:
    """Check the index (integrity, dimensions, orphans, incomplete documents) and, given
    PATHs, that it holds every file as it is now. Exit 0 consistent, 1 mismatch, 2 usage."""
    with exit_codes():
        settings = resolve_settings(flags={"index": str(index)}, config_file=config)
        report = verify(index, tuple(paths or ()), settings)
        if as_json:
            sys.stdout.write(json.dumps(report.to_jsonable(), indent=2) + "\n")
        else:
            render.print_verify(report)
    raise typer.Exit(0 if report.ok else 1)
