"""The embedder registry: one table that settings, help, plan, ingest and search read."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from funcpipe_rag.config import BY_NAME, RunSettings
from funcpipe_rag.embedders import registry
from funcpipe_rag.embedders.registry import KINDS, content_space, planned_space, query_settings
from funcpipe_rag.errors import ConfigError
from funcpipe_rag.index import IndexSpace
from funcpipe_rag.policies.ledger import ResourceLedger
from tests.embedders.minilm import minilm_dir


def test_every_entry_opens_through_an_importable_function() -> None:
    for kind in KINDS.values():
        module, _, function = kind.opener.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), kind.name


def test_settings_and_help_come_from_the_registry() -> None:
    s = BY_NAME["embedder"]
    assert s.meta.choices == tuple(KINDS) == ("hash", "openai", "ollama", "tei", "onnx")
    for name in KINDS:
        assert name in s.help


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embedder": "onnx"}, "--embedder onnx needs --model DIR"),
        ({"embedder": "ollama", "url": "http://127.0.0.1:9"}, "--embedder ollama needs --model"),
        ({"embedder": "tei"}, "--embedder tei needs --url"),
        ({"embedder": "bert"}, "embedder must be one of hash, openai, ollama, tei, onnx"),
    ],
)
def test_what_an_entry_needs_is_checked_when_settings_are_built(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RunSettings(**kwargs)  # type: ignore[arg-type]


def test_an_onnx_model_directory_is_kept_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = RunSettings(embedder="onnx", model="models/m")
    assert s.model == str(tmp_path / "models" / "m")
    assert s.remembered()["model"] == s.model  # the index remembers one directory
    assert RunSettings(embedder="openai", url="http://h", model="models/m").model == "models/m"


def test_content_space_keys_of_existing_indexes_do_not_change() -> None:
    # Every stored chunk's content hash includes these strings: a change would make
    # every existing index re-embed everything.
    assert content_space(RunSettings()) == "hash:hash-ngram-v1:384"
    assert content_space(RunSettings(dim=96)) == "hash:hash-ngram-v1:96"
    tei = RunSettings(embedder="tei", url="http://h")
    assert content_space(tei) == "tei:default"
    openai = RunSettings(embedder="openai", url="http://h", model="m1")
    assert content_space(openai) == "openai:m1"


def test_an_onnx_space_includes_what_changes_a_passage_vector() -> None:
    base = RunSettings(embedder="onnx", model="/models/m")
    key = content_space(base)
    assert key.startswith("onnx:/models/m")
    assert content_space(dataclasses.replace(base, pooling="cls")) != key
    assert content_space(dataclasses.replace(base, passage_prefix="passage: ")) != key
    # The query prefix and the threads change no stored vector.
    assert content_space(dataclasses.replace(base, query_prefix="query: ", threads=1)) == key
    assert planned_space(base) == ("onnx", "/models/m", 0)


def test_query_settings_open_the_entry_the_index_was_built_with() -> None:
    hashed = query_settings(IndexSpace("hash", "hash-ngram-v1", 96, "c"), RunSettings())
    assert (hashed.embedder, hashed.dim) == ("hash", 96)
    tei = query_settings(
        IndexSpace("tei", "default", 8, "c"), RunSettings(url="http://127.0.0.1:9")
    )
    assert (tei.embedder, tei.model, tei.concurrency) == ("tei", "", 1)
    onnx = query_settings(IndexSpace("onnx", "/models/m", 384, "c"), RunSettings(threads=1))
    assert (onnx.embedder, onnx.model, onnx.threads) == ("onnx", "/models/m", 1)
    with pytest.raises(ConfigError, match="give the server's --url"):
        query_settings(IndexSpace("openai", "m1", 8, "c"), RunSettings())


def test_open_embedder_opens_each_in_process_entry() -> None:
    ledger = ResourceLedger()
    for settings in (RunSettings(), RunSettings(embedder="onnx", model=str(minilm_dir()))):
        embedder = registry.open_embedder(settings, ledger)
        try:
            assert embedder.name == settings.embedder
            assert embedder.concurrency == 1
            assert embedder.embed_query("a query").shape == (embedder.dim,)
        finally:
            embedder.close()
    assert ledger.snapshot().open_total == 0


def test_importing_the_library_imports_no_optional_runtime() -> None:
    code = (
        "import sys, funcpipe_rag.api.core, funcpipe_rag.embedders.registry;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'onnxruntime', 'tokenizers', 'typer', 'rich', 'httpx'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_registry_names_the_hash_model_as_the_hash_embedder_does() -> None:
    from funcpipe_rag.embedders.hashing import HASH_EMBEDDER_VERSION

    assert registry.HASH_EMBEDDER_VERSION == HASH_EMBEDDER_VERSION
    assert KINDS["hash"].default_model == HASH_EMBEDDER_VERSION


def test_only_the_hash_embedder_is_free() -> None:
    """Free: its vectors are stored with their chunks instead of as soon as they are
    made. Every embedder whose work is paid (a model, a server) is not."""
    assert [k.name for k in KINDS.values() if k.free] == ["hash"]
