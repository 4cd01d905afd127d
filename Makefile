# Two commands set everything up on a fresh machine:
#   make run    install into .venv and start the service (SQLite, demo-ready)
#   make test   install into .venv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

# Exact dependency versions (constraints.txt; regenerate with `make constraints`).
CONSTRAINTS := constraints.txt

.PHONY: install run check demo bench bench-perf bench-load test lint typecheck pytest clean constraints gallery

$(BIN)/python:
	@echo "Creating the virtual environment $(VENV) ($(PYTHON))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py $(CONSTRAINTS) | $(BIN)/python
	@echo "Installing the service and its test tools into $(VENV) at the versions of $(CONSTRAINTS)"
	@echo "(first run: about 60 packages, a minute or two; later runs skip this)"
	$(BIN)/python -m pip install --progress-bar on -c $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(VENV)/.installed

# make run's settings, shared by make check so both see the same ones. Authentication is
# OFF (CDS_AUTH=disabled, announced at start) unless CDS_AUTH is set or CDS_TRUSTED_ISSUERS
# names a trusted-issuers file: then it is ON, and the public base URL defaults to the
# address served (http://HOST:PORT). Never run it with authentication off in production.
LOCAL_SETTINGS = \
	if [ -z "$${CDS_AUTH:-}" ]; then \
	  if [ -n "$${CDS_TRUSTED_ISSUERS:-}" ]; then export CDS_AUTH=enabled; \
	  else export CDS_AUTH=disabled; fi; \
	fi; \
	if [ "$$CDS_AUTH" != disabled ] && [ -z "$${CDS_PUBLIC_BASE_URL:-}" ]; then \
	  export CDS_PUBLIC_BASE_URL=http://$(HOST):$(PORT); \
	fi

# A local, demo-ready service: SQLite audit store under var/.
run: install
	@$(LOCAL_SETTINGS); echo "make run: CDS_AUTH=$$CDS_AUTH$${CDS_PUBLIC_BASE_URL:+ CDS_PUBLIC_BASE_URL=$$CDS_PUBLIC_BASE_URL}"; \
	exec $(BIN)/cds-service serve --host $(HOST) --port $(PORT)

# cds-service check with make run's settings (the same checks serve makes at start).
check: install
	@$(LOCAL_SETTINGS); exec $(BIN)/cds-service check

# Latency, throughput and memory against a minimal floor app (docs/benchmarks.md); ~3 min.
bench: install
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Every figure of docs/performance.md: in process vs floor, gunicorn at 1/4/16 clients, FHIR
# queries, memory over 100,000 calls (long; BENCH_ARGS="--memory-calls 0" skips it).
bench-perf: install
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,bench]'
	$(BIN)/python -m benchmarks.performance $(BENCH_ARGS)

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

# Regenerate constraints.txt from pyproject.toml's ranges in a fresh environment (review the diff).
constraints:
	PYTHON=$(PYTHON) scripts/update-constraints.sh

# The card gallery of docs/cards.md: every outcome's card photographed in the system's Chromium.
gallery: install
	$(BIN)/python -m tests.cards.gallery

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
