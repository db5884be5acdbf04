"""``funcpipe eval``: retrieval quality of an index on a labelled set of questions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..evaluation import evaluate, load_queries
from . import render
from .options import CONFIG_OPTION, resolve_command, with_settings
from .shell import exit_codes


@with_settings("eval")
def eval_command(
    queries: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines: one {'query': ..., 'paths': [...]} (or 'chunk_ids') a line.",
            metavar="QUERIES.jsonl",
        ),
    ],
    *,
    flags: dict[str, Any],
    as_json: Annotated[
        bool, typer.Option("--json", help="The metrics as one JSON document on stdout.")
    ] = False,
    config: Annotated[Path | None, CONFIG_OPTION] = None,
) -> None:
    """Run every question in every mode (hybrid, vector, lexical) and print Hit@1/5/10,
    MRR and nDCG@10 per mode. Exit 0 whatever the scores; 2 for a bad file or index."""
    with exit_codes():
        settings = resolve_command(flags, config).settings
        labelled = load_queries(queries)
        report = evaluate(settings.index, labelled, settings=settings, url=settings.url)
        if as_json:
            sys.stdout.write(json.dumps(report.to_jsonable(), indent=2) + "\n")
        else:
            render.print_eval(report)
