"""Settings: each declared once, as a field of :class:`RunSettings`, and everything else
derived from that one declaration.

A field's metadata (:func:`setting`) holds its TOML section, help, allowed values and
the commands that take it; from it follow the Typer option (``--name-with-dashes``,
see :mod:`funcpipe_rag.cli.options`), the TOML key (the name, inside its section), the
environment variable (``FUNCPIPE_`` + the name in capitals), ``configs/default.toml``
and the README's settings table (:func:`default_toml`, :func:`markdown_table`; a test
checks both files against them).

Precedence, highest first: flags > ``FUNCPIPE_*`` environment > ``--config`` file >
what the index remembers of how it was built > built-in defaults. Every resolved value
keeps its origin (:class:`Resolution`), which ``funcpipe config`` prints.

Secrets are not settings: API keys come from the environment only (see the embedders)
and never appear in a config object, its ``repr`` or any output.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chunking.splitter import ChunkerSettings
from .embedders import registry
from .embedders.urls import without_credentials
from .errors import ConfigError, IndexMismatchError
from .index.base import SEARCH_MODES
from .index.options import IndexOptions
from .readers.decoding import check_encoding
from .readers.pool import ParseLimits
from .walk import WalkOptions

EMBEDDERS = registry.NAMES
POOLINGS = ("auto", "mean", "cls", "max")
REPORTS = ("text", "json", "none")
CHANGE_CHECKS = ("stat", "content")

# Commands a setting can belong to. "ingest" covers --plan and --reembed too.
INGEST = ("ingest", "config")
QUERY = ("ingest", "search", "eval", "config")  # settings a query needs to reach the embedder
EVERY = ("ingest", "search", "eval", "verify", "config")
WALKING = ("ingest", "verify", "config")
SEARCHING = ("search", "config")

SECTIONS = {
    "ingest": "Run",
    "chunker": "Chunking",
    "embedder": "Embedder",
    "walk": "Walk",
    "read": "Reading",
    "postgres": "PostgreSQL",
    "parse": "Parsing (PDF, DOCX)",
    "search": "Search",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    """What a field of :class:`RunSettings` declares besides its name, type and default."""

    section: str
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    commands: tuple[str, ...] = INGEST
    # Remembered by the index that a run builds; a later run on that index uses it as
    # its default. ``space`` ones define the vector space: an explicit other value is a
    # conflict (unless --reembed), never silently mixed in.
    remember: bool = False
    space: bool = False
    metavar: str = ""
    short: str = ""  # a one-letter flag besides the long one ("-k")


def setting(default: Any, **meta: Any) -> Any:
    """A settings field: its default plus its :class:`Meta`."""
    return field(default=default, metadata={"funcpipe": Meta(**meta)})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """Every tunable of a run, resolved and validated.

    >>> RunSettings()                                   # the built-in defaults
    >>> RunSettings(chunk_size=400, overlap=50)
    >>> resolve_settings(flags={"max_rate": 0.5}, env={}, config_file=None)
    """

    index: str = setting(
        "funcpipe.db",
        section="ingest",
        help="the index: an SQLite file, or postgresql://user@host/db",
        commands=EVERY,
        metavar="FILE|URL",
    )
    max_rate: float = setting(
        0.2, section="ingest", help="the breaker trips when failed/seen exceeds this", lo=0, hi=1
    )
    min_samples: int = setting(
        100, section="ingest", help="items seen before the breaker may trip", lo=1, hi=1e9
    )
    batch_size: int = setting(
        64, section="ingest", help="chunks per embedding request", lo=1, hi=2048
    )
    # The in-flight window, the worker threads and the connection pool all grow with it.
    concurrency: int = setting(
        4, section="ingest", help="embedding requests in flight (HTTP embedders)", lo=1, hi=64
    )
    commit_every: int = setting(
        256, section="ingest", help="chunks per index transaction", lo=1, hi=100_000
    )
    report: str = setting("text", section="ingest", help="report on stderr", choices=REPORTS)
    lock_timeout: float = setting(
        10.0,
        section="ingest",
        help="seconds a run waits for another run's lock on the index",
        lo=0,
        hi=86400,
    )
    chunk_size: int = setting(
        800,
        section="chunker",
        help="characters per chunk, at most",
        lo=1,
        hi=1_000_000,
        remember=True,
        space=True,
    )
    overlap: int = setting(
        100,
        section="chunker",
        help="characters shared by consecutive chunks",
        lo=0,
        hi=999_999,
        remember=True,
        space=True,
    )
    embedder: str = setting(
        "hash",
        section="embedder",
        help=f"how chunks become vectors: {registry.describe()}",
        choices=EMBEDDERS,
        remember=True,
        space=True,
    )
    model: str = setting(
        "",
        section="embedder",
        help="model name, or for onnx the model directory ('' = the embedder's own default)",
        remember=True,
        space=True,
    )
    dim: int = setting(
        384,
        section="embedder",
        help="vector dimension of the hash embedder",
        lo=1,
        hi=65536,
        remember=True,
        space=True,
    )
    url: str = setting(
        "",
        section="embedder",
        help="base URL of the embedding server",
        commands=QUERY,
        remember=True,
        metavar="URL",
    )
    timeout: float = setting(
        30.0, section="embedder", help="HTTP read timeout, seconds", lo=0.001, hi=3600,
        commands=QUERY,
    )  # fmt: skip
    connect_timeout: float = setting(
        5.0, section="embedder", help="HTTP connect timeout, seconds", lo=0.001, hi=3600,
        commands=QUERY,
    )  # fmt: skip
    max_attempts: int = setting(
        4, section="embedder", help="attempts per request, retries included", lo=1, hi=100,
        commands=QUERY,
    )  # fmt: skip
    retry_budget: float = setting(
        45.0,
        section="embedder",
        help="seconds one batch may spend, waits and attempts together",
        lo=0.001,
        hi=86400,
        commands=QUERY,
    )
    encoding_format: str = setting(
        "base64",
        section="embedder",
        help="how an OpenAI-compatible server sends vectors (float is used anyway when a "
        "server refuses base64)",
        choices=("base64", "float"),
        commands=QUERY,
        remember=True,
    )
    max_answer_mb: float = setting(
        0.0,
        section="embedder",
        help="largest embedding answer read, MiB (0 = sized from the batch and dimension)",
        lo=0,
        hi=1e5,
        commands=QUERY,
    )
    threads: int = setting(
        0,
        section="embedder",
        help="threads one onnx model computes with (0 = one per core)",
        lo=0,
        hi=256,
        commands=QUERY,
    )
    pooling: str = setting(
        "auto",
        section="embedder",
        help="how an onnx model's token vectors become one (auto = what the model's "
        "config says, else mean)",
        choices=POOLINGS,
        remember=True,
        space=True,
    )
    query_prefix: str = setting(
        "",
        section="embedder",
        help="text put before each search query by an onnx model (e5: 'query: ')",
        remember=True,
        space=True,
        metavar="TEXT",
    )
    passage_prefix: str = setting(
        "",
        section="embedder",
        help="text put before each chunk by an onnx model (e5: 'passage: ')",
        remember=True,
        space=True,
        metavar="TEXT",
    )
    include: tuple[str, ...] = setting(
        (),
        section="walk",
        help="only files matching one of these globs (path or name; repeatable)",
        commands=WALKING,
        metavar="GLOB",
    )
    exclude: tuple[str, ...] = setting(
        (),
        section="walk",
        help="skip files and folders matching these globs (repeatable)",
        commands=WALKING,
        metavar="GLOB",
    )
    hidden: bool = setting(
        False,
        section="walk",
        help="also walk hidden files and folders (.git stays hidden)",
        commands=WALKING,
    )
    max_file_mb: float = setting(
        256.0, section="walk", help="skip files larger than this, MiB", lo=0.001, hi=1e6,
        commands=WALKING,
    )  # fmt: skip
    ignore: bool = setting(
        True,
        section="walk",
        help="honour .gitignore and .ignore files (--no-ignore walks everything)",
        commands=WALKING,
    )
    # Remembered: it changes the extracted text, so later runs on the index read alike.
    encoding: str = setting(
        "auto",
        section="read",
        help="text encoding: auto (UTF-8, else detected and recorded) or a codec to force "
        "(utf-8 = strict)",
        commands=WALKING,
        remember=True,
        metavar="CODEC",
    )
    # `funcpipe verify` always reads and hashes: it is the check of what this one trusts.
    change_check: str = setting(
        "stat",
        section="read",
        help="how a re-run finds unchanged files: stat (inode, size, mtime and ctime as "
        "stored with a file read 2 s or more after its last write; else read) or content "
        "(read and hash every file)",
        choices=CHANGE_CHECKS,
    )

    # PostgreSQL only (an SQLite index is one file, written by one run at a time).
    collection: str = setting(
        "funcpipe",
        section="postgres",
        help="the schema that holds the index in the database; one vector space each",
        commands=EVERY,
        metavar="NAME",
    )
    hnsw: bool = setting(
        False,
        section="postgres",
        help="build an HNSW index: approximate search, for semantic embedders (exact otherwise)",
    )
    lease: float = setting(
        30.0,
        section="postgres",
        help="seconds a worker's claim on files and contents lasts unrenewed (then others "
        "take them over)",
        lo=0.5,
        hi=86400,
    )
    claim_files: int = setting(
        8, section="postgres", help="files a worker claims at a time", lo=1, hi=10_000
    )
    # Binary formats are parsed in worker processes (readers/pool.py); a file over
    # either limit fails alone (READ/TIMEOUT, READ/MEMORY) and the run goes on.
    parse_timeout: float = setting(
        60.0, section="parse", help="seconds one PDF or DOCX may take to parse", lo=0.01,
        hi=86400,
    )  # fmt: skip
    parse_memory_mb: int = setting(
        1024, section="parse", help="memory one PDF or DOCX parse may use, MiB", lo=16,
        hi=1_000_000,
    )  # fmt: skip
    # eval measures every mode at depth 10, so these three belong to search alone.
    mode: str = setting(
        "hybrid",
        section="search",
        help="hybrid (BM25 and cosine fused), vector (cosine) or lexical (BM25)",
        choices=SEARCH_MODES,
        commands=SEARCHING,
    )
    top: int = setting(
        5, section="search", help="how many results", lo=1, hi=10_000, commands=SEARCHING,
        short="-k",
    )  # fmt: skip
    min_score: float = setting(
        0.0,
        section="search",
        help="drop results scoring below this: a cosine (vector), the text's BM25 plus the "
        "title/path gain (lexical) or a fused score in 0..1 (hybrid)",
        lo=-1,
        hi=1e6,
        commands=SEARCHING,
    )

    def __post_init__(self) -> None:
        for s in SETTINGS:
            check_value(s, getattr(self, s.name))
        check_encoding(self.encoding)
        kind = registry.kind_of(self.embedder)
        if kind.needs_url and not self.url:
            raise ConfigError(f"--embedder {self.embedder} needs --url (the server's base URL)")
        if kind.needs_model and not self.model:
            raise ConfigError(f"--embedder {self.embedder} needs --model {kind.model_hint}")
        if kind.model_is_path:
            # One directory, one name: the index remembers it, and a search from another
            # folder must find the same model.
            object.__setattr__(self, "model", _absolute(self.model))
        self.chunker  # noqa: B018  (validates chunk_size / overlap now, not at first use)

    @property
    def chunker(self) -> ChunkerSettings:
        return ChunkerSettings(chunk_size=self.chunk_size, overlap=self.overlap)

    def walk_options(self) -> WalkOptions:
        return WalkOptions(
            include=self.include,
            exclude=self.exclude,
            hidden=self.hidden,
            max_file_bytes=int(self.max_file_mb * (1 << 20)),
            ignore_files=self.ignore,
        )

    def index_options(self) -> IndexOptions:
        return IndexOptions(
            lock_timeout_s=self.lock_timeout,
            collection=self.collection,
            hnsw=self.hnsw,
            lease_s=self.lease,
            claim_files=self.claim_files,
        )

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(timeout_s=self.parse_timeout, memory_mb=self.parse_memory_mb)

    def remembered(self) -> dict[str, Any]:
        """What an index built with these settings remembers of them (the URL without
        its credentials: an index file is not a place for secrets)."""
        values = {s.name: getattr(self, s.name) for s in SETTINGS if s.remember}
        values["url"] = without_credentials(self.url)
        return values


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the rest of the program sees it: a field of :class:`RunSettings`
    with its type (``kind``: str, int, float, bool or list) and :class:`Meta`."""

    name: str
    kind: type
    default: Any
    meta: Meta

    @property
    def section(self) -> str:
        return self.meta.section

    @property
    def help(self) -> str:
        return self.meta.help

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "FUNCPIPE_" + self.name.upper()

    @property
    def remember(self) -> bool:
        return self.meta.remember

    def describe_default(self) -> str:
        """The default as a person reads it in help and tables."""
        value = self.default
        if self.kind is bool:
            return "on" if value else "off"
        if self.kind is list:
            return ", ".join(value) if value else "none"
        return str(value) if value != "" else "none"

    def describe_range(self) -> str:
        m = self.meta
        if m.choices:
            return "|".join(m.choices)
        if m.lo is not None and m.hi is not None:
            return f"{_num(m.lo)}..{_num(m.hi)}"
        return ""


def _kind(annotation: Any) -> type:
    if typing.get_origin(annotation) is tuple:
        return list
    assert annotation in (str, int, float, bool), annotation
    return typing.cast(type, annotation)


def _declared() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(RunSettings)
    return tuple(
        Setting(f.name, _kind(hints[f.name]), f.default, f.metadata["funcpipe"])
        for f in dataclasses.fields(RunSettings)
    )


SETTINGS: tuple[Setting, ...] = _declared()
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _num(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"


def check_value(s: Setting, value: Any) -> None:
    """Raise ``ConfigError`` unless ``value`` is allowed for ``s``."""
    m = s.meta
    if m.choices and value not in m.choices:
        raise ConfigError(f"{s.name} must be one of {', '.join(m.choices)}, got {value!r}")
    if s.kind in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{s.name} must be a finite number, got {value!r}")
        lo = -math.inf if m.lo is None else m.lo
        hi = math.inf if m.hi is None else m.hi
        if not lo <= value <= hi:
            raise ConfigError(f"{s.name} must be within [{_num(lo)}, {_num(hi)}], got {value!r}")


def coerce(s: Setting, value: Any, origin: str) -> Any:
    """Turn a TOML, environment or flag value into the setting's type, or explain."""
    kind = s.kind
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is list:
            if isinstance(value, str):
                return tuple(p for p in (v.strip() for v in value.split(",")) if p)
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError(value)
        if kind is int and isinstance(value, float | bool):
            raise ValueError(value)
        if kind is str and not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {s.name} must be {kind.__name__}, got {value!r}") from None


# -- layers and origins -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resolved value came from: ``flag``, ``env``, ``file``, ``index`` or
    ``default``, with the detail (``FUNCPIPE_X``, the file, the index)."""

    layer: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.layer} {self.detail}".strip()

    @property
    def explicit(self) -> bool:
        return self.layer in ("flag", "env", "file")


@dataclass(frozen=True, slots=True)
class Resolution:
    """Resolved settings and the origin of every value."""

    settings: RunSettings
    origins: Mapping[str, Origin]


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            s = BY_NAME.get(key)
            if s is None or s.section != section:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            values[key] = coerce(s, value, str(path))
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {s.name: coerce(s, env[s.env], s.env) for s in SETTINGS if env.get(s.env, "") != ""}


def _layers(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None,
    remembered: Mapping[str, Any] | None,
    index_name: str,
) -> tuple[dict[str, Any], dict[str, Origin]]:
    merged: dict[str, Any] = {}
    origins: dict[str, Origin] = {s.name: Origin("default") for s in SETTINGS}

    def take(values: Mapping[str, Any], origin: Origin | None) -> None:
        for name, value in values.items():
            merged[name] = value
            origins[name] = origin if origin is not None else Origin("env", BY_NAME[name].env)

    for name, value in (remembered or {}).items():
        if name in BY_NAME and BY_NAME[name].remember:
            merged[name] = coerce(BY_NAME[name], value, f"index {index_name}")
            origins[name] = Origin("index", index_name)
    if config_file is not None:
        take(_from_toml(config_file), Origin("file", str(config_file)))
    take(_from_env(env), None)
    for name, value in flags.items():
        if value is None:
            continue
        s = BY_NAME.get(name)
        if s is None:
            raise ConfigError(f"unknown setting {name!r}")
        merged[name] = coerce(s, value, s.flag)
        origins[name] = Origin("flag", s.flag)
    return merged, origins


def resolve(
    *,
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    remembered: Mapping[str, Any] | None = None,
    index_name: str = "",
    rebuild: bool = False,
) -> Resolution:
    """Merge the layers (see the module docstring); ``None`` flags are unset.

    ``remembered`` is what the index ``index_name`` recorded of how it was built; it
    replaces the built-in defaults. An explicit value of a vector-space setting that
    differs from it is refused with one line naming both values and the way out —
    unless ``rebuild`` (``--reembed``), which builds the index anew with it.
    """
    env = os.environ if env is None else env
    merged, origins = _layers(flags, env, config_file, remembered, index_name)
    if remembered and not rebuild:
        for s in SETTINGS:
            if not s.meta.space or s.name not in remembered or not origins[s.name].explicit:
                continue
            built = coerce(s, remembered[s.name], f"index {index_name}")
            value = merged[s.name]
            kind = registry.KINDS.get(merged.get("embedder", "hash"))
            if s.name == "model" and kind is not None and kind.model_is_path:
                value = _absolute(value)  # as RunSettings keeps it
            if value != built:
                raise IndexMismatchError(
                    f"{origins[s.name]} sets {s.name} = {value!r}, but the index "
                    f"{index_name} was built with {s.name} = {built!r}: drop the setting to "
                    "use the index's own, use another --index (or --collection), or --reembed "
                    "to rebuild it"
                )
    return Resolution(RunSettings(**merged), origins)


def resolve_settings(
    *,
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> RunSettings:
    """Merge defaults < config file < environment < flags (``None`` flags are unset)."""
    return resolve(flags=flags, env=env, config_file=config_file).settings


# -- the derived documents ----------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def default_toml() -> str:
    """``configs/default.toml``: every setting with its default and help, by section."""
    lines = [
        "# funcpipe settings: every setting, with its built-in default.",
        "#",
        "# Use with `funcpipe ingest PATH --config configs/default.toml` (copy and edit it).",
        "# Precedence, highest first: command-line flags > FUNCPIPE_* environment variables >",
        "# this file > what the index remembers > built-in defaults. The environment variable",
        "# of a setting is FUNCPIPE_ plus its name in capitals (FUNCPIPE_MAX_RATE=0.1); the",
        "# flag is --max-rate. API keys are never read from this file: they come from the",
        "# environment only. Generated by `funcpipe config --defaults`.",
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for s in SETTINGS:
            if s.section == section:
                allowed = s.describe_range()
                note = s.help + (f" ({allowed})" if allowed else "")
                lines.append(f"{s.name} = {_toml_value(s.default)}".ljust(27) + f"# {note}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's settings table: flag, environment variable, TOML key, default, help."""
    rows = [
        "| flag | environment | TOML | default | allowed | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        rows.append(
            f"| `{s.flag}` | `{s.env}` | `[{s.section}] {s.name}` | {s.describe_default()} "
            f"| {s.describe_range().replace('|', ', ')} | {s.help} |"
        )
    return "\n".join(rows) + "\n"


__all__ = [
    "BY_NAME",
    "SETTINGS",
    "Origin",
    "Resolution",
    "RunSettings",
    "Setting",
    "default_toml",
    "markdown_table",
    "resolve",
    "resolve_settings",
]
