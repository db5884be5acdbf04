"""``funcpipe search``: rank stored chunks against a query (hybrid by default)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ..search import search_index
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes

# --path is an option of the command, not a setting: a filter is a question about one
# query, and a standing one in a config file or FUNCPIPE_PATH would hide results unseen.
PATH_OPTION = typer.Option(
    "--path",
    help="Only files whose path (or a trailing part of it, or the absolute path) matches "
    "this glob; '*' crosses '/'. Repeatable: any may match.",
    metavar="GLOB",
)


def read_query(query: str) -> str:
    """The query text: the argument, or all of stdin for ``-``."""
    if query != "-":
        return query
    try:
        return sys.stdin.read().strip()
    except UnicodeDecodeError:
        raise ConfigError("the query on stdin is not valid UTF-8") from None


@with_settings("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for ('-' reads it from stdin).")],
    *,
    flags: dict[str, Any],
    paths: Annotated[list[str] | None, PATH_OPTION] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object (funcpipe.hit/1) per hit on stdout.")
    ] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
) -> None:
    """Print the best chunks for QUERY: score, path, offsets and the passage that matched.

    Hybrid by default: BM25 over chunk text and cosine over vectors, fused. The query is
    embedded the way the index was built (its embedder, model and URL, which it
    remembers; --url points elsewhere); --mode lexical embeds nothing."""
    with exit_codes():
        settings = resolve_command(flags, config).settings
        text = read_query(query)
        hits = search_index(
            settings.index,
            text,
            k=settings.top,
            mode=settings.mode,
            paths=tuple(paths or ()),
            min_score=settings.min_score,
            url=settings.url,
            settings=settings,
        )
        render.print_hits(hits, query=text, as_json=as_json)
