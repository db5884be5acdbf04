"""``funcpipe search``: rank stored chunks against a query."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import resolve_settings
from ..errors import EmbeddingUnavailableError, FuncpipeError
from ..search import search_index
from ..summary import EXIT_USAGE
from . import render


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
    try:
        # FUNCPIPE_* variables bound the query's request as they bound an ingest's. The
        # index fixes the embedder, so FUNCPIPE_EMBEDDER is not this command's business.
        settings = resolve_settings(flags={"url": url, "embedder": "hash"})
        hits = search_index(index, query, k=k, url=url or "", settings=settings)
    except EmbeddingUnavailableError as exc:
        render.error_line(str(exc))
        raise typer.Exit(1) from None
    except FuncpipeError as exc:
        render.error_line(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    render.print_hits(hits, as_json=as_json)
