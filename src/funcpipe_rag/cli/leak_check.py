"""``funcpipe leak-check``: run the fault scenarios, print the matrix, exit 0 / 1 / 4."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..embedders.registry import NAMES
from ..errors import ConfigError
from ..leakcheck import SCENARIOS, Target, leak_exit_code, run_leak_check
from ..summary import EXIT_USAGE
from . import render


def leak_check_command(
    path: Annotated[
        Path | None, typer.Argument(help="Tree to check. [default: a built-in small corpus]")
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario", "-s", help=f"Run only these (repeatable): {', '.join(SCENARIOS)}."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the matrix as one JSON document on stdout.")
    ] = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help=f"One of {', '.join(NAMES)}; an in-process one (hash, onnx) runs the "
            "consumer, producer and early-break scenarios.",
        ),
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Your embedding server.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (for onnx: the model directory).")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="A postgresql:// database: each scenario writes (then drops) a scratch "
            "collection there. [default: temporary SQLite files]",
        ),
    ] = None,
) -> None:
    """Run the real ingest under every fault scenario and check nothing leaks.

    Your index is never touched (each run uses a temporary one). Server faults always
    use a local `funcpipe serve` with fault flags. Exit 0 when every scenario is clean,
    4 when any leaked, 1 when a scenario's fault did not fire (not exercised).
    """
    target = Target(
        path=path,
        embedder={k: v for k, v in (("embedder", embedder), ("url", url), ("model", model)) if v},
        index=index or "",
    )
    try:
        progress = None if as_json else render.scenario_line
        results = run_leak_check(target, tuple(scenario or SCENARIOS), on_result=progress)
    except ConfigError as exc:
        render.error_line(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        doc = {"schema": "funcpipe.leak-check/1", "exit_code": leak_exit_code(results),
               "scenarios": [r.to_jsonable() for r in results]}  # fmt: skip
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render.print_leak_matrix(results)
    raise typer.Exit(leak_exit_code(results))
