# Set-up and the main jobs. Everything installs into .venv inside the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench sample clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "basiskit needs Python 3.11+, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/basiskit backtest pure_lending_usdt

lint: $(STAMP)
	$(BIN)/ruff check src tests

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q

FULL_DATA ?= ../shared/market-data

bench: $(STAMP)
	$(BIN)/python -m basiskit.bench $(if $(wildcard $(FULL_DATA)/MANIFEST.json),--data $(FULL_DATA))

sample: $(STAMP)
	$(BIN)/basiskit data sample --source $(FULL_DATA)

clean:
	rm -rf $(VENV) build src/*.egg-info
