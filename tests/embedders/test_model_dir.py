"""Reading a model directory: the export layouts, the model's own limits and pooling,
and one clear line for whatever is missing (nothing is ever downloaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from funcpipe_rag.embedders.model_dir import DEFAULT_MAX_LENGTH, find_model
from funcpipe_rag.errors import ConfigError
from tests.embedders.minilm import minilm_dir


def folder(root: Path, files: dict[str, Any]) -> Path:
    """A model directory: ``model.onnx`` and ``tokenizer.json`` as placeholders (never
    read here), JSON files from dicts, raw text as given."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


BASIC = {"model.onnx": "x", "tokenizer.json": "{}"}


def test_the_real_model_directory() -> None:
    files = find_model(minilm_dir())
    assert files.model == minilm_dir() / "model.onnx"
    assert files.tokenizer == minilm_dir() / "tokenizer.json"
    assert files.max_length == 256  # sentence_bert_config.json, not the tokenizer's 128
    assert files.pooling == "mean"


def test_the_onnx_subfolder_layout(tmp_path: Path) -> None:
    root = folder(tmp_path / "m", {"onnx/model.onnx": "x", "tokenizer.json": "{}"})
    assert find_model(root).model == root / "onnx" / "model.onnx"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"tokenizer.json": "{}"}, r"has no model\.onnx \(nor onnx/model\.onnx\);"),
        ({"model.onnx": "x"}, r"has no tokenizer\.json;"),
        ({}, r"has no model\.onnx \(nor onnx/model\.onnx\) and no tokenizer\.json;"),
        ({"model.onnx/inner": "x", "tokenizer.json": "{}"}, r"has no model\.onnx"),
    ],
)
def test_missing_files_are_named_in_one_line(
    tmp_path: Path, files: dict[str, Any], message: str
) -> None:
    root = folder(tmp_path / "m", files)
    with pytest.raises(ConfigError, match=message) as caught:
        find_model(root)
    assert "\n" not in str(caught.value) and "never downloads" in str(caught.value)


def test_a_missing_directory_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model directory .*nowhere does not exist"):
        find_model(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        find_model(tmp_path / "file")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, DEFAULT_MAX_LENGTH),
        ({"config.json": {"max_position_embeddings": 128}}, 128),
        ({"tokenizer_config.json": {"model_max_length": 384}}, 384),
        ({"tokenizer_config.json": {"model_max_length": 1e30}}, DEFAULT_MAX_LENGTH),
        (
            {
                "sentence_bert_config.json": {"max_seq_length": 200},
                "tokenizer_config.json": {"model_max_length": 512},
            },
            200,
        ),
        (
            {
                "sentence_bert_config.json": {"max_seq_length": 8192},
                "config.json": {"max_position_embeddings": 512},
            },
            512,  # never past the position embeddings
        ),
    ],
)
def test_max_length_comes_from_the_models_own_files(
    tmp_path: Path, files: dict[str, Any], expected: int
) -> None:
    assert find_model(folder(tmp_path / "m", {**BASIC, **files})).max_length == expected


def _pooling_config(**modes: bool) -> dict[str, Any]:
    return {"word_embedding_dimension": 384, **{f"pooling_mode_{k}": v for k, v in modes.items()}}


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ({"mean_tokens": True, "cls_token": False}, "mean"),
        ({"cls_token": True, "mean_tokens": False}, "cls"),
        ({"max_tokens": True}, "max"),
        ({"mean_sqrt_len_tokens": True}, "mean"),
    ],
)
def test_pooling_comes_from_the_pooling_config(
    tmp_path: Path, modes: dict[str, bool], expected: str
) -> None:
    root = folder(tmp_path / "m", {**BASIC, "1_Pooling/config.json": _pooling_config(**modes)})
    assert find_model(root).pooling == expected
    assert find_model(root, pooling="max").pooling == "max"  # the setting overrides


def test_pooling_follows_modules_json_to_its_folder(tmp_path: Path) -> None:
    root = folder(
        tmp_path / "m",
        {
            **BASIC,
            "modules.json": [
                {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "pool", "type": "sentence_transformers.models.Pooling"},
            ],
            "pool/config.json": _pooling_config(cls_token=True),
        },
    )
    assert find_model(root).pooling == "cls"


@pytest.mark.parametrize(
    "modes", [{"lasttoken": True}, {"mean_tokens": True, "max_tokens": True}, {}]
)
def test_a_pooling_funcpipe_does_not_do_is_refused(tmp_path: Path, modes: dict[str, bool]) -> None:
    root = folder(tmp_path / "m", {**BASIC, "1_Pooling/config.json": _pooling_config(**modes)})
    with pytest.raises(ConfigError, match=r"choose one with --pooling mean\|cls\|max"):
        find_model(root)
    assert find_model(root, pooling="mean").pooling == "mean"


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    root = folder(tmp_path / "m", {**BASIC, "sentence_bert_config.json": "{not json"})
    with pytest.raises(ConfigError, match=r"sentence_bert_config\.json is not valid JSON"):
        find_model(root)
