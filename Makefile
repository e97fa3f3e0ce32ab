# Two commands set everything up on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   a whole simulated store: broker, cloud, gateway, devices, events flowing
#   make test   ruff, mypy --strict and the test suite against real Mosquitto/pcscd/nfcpy
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CODE   := core drivers gateway provisioning simulators storegw
LINTED := $(CODE) tests bench

.PHONY: demo test lint typecheck pytest bench system-deps tools clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "storegw needs Python 3.11 or newer" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@bash scripts/system-deps.sh build
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@bash scripts/system-deps.sh test

# The AsyncAPI CLI into .tools/ (pinned, once); promtool and npm come with system-deps.
tools: system-deps
	@bash scripts/tools.sh

demo: $(STAMP)
	@bash scripts/system-deps.sh demo
	$(BIN)/storegw demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps tools
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP) system-deps
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .tools demo-data .mypy_cache .ruff_cache .pytest_cache
