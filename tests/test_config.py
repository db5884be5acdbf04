from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from funcpipe_rag.config import SETTINGS, RunSettings, resolve_settings
from funcpipe_rag.errors import ConfigError
from tests.cli.helpers import run_cli

DEFAULT_TOML = Path(__file__).resolve().parents[1] / "configs" / "default.toml"


def test_default_toml_documents_every_setting_with_its_default() -> None:
    doc = tomllib.loads(DEFAULT_TOML.read_text())
    flat = {key: (section, value) for section, table in doc.items() for key, value in table.items()}
    assert set(flat) == {s.name for s in SETTINGS} == {f.name for f in fields(RunSettings)}
    defaults = RunSettings()
    for s in SETTINGS:
        section, value = flat[s.name]
        assert section == s.section, s.name
        expected = getattr(defaults, s.name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, s.name
        assert s.default == expected


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ingest]\nmax_rate = 0.3\nmin_samples = 7\n[chunker]\nchunk_size = 500\n")
    env = {"FUNCPIPE_MIN_SAMPLES": "9", "FUNCPIPE_CHUNK_SIZE": "600"}
    s = resolve_settings(flags={"chunk_size": 700, "overlap": None}, env=env, config_file=cfg)
    assert (s.max_rate, s.min_samples, s.chunk_size, s.overlap) == (0.3, 9, 700, 100)


def test_env_values_are_typed_and_lists_split_on_commas() -> None:
    s = resolve_settings(flags={}, env={"FUNCPIPE_HIDDEN": "yes", "FUNCPIPE_EXCLUDE": "a, b"})
    assert s.hidden is True and s.exclude == ("a", "b")
    with pytest.raises(ConfigError, match="FUNCPIPE_MAX_RATE: max_rate must be float"):
        resolve_settings(flags={}, env={"FUNCPIPE_MAX_RATE": "lots"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ingest]\nbogus = 1\n", r"unknown setting \[ingest\] bogus"),
        ("[chunker]\nindex = 'x'\n", r"unknown setting \[chunker\] index"),
        ("[ingest]\nmin_samples = 'many'\n", "min_samples must be int"),
        ("[ingest]\nmin_samples = 1.5\n", "min_samples must be int"),
        ("not toml = = =", "cannot read config file"),
        ("max_rate = 0.1\n", "must be a \\[section\\]"),
    ],
)
def test_bad_config_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        resolve_settings(flags={}, env={}, config_file=cfg)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rate": 1.5}, "max_rate"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"overlap": 800}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"embedder": "openai"}, "needs --url"),
        ({"report": "xml"}, "report must be one of"),
        ({"timeout": 0}, "timeout"),
        ({"max_answer_mb": -1.0}, "max_answer_mb must be within"),
        ({"encoding_format": "int8"}, "encoding_format must be one of base64, float"),
    ],
)
def test_settings_validate_when_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunSettings(**kwargs)  # type: ignore[arg-type]


def test_api_keys_are_not_settings() -> None:
    assert not any("key" in s.name for s in SETTINGS)


def test_example_configs_load() -> None:
    for name, embedder in (("openai", "openai"), ("ollama", "ollama"), ("tei", "tei")):
        s = resolve_settings(flags={}, env={}, config_file=DEFAULT_TOML.with_name(f"{name}.toml"))
        assert s.embedder == embedder and s.url.startswith("http")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_file_mb", "nan"),
        ("timeout", "nan"),
        ("retry_budget", "inf"),
        ("max_rate", "nan"),
        ("lock_timeout", "-inf"),
        ("concurrency", "100000"),
        ("batch_size", "1000000"),
        ("dim", "0"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        resolve_settings(flags={}, env={f"FUNCPIPE_{name.upper()}": value})


def test_concurrency_has_a_sane_maximum_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("hello\n")
    proc = run_cli("ingest", str(tmp_path), "--index", str(tmp_path / "x.db"),
                   "--concurrency", "100000")  # fmt: skip
    assert proc.returncode == 2
    assert "concurrency must be within [1, 64]" in proc.stderr
    assert not (tmp_path / "x.db").exists()
