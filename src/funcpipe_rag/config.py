"""Settings of an ingest run: one registry, four layers, one frozen result.

Precedence, highest first: command-line flags > ``FUNCPIPE_*`` environment variables >
the ``--config`` TOML file > built-in defaults. Every setting is declared once in
:data:`SETTINGS` (name, TOML section, type, default, help); the environment variable is
``FUNCPIPE_`` + the upper-cased name, the TOML key is the name inside its section, and
the flag is ``--name-with-dashes``. ``configs/default.toml`` documents all of them.

Secrets are not settings: API keys come from the environment only (see the embedders)
and never appear in a config object, its ``repr`` or any output.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .chunking.splitter import ChunkerSettings
from .errors import ConfigError
from .sources import WalkOptions

EMBEDDERS = ("hash", "openai", "ollama", "tei")
REPORTS = ("text", "json", "none")


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    section: str
    kind: type
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("index", "ingest", str, "funcpipe.db", "SQLite index file"),
    Setting("max_rate", "ingest", float, 0.2, "error rate above which the breaker trips"),
    Setting("min_samples", "ingest", int, 100, "items seen before the breaker may trip"),
    Setting("batch_size", "ingest", int, 64, "chunks per embedding request"),
    Setting("concurrency", "ingest", int, 4, "embedding requests in flight"),
    Setting("commit_every", "ingest", int, 256, "chunks per index transaction"),
    Setting("report", "ingest", str, "text", "report on stderr: text, json or none"),
    Setting("lock_timeout", "ingest", float, 10.0, "seconds to wait for another run's lock"),
    Setting("chunk_size", "chunker", int, 800, "chunk size in characters"),
    Setting("overlap", "chunker", int, 100, "overlap between chunks in characters"),
    Setting("embedder", "embedder", str, "hash", "hash, openai, ollama or tei"),
    Setting("model", "embedder", str, "", "model name ('' = the embedder's default)"),
    Setting("dim", "embedder", int, 384, "vector dimension of the hash embedder"),
    Setting("url", "embedder", str, "", "base URL of an embedding server"),
    Setting("timeout", "embedder", float, 30.0, "HTTP read timeout in seconds"),
    Setting("connect_timeout", "embedder", float, 5.0, "HTTP connect timeout in seconds"),
    Setting("max_attempts", "embedder", int, 4, "attempts per request, retries included"),
    Setting(
        "retry_budget", "embedder", float, 45.0, "seconds one batch may spend, retries included"
    ),
    Setting("encoding_format", "embedder", str, "base64", "OpenAI answers as base64 or float"),
    Setting(
        "max_answer_mb", "embedder", float, 0.0, "largest answer read, MiB (0 = from the batch)"
    ),
    Setting("include", "walk", list, [], "glob patterns a file must match (any)"),
    Setting("exclude", "walk", list, [], "glob patterns that exclude a file or folder"),
    Setting("hidden", "walk", bool, False, "also walk hidden files and folders"),
    Setting("max_file_mb", "walk", float, 256.0, "skip files larger than this (MiB)"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """Every tunable of a run, resolved and validated.

    >>> RunSettings()                                   # the built-in defaults
    >>> RunSettings(chunk_size=400, overlap=50)
    >>> resolve_settings(flags={"max_rate": 0.5}, env={}, config_file=None)
    """

    index: str = "funcpipe.db"
    max_rate: float = 0.2
    min_samples: int = 100
    batch_size: int = 64
    concurrency: int = 4
    commit_every: int = 256
    report: str = "text"
    lock_timeout: float = 10.0
    chunk_size: int = 800
    overlap: int = 100
    embedder: str = "hash"
    model: str = ""
    dim: int = 384
    url: str = ""
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_attempts: int = 4
    retry_budget: float = 45.0
    encoding_format: str = "base64"
    max_answer_mb: float = 0.0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    max_file_mb: float = 256.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_rate <= 1.0:
            raise ConfigError(f"max_rate must be within [0, 1], got {self.max_rate}")
        for name in ("min_samples", "batch_size", "concurrency", "commit_every", "max_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embedder not in EMBEDDERS:
            raise ConfigError(
                f"embedder must be one of {', '.join(EMBEDDERS)}, got {self.embedder!r}"
            )
        if self.report not in REPORTS:
            raise ConfigError(f"report must be one of {', '.join(REPORTS)}, got {self.report!r}")
        if self.embedder != "hash" and not self.url:
            raise ConfigError(f"--embedder {self.embedder} needs --url (the server's base URL)")
        if self.encoding_format not in ("float", "base64"):
            raise ConfigError(
                f"encoding_format must be float or base64, got {self.encoding_format!r}"
            )
        for name in ("timeout", "connect_timeout", "max_file_mb", "retry_budget"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_answer_mb < 0:
            raise ConfigError(f"max_answer_mb must be >= 0, got {self.max_answer_mb}")
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
        )


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    """Turn a TOML, environment or flag value into the setting's type, or explain."""
    kind = setting.kind
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
                return tuple(p for p in (s.strip() for s in value.split(",")) if p)
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError(value)
        if kind is int and isinstance(value, float | bool):
            raise ValueError(value)
        if kind is str and not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {setting.name} must be {kind.__name__}, got {value!r}"
        ) from None


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
            setting = _BY_NAME.get(key)
            if setting is None or setting.section != section:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            values[key] = _coerce(setting, value, str(path))
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        var = f"FUNCPIPE_{setting.name.upper()}"
        if var in env and env[var] != "":
            values[setting.name] = _coerce(setting, env[var], var)
    return values


def resolve_settings(
    *,
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> RunSettings:
    """Merge defaults < config file < environment < flags (``None`` flags are unset)."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(_from_toml(config_file))
    merged.update(_from_env(os.environ if env is None else env))
    for name, value in flags.items():
        if value is None:
            continue
        setting = _BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"unknown setting {name!r}")
        merged[name] = _coerce(setting, value, f"--{name.replace('_', '-')}")
    known = {f.name for f in fields(RunSettings)}
    return RunSettings(**{k: v for k, v in merged.items() if k in known})
