# kitledger: `make run` (the main job on embedded defaults) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := contracts/node_modules/.installed-stamp

.PHONY: run test lint typecheck unit setup node system bench bench-api clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node: $(NODE_STAMP)

$(NODE_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

system:
	scripts/system-deps.sh test

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest

test: setup node system lint unit

# The whole stack on embedded defaults: SQLite, Mosquitto on a free port, the embedded chain,
# the API with ingest and anchorer, and three simulated readers running a scripted day.
run: setup
	scripts/system-deps.sh run
	$(BIN)/kitledger up

bench: setup node system
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/reader_decode.py
	$(BIN)/python bench/agent.py
	$(BIN)/python bench/anchoring.py
	$(BIN)/python bench/verify.py
	$(MAKE) bench-api

# The API's figures: ingest and decision latency on SQLite and PostgreSQL with one and
# two workers, then the location query over 1,000,000 assets and 10,000,000 events (seeding
# takes a few minutes per database), and ingest's instructions per observation (valgrind):
# the figure that stays put when this shared machine's speed does not.
bench-api: setup system
	$(BIN)/python bench/api_ingest.py
	$(BIN)/python bench/api_ingest_instructions.py
	$(BIN)/python bench/api_location.py --db sqlite
	$(BIN)/python bench/api_location.py --db postgresql

clean:
	rm -rf $(VENV) contracts/node_modules .pytest_cache .mypy_cache .ruff_cache
