# Two commands set everything up on a fresh machine:
#   make run    install into .venv and start the service (SQLite, demo-ready)
#   make test   install into .venv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run demo bench bench-load test lint typecheck pytest clean gallery

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# A local, demo-ready service: SQLite audit store under var/, authentication OFF
# (CDS_AUTH=disabled, announced at start). Never run it like this in production.
run: install
	CDS_AUTH=$${CDS_AUTH:-disabled} $(BIN)/cds-service serve --host $(HOST) --port $(PORT)

# Latency, throughput and memory against a minimal floor app (docs/benchmarks.md); ~3 min.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Signed calls while slow clients trickle bytes: errors, p50 / p99, memory (docs/operations.md).
bench-load: install
	$(BIN)/python -m benchmarks.slow_clients $(BENCH_ARGS)

# FHIR sandbox + synthetic patients + the service, and the cards each patient's order gets.
demo: install
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The store tests also run against a throwaway PostgreSQL server (installed when missing).
pytest: install
	scripts/with-postgres.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The card gallery of docs/cards.md: every outcome's card photographed in the system's Chromium.
gallery: install
	$(BIN)/python -m tests.cards.gallery

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
