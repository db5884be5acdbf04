"""The ``funcpipe`` Typer application: wires the commands, nothing else."""

from __future__ import annotations

import typer

from .config import config_command
from .eval import eval_command
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
    pretty_exceptions_enable=False,
)


_KEY_DEPENDENCIES = ("typer", "rich", "httpx", "numpy")


def _print_version(value: bool) -> None:
    if value:
        import platform
        from importlib import metadata

        from .. import __version__

        parts = [f"python {platform.python_version()}"]
        for name in _KEY_DEPENDENCIES:
            try:
                parts.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                parts.append(f"{name} missing")
        typer.echo(f"funcpipe {__version__} ({', '.join(parts)})")
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
app.command("eval", no_args_is_help=True)(eval_command)
app.command("leak-check")(leak_check_command)
app.command("verify")(verify_command)
app.command("serve")(serve_command)
app.command("config")(config_command)


def main() -> None:
    """Console-script entry point."""
    app()
