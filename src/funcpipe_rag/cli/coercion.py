"""Typer's parameter coercion, without building a pydantic validator for values that need none.

Typer (0.2x) coerces every parameter of the command it runs through a pydantic
``TypeAdapter``, built on first use — also for an option that was not given (``None``)
or a string option given a string. Importing pydantic and building some fifty adapters
took longer than an ``ingest --plan`` of an unchanged 3,600-file tree does (about
0.6 s), and pydantic stays in memory for the whole run (~8 MB of resident memory: a
run over HTTP has a 100 MB budget). :func:`lighten` gives each parameter of a built
command a coercion that answers those values itself, exactly as the adapter would —
including a plain decimal number given to a number option (``--concurrency 4``,
``--max-rate 0.5``) and a path given to a ``Path`` option (``--report-file run.json``:
pydantic's part there is only ``Path(value)``; Typer's own checks of the path, which need
no pydantic, then run as they would) — and hands every other value (``1e3``, a choice
it does not hold) to Typer's own coercion, built then: errors and conversions stay
Typer's.

It relies on two attributes of Typer's parameters (``_runtime_param``, the lazily built
coercion, and ``type_descriptor``) and on ``typer._param_types.coerce_cli_path``; on a
Typer without them it changes nothing.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

_IDENTITY = (str, bool)
# Numbers written the one way every parser reads alike: optional minus, ASCII digits
# (and for a float one point with digits on both sides). Bounded in length so no int
# is near a limit of pydantic's; anything else (signs, spaces, exponents, "inf",
# underscores) goes to Typer's coercion.
_PLAIN_INT = re.compile(r"-?[0-9]{1,18}")
_PLAIN_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


class LightCoercion:
    """Coerces the values that need no conversion; builds Typer's coercion for the rest."""

    __slots__ = (
        "_check_path",
        "_choices",
        "_descriptor",
        "_identity",
        "_number",
        "_str_list",
        "_typer",
    )

    def __init__(self, descriptor: Any) -> None:
        self._descriptor = descriptor
        self._typer: Any = None
        base = _without_none(descriptor.annotation)
        self._identity = base if base in _IDENTITY else None
        self._str_list = typing.get_origin(base) is list and typing.get_args(base) == (str,)
        self._choices: frozenset[Any] = frozenset()
        # int or float without bounds, clamping or a parser of its own: Typer's adapter
        # is then pydantic's lax int / float, which reads a plain decimal as Python does.
        info = descriptor.parameter_info
        plain = (
            getattr(info, "min", None) is None
            and getattr(info, "max", None) is None
            and not getattr(info, "clamp", False)
            and getattr(info, "parser", None) is None
        )
        self._number = base if plain and base in (int, float) else None
        # Typer coerces a string to a Path with pydantic's TypeAdapter(Path) (which is
        # Path(value)), then checks it in coerce_cli_path; given a Path, that function
        # never touches pydantic. Without it (another Typer) paths go to Typer as before.
        self._check_path: Any = None
        if (
            base is Path
            and descriptor.file_annotation is None
            and getattr(descriptor.parameter_info, "path_type", None) is None
        ):
            try:
                from typer._param_types import coerce_cli_path
            except ImportError:
                pass
            else:
                self._check_path = coerce_cli_path
        if typing.get_origin(base) is Literal:
            args = typing.get_args(base)
            if all(type(a) is str for a in args):
                self._choices = frozenset(args)

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:  # as Typer: an unset multi-value parameter is ()
            return () if multi else None
        if self._identity is not None and type(value) is self._identity:
            return value
        if type(value) is str and value in self._choices:
            return value
        if self._number is int and type(value) is str and _PLAIN_INT.fullmatch(value):
            return int(value)
        if self._number is float and type(value) is str and _PLAIN_FLOAT.fullmatch(value):
            return float(value)
        if self._check_path is not None and type(value) is str and value:
            info = self._descriptor.parameter_info
            return self._check_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if self._str_list and type(value) in (tuple, list) and all(type(v) is str for v in value):
            return list(value)
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self._descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def _lighten_param(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(param, "_runtime_param", ...) is None:
        param._runtime_param = LightCoercion(descriptor)


def lighten(command: Any) -> None:
    """Give every parameter of ``command`` (and of its subcommands) a light coercion,
    the ``--help`` option included (built on first use, with the parsing context)."""
    for param in getattr(command, "params", ()):
        _lighten_param(param)
    build_help = getattr(command, "get_help_option", None)
    if build_help is not None:

        def get_help_option(ctx: Any) -> Any:
            option = build_help(ctx)
            if option is not None:
                _lighten_param(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        lighten(sub)
