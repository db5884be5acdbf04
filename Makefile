# Every target that needs the environment depends on the stamp file, so a fresh clone
# with only Python 3.11+ can run `make test` or `make demo` directly.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint bench demo samples clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,pdf,docs]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,pdf,docs,bench]'
	$(BIN)/python -m bench

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
