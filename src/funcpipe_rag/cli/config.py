"""``funcpipe config``: the effective settings and where each value came from."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import SETTINGS, default_toml, markdown_table
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes


@with_settings("config")
def config_command(
    *,
    flags: dict[str, Any],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout: value and origin.")
    ] = False,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Print configs/default.toml (every default).")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the README's table of settings.")
    ] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
) -> None:
    """Show the settings a command with these flags would use, and where each value
    comes from: flag, environment (FUNCPIPE_*), --config file, the index (which
    remembers how it was built), or the built-in default."""
    if defaults or markdown:
        sys.stdout.write(default_toml() if defaults else markdown_table())
        return
    with exit_codes():
        resolution = resolve_command(flags, config)
        rows = [
            (s.name, getattr(resolution.settings, s.name), str(resolution.origins[s.name]))
            for s in SETTINGS
        ]
        if as_json:
            doc = {name: {"value": value, "origin": origin} for name, value, origin in rows}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            render.print_settings(rows)
