"""The ``funcpipe`` Typer application: wires the commands, nothing else.

Each command's module is imported only when the application is built for it: a run of
``funcpipe ingest`` builds an application with that one command, so it never imports
(or lets Typer process the parameters of) ``serve``, ``leak-check`` and the rest, whose
imports (httpx, the server) would cost more than a ``--plan`` of an unchanged tree.
``app`` (for tests and ``--help``) holds every command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import typer
import typer.main

from .coercion import lighten

# Command name -> "module:function" under funcpipe_rag.cli, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "ingest": "ingest:ingest_command",
    "search": "search:search_command",
    "eval": "eval:eval_command",
    "leak-check": "leak_check:leak_check_command",
    "verify": "verify:verify_command",
    "serve": "serve:serve_command",
    "config": "config:config_command",
}
# Commands that print their help when called with no arguments.
_ARGS_HELP = frozenset({"ingest", "search", "eval"})

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


def _command(name: str) -> Callable[..., Any]:
    module, _, function = COMMANDS[name].partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    return fn


def build_app(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """The application with the commands ``names`` (all by default)."""
    built = typer.Typer(
        name="funcpipe",
        help=(
            "RAG ingestion that never leaks a resource and never loses paid embedding work.\n\n"
            "Data goes to stdout (NDJSON with --jsonl); progress, reports and errors go to "
            "stderr."
        ),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    built.callback()(_root)
    for name in names:
        built.command(name, no_args_is_help=name in _ARGS_HELP)(_command(name))
    return built


def __getattr__(name: str) -> Any:
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(argv: list[str]) -> typer.Typer:
    """The application a command line needs: only its command when it names one first
    (anything else — ``--help``, ``--version``, a typo — gets every command)."""
    if argv and argv[0] in COMMANDS:
        return build_app([argv[0]])
    return build_app()


def main() -> None:
    """Console-script entry point.

    Runs the click command Typer builds, as ``Typer.__call__`` does (its exception hook
    only matters with pretty exceptions, which are off), after :func:`.coercion.lighten`.
    """
    # httpx imports its own command line (click, Rich, Pygments: about a third of
    # ``import httpx``) unless that import fails, and then offers a stub in its place.
    # This process is funcpipe's command line and never runs httpx's: make it fail.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    command = typer.main.get_command(app_for(sys.argv[1:]))
    lighten(command)
    command()
