"""The light coercion of command-line values (:mod:`funcpipe_rag.cli.coercion`) gives
exactly what Typer's own coercion gives, for every number option of ``ingest`` and any
string, and it does so without importing pydantic for a plain number."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._coercion import build_runtime_param

from funcpipe_rag.cli.app import app_for
from funcpipe_rag.cli.coercion import LightCoercion
from tests.cli.helpers import cli_env


def _params(commands: tuple[str, ...], keep: Callable[[Any], bool]) -> list[Any]:
    """The parameters of ``commands`` whose Typer type descriptor ``keep`` accepts."""
    found = []
    for name in commands:
        group = typer.main.get_command(app_for([name]))
        command = getattr(group, "commands", {}).get(name, group)
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is not None and keep(descriptor):
                found.append(param)
    return found


NUMBER_PARAMS = _params(("ingest",), lambda d: d.annotation in (int, float))
DEFAULTS = Path(__file__).resolve().parents[2] / "configs" / "default.toml"
# Typer's own coercion of each parameter, built once (building one imports pydantic).
TYPERS: dict[int, Any] = {}


def _typers(param: Any) -> Any:
    if id(param) not in TYPERS:
        TYPERS[id(param)] = build_runtime_param(param.type_descriptor)
    return TYPERS[id(param)]


def _outcome(coerce: Any, value: str, param: Any) -> tuple[str, Any]:
    try:
        got = coerce(value, param, None)
    except Exception as exc:  # Typer's BadParameter: both sides must raise alike
        return ("raised", type(exc).__name__)
    return (type(got).__name__, repr(got))  # repr: nan equals nan


def test_ingest_has_both_int_and_float_options_to_check() -> None:
    kinds = {p.type_descriptor.annotation for p in NUMBER_PARAMS}
    assert kinds == {int, float}


# Near misses of a plain number: each must go to Typer's coercion and come back as it says.
# fmt: off
ODD = ["4", "-0", "007", "0.50", " 4", "4 ", "+4", "1e3", "1E-2", "inf", "nan", "1_000",
       "0x10", "\u0663", "4.", ".5", "", "-", "9" * 18, "9" * 19, "1.5", "12345678901234.5"]
# fmt: on
values = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,20}(\.[0-9]{0,17})?\Z"),
    st.sampled_from(ODD),
    st.text(max_size=8),
)


@settings(deadline=None)  # the first example builds Typer's coercion: pydantic's import
@given(st.sampled_from(NUMBER_PARAMS), values)
def test_a_number_option_coerces_any_string_as_typer_does(param: Any, value: str) -> None:
    light = LightCoercion(param.type_descriptor)
    assert _outcome(light.coerce, value, param) == _outcome(_typers(param).coerce, value, param)


PATH_PARAMS = _params(
    ("ingest", "search", "verify", "eval"),
    lambda d: LightCoercion(d)._check_path is not None,
)


def test_path_options_are_coerced_lightly() -> None:
    assert {p.name for p in PATH_PARAMS} >= {"report_file", "config"}


@settings(deadline=None, max_examples=60)
@given(
    st.sampled_from(PATH_PARAMS),
    st.sampled_from(["file", "dir", "missing", "missing/below", "relative", "dash", "odd"]),
    st.text(min_size=1, max_size=6),
)
def test_a_path_option_coerces_any_path_as_typer_does(
    tmp_path_factory: Any, param: Any, kind: str, text: str
) -> None:
    base = tmp_path_factory.mktemp("p")
    (base / "f.txt").write_text("x")
    value = {
        "file": str(base / "f.txt"),
        "dir": str(base),
        "missing": str(base / "nothing"),
        "missing/below": str(base / "f.txt" / "below"),
        "relative": "some/relative/file.json",
        "dash": "-",
        "odd": text,
    }[kind]
    light = LightCoercion(param.type_descriptor)
    assert _outcome(light.coerce, value, param) == _outcome(_typers(param).coerce, value, param)


def test_plain_numbers_on_the_command_line_do_not_import_pydantic() -> None:
    # pydantic (built by Typer to coerce "4" to 4) stays resident for the whole run:
    # about 8 MB of a run over HTTP, whose budget is 100 MB.
    script = (
        "import sys\n"
        "from funcpipe_rag.cli.app import main\n"
        "sys.argv = ['funcpipe', 'config', '--concurrency', '4', '--batch-size', '32',"
        f" '--max-rate', '0.5', '--config', {str(DEFAULTS)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('pydantic' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "False"
