"""``funcpipe search``: rank stored chunks against a query."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..search import search_index
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes


@with_settings("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    *,
    flags: dict[str, Any],
    k: Annotated[int, typer.Option("-k", "--top", help="How many results.")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per hit on stdout.")
    ] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
) -> None:
    """Print the chunks closest to QUERY: path, offsets, cosine score and text.

    The query is embedded the way the index was built (its embedder, model and URL,
    which it remembers; --url points elsewhere)."""
    with exit_codes():
        settings = resolve_command(flags, config).settings
        hits = search_index(settings.index, query, k=k, url=settings.url, settings=settings)
        render.print_hits(hits, as_json=as_json)
