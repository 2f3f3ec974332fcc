# kitledger: `make run` (the main job on embedded defaults) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := contracts/node_modules/.installed-stamp

LOCKS := requirements/build.lock requirements/dev.lock

.PHONY: run test lint typecheck unit setup lock node system bench bench-api faults clean

setup: $(STAMP)

# The venv is exactly the lock: made afresh whenever pyproject.toml or a lock changes (so a
# package dropped from the lock leaves too), every file checked against the lock's hashes, then
# the project itself on top without its dependencies.
$(STAMP): pyproject.toml $(LOCKS)
	rm -rf $(VENV) kitledger.egg-info  # an older in-tree egg-info would shadow the entry points
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/build.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --quiet --no-deps --no-build-isolation -e .
	touch $@

# Re-resolve requirements/*.lock after editing dependencies in pyproject.toml (needs the
# package index; tests/test_dependency_lock.py fails until the locks match pyproject.toml).
# Pins that still satisfy pyproject stay; `make lock UPGRADE=1` moves all to the newest.
lock: | $(STAMP)
	$(BIN)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

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
	$(BIN)/python bench/head_map.py
	$(BIN)/python bench/passwords.py
	$(BIN)/python bench/planning.py
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
	$(BIN)/python bench/scale.py

# The fault suite at full length (tests/faults): every fault against the real processes, three
# runs each (agent kill -9: 30 kills), then the table of runs, stored, lost and recovery times.
# `make test` runs its quick set only.
faults: setup node system
	KITLEDGER_FAULTS=full $(BIN)/pytest -p no:cacheprovider -o timeout=900 tests/faults

clean:
	rm -rf $(VENV) contracts/node_modules .pytest_cache .mypy_cache .ruff_cache
