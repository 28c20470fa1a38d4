# newsmon — every command sets up what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install demo test unit lint typecheck bench up clean-data

help:
	@echo "make demo   - set up, then run the whole pipeline on the bundled sample site"
	@echo "make test   - set up, then run the test suite"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - benchmarks (needs ../shared/eval)"
	@echo "make up     - run all services with examples/newsmon.yaml"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "newsmon needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	@$(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (pip's own warnings hidden; errors shown)"
	@$(BIN)/python -m pip install -qq --upgrade pip
	@$(BIN)/python -m pip install -qq -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/newsmon demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check contracts services tests benchmarks tools
	$(BIN)/ruff format --check contracts services tests benchmarks tools
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	@for bench in benchmarks/bench_*.py; do echo "== $$bench"; $(BIN)/python $$bench || exit 1; done

up: $(STAMP)
	$(BIN)/newsmon up --config examples/newsmon.yaml

clean-data:
	rm -rf .newsmon
