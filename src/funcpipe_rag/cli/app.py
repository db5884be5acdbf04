"""The ``funcpipe`` Typer application: wires the commands, nothing else."""

from __future__ import annotations

import typer

from .ingest import ingest_command
from .leak_check import leak_check_command
from .search import search_command
from .serve import serve_command
from .verify import verify_command

app = typer.Typer(
    name="funcpipe",
    help=(
        "RAG ingestion that never leaks a resource and never loses paid embedding work.\n\n"
        "Data goes to stdout (NDJSON with --jsonl); progress, reports and errors go to stderr."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"funcpipe {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """RAG ingestion that never leaks a resource and never loses paid embedding work."""


app.command("ingest", no_args_is_help=True)(ingest_command)
app.command("search", no_args_is_help=True)(search_command)
app.command("leak-check")(leak_check_command)
app.command("verify")(verify_command)
app.command("serve")(serve_command)


def main() -> None:
    """Console-script entry point."""
    app()
