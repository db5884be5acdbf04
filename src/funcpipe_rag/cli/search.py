"""``funcpipe search``: rank stored chunks against a query."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..search import search_index
from . import render
from .shell import exit_codes


def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    index: Annotated[Path, typer.Option("--index", help="SQLite index file.")] = Path(
        "funcpipe.db"
    ),
    k: Annotated[int, typer.Option("-k", "--top", help="How many results.")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per hit on stdout.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Embedding server, for an index built over HTTP.", envvar="FUNCPIPE_URL"
        ),
    ] = None,
) -> None:
    """Print the chunks closest to QUERY: path, offsets, cosine score and text."""
    with exit_codes():
        hits = search_index(index, query, k=k, url=url or "")
        render.print_hits(hits, as_json=as_json)
