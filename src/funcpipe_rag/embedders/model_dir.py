"""A local model directory in the usual export layout, read without running anything.

===============================  ========  ==========================================
file                             needed    what is read from it
===============================  ========  ==========================================
``model.onnx``                   yes       the network (or ``onnx/model.onnx``)
``tokenizer.json``               yes       a ``tokenizers`` tokenizer
``sentence_bert_config.json``    no        ``max_seq_length``
``modules.json``                 no        where the pooling module's config lies
``1_Pooling/config.json``        no        ``pooling_mode_*`` (mean, cls, max)
``tokenizer_config.json``        no        ``model_max_length``
``config.json``                  no        ``max_position_embeddings`` (a hard cap)
===============================  ========  ==========================================

This is what sentence-transformers and Hugging Face exports write. Nothing is ever
downloaded: a missing directory or file is one :class:`ConfigError` line naming it.
Pure file reading; no onnxruntime here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_MAX_LENGTH = 512  # when no file says: BERT-style models' position limit
_ABSURD = 1_000_000  # tokenizer_config's "no limit" sentinel is ~1e30
_POOLINGS = {
    "pooling_mode_mean_tokens": "mean",
    # Differs from mean by one factor per text, which L2 normalisation removes.
    "pooling_mode_mean_sqrt_len_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """What a model directory holds, resolved.

    >>> find_model("models/all-MiniLM-L6-v2")
    ModelFiles(root=..., model=.../model.onnx, tokenizer=.../tokenizer.json,
               max_length=256, pooling='mean')
    >>> find_model("models/bge-small", pooling="cls").pooling
    'cls'
    """

    root: Path
    model: Path
    tokenizer: Path
    max_length: int  # tokens per text, special tokens included; longer texts are cut
    pooling: str  # mean, cls or max


def find_model(root: str | Path, *, pooling: str = "auto") -> ModelFiles:
    """Resolve the files of the model directory ``root``.

    ``pooling`` "auto" takes the pooling module's config (mean when there is none);
    another value overrides it.
    """
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"model directory {root} does not exist")
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory (--model names the model's directory)")
    model = next(
        (p for p in (root / "model.onnx", root / "onnx" / "model.onnx") if p.is_file()), None
    )
    tokenizer = root / "tokenizer.json"
    missing = []
    if model is None:
        missing.append("model.onnx (nor onnx/model.onnx)")
    if not tokenizer.is_file():
        missing.append("tokenizer.json")
    if missing or model is None:
        raise ConfigError(
            f"model directory {root} has no {' and no '.join(missing)}; funcpipe never "
            "downloads a model: export or copy it there"
        )
    return ModelFiles(
        root=root,
        model=model,
        tokenizer=tokenizer,
        max_length=_max_length(root),
        pooling=pooling if pooling != "auto" else _pooling(root),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return doc


def _positive_int(doc: dict[str, Any] | None, key: str) -> int | None:
    value = None if doc is None else doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 < value < _ABSURD else None


def _max_length(root: Path) -> int:
    """The model's own limit, in the order sentence-transformers applies them: its
    ``max_seq_length``, else the tokenizer's ``model_max_length``; never past the
    network's position embeddings."""
    chosen = _positive_int(_read_json(root / "sentence_bert_config.json"), "max_seq_length")
    if chosen is None:
        chosen = _positive_int(_read_json(root / "tokenizer_config.json"), "model_max_length")
    positions = _positive_int(_read_json(root / "config.json"), "max_position_embeddings")
    if chosen is None:
        chosen = positions or DEFAULT_MAX_LENGTH
    return min(chosen, positions) if positions else chosen


def _pooling(root: Path) -> str:
    """The pooling the model's sentence-transformers config names; mean when none."""
    folder = "1_Pooling"
    modules = root / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read {modules}: {exc}") from None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("type", "")).endswith("Pooling"):
                folder = str(entry.get("path", folder))
    config = _read_json(root / folder / "config.json")
    if config is None:
        return "mean"
    modes = {key for key, on in config.items() if key.startswith("pooling_mode_") and on is True}
    if len(modes) == 1 and (mode := next(iter(modes))) in _POOLINGS:
        return _POOLINGS[mode]
    named = ", ".join(sorted(modes)) or "none"
    raise ConfigError(
        f"{root / folder / 'config.json'} asks for pooling {named}, which funcpipe does not "
        "do; choose one with --pooling mean|cls|max"
    )


__all__ = ["DEFAULT_MAX_LENGTH", "ModelFiles", "find_model"]
