"""Typer options derived from the one declaration of each setting (:mod:`..config`).

:func:`with_settings` adds to a command one option per setting that the command takes,
so a new setting is a new field of ``RunSettings`` and nothing else: its flag, help
(with the default and the allowed values), environment variable and TOML key follow.
The command receives the flags that were given as ``flags`` (unset ones are ``None``,
so the layers below them show through).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import typer

from ..config import SECTIONS, SETTINGS, Resolution, Setting, resolve
from ..index import index_name, read_remembered

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_OPTION = typer.Option(
    "--config",
    help="TOML settings file (see configs/default.toml; FUNCPIPE_CONFIG too).",
    envvar="FUNCPIPE_CONFIG",
    show_envvar=False,
    rich_help_panel="Run",
)


def _annotation(s: Setting) -> Any:
    if s.meta.choices:
        base: Any = Literal.__getitem__(s.meta.choices)
    elif s.kind is list:
        base = list[str]
    else:
        base = s.kind
    help_text = s.help[0].upper() + s.help[1:] + "."
    allowed = s.describe_range()
    if allowed and not s.meta.choices:
        help_text += f" \\[{allowed}]"
    # The option's own default stays None (unset: the lower layers show through), so the
    # built-in default is written into the help.
    help_text += f" \\[default: {s.describe_default()}]"  # escaped: Rich markup
    decls = [s.flag] if s.kind is not bool else [f"{s.flag}/--no-{s.flag[2:]}"]
    if s.meta.short:
        decls.append(s.meta.short)
    option = typer.Option(
        *decls,
        help=help_text,
        show_default=False,
        rich_help_panel=SECTIONS[s.section],
        metavar=s.meta.metavar or None,
    )
    return Annotated[base | None, option]


def settings_for(command: str) -> list[Setting]:
    return [s for s in SETTINGS if command in s.meta.commands]


def with_settings(command: str) -> Callable[[F], F]:
    """Give the decorated command one option per setting it takes (see the module doc).

    The command must accept a ``flags: dict[str, Any]`` keyword argument.
    """

    def decorate(fn: F) -> F:
        own = [
            p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "flags"
        ]
        taken = settings_for(command)
        added = [
            inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=_annotation(s))
            for s in taken
        ]  # fmt: skip
        names = {s.name for s in taken}

        @functools.wraps(fn)
        def command_body(**kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
            for name, value in flags.items():
                if isinstance(value, list):
                    flags[name] = value or None  # an empty repeatable option is unset
            return fn(flags=flags, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        command_body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command_body.__annotations__ = {p.name: p.annotation for p in params}
        return cast(F, command_body)

    return decorate


def resolve_command(
    flags: dict[str, Any],
    config: Path | None,
    *,
    use_index: bool = True,
    rebuild: bool = False,
) -> Resolution:
    """The settings of one command line: its flags, the environment, ``--config``, and
    what the index it names remembers of how it was built (see :func:`..config.resolve`)."""
    first = resolve(flags=flags, config_file=config)
    chosen = first.settings
    remembered = read_remembered(chosen.index, chosen.index_options()) if use_index else None
    if not remembered:
        return first
    return resolve(
        flags=flags,
        config_file=config,
        remembered=remembered,
        index_name=index_name(chosen.index),
        rebuild=rebuild,
    )
