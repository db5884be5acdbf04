"""``funcpipe verify``: reconcile an index with its tree; exit 1 on any mismatch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..reconcile import verify
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes


@with_settings("verify")
def verify_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Folders or files the index was built from (optional).", metavar="PATH"
        ),
    ] = None,
    *,
    flags: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
) -> None:
    """Check the index (integrity, dimensions, orphans, incomplete documents) and, given
    PATHs, that it holds every file as it is now. Exit 0 consistent, 1 mismatch, 2 usage."""
    with exit_codes():
        # The index's own record is not trusted here: a damaged one is a finding.
        settings = resolve_command(flags, config, use_index=False).settings
        report = verify(settings.index, tuple(paths or ()), settings)
        if as_json:
            sys.stdout.write(json.dumps(report.to_jsonable(), indent=2) + "\n")
        else:
            render.print_verify(report)
    raise typer.Exit(0 if report.ok else 1)
