# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-warehouse lint typecheck bench lock docs clean warehouse-stop

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip==26.3'
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,celery]'
	$(BIN)/retention dbt-parse --force
	@touch $(STAMP)

install: $(STAMP)

## make demo: embedded warehouse, sample data, the real DAGs for the last 3 weeks
demo: install
	$(BIN)/retention dbt-parse
	$(BIN)/retention demo

## make test: the whole suite (embedded warehouse unless RETENTION_TEST_WAREHOUSE_URL is set),
## in PYTEST_WORKERS processes (pytest-xdist; each has its own embedded warehouse, Airflow
## home and dbt project snapshot, see tests/conftest.py); PYTEST_WORKERS=0 runs in one
PYTEST_WORKERS ?= 2
PYTEST_PAR := -n $(PYTEST_WORKERS) --dist worksteal
test: install
	scripts/ensure-chromium
	$(BIN)/retention dbt-parse
	$(BIN)/python -m pytest $(PYTEST_PAR)

## the warehouse-facing tests only (CI runs them again against the system PostgreSQL);
## the DAG-level e2e tests are left to the first pass (the integration tests run every
## SQL path they use on this server), so CI stays inside its 30-minute budget
test-warehouse: install
	$(BIN)/retention dbt-parse
	$(BIN)/python -m pytest $(PYTEST_PAR) -m integration

lint: install
	$(BIN)/ruff check plugins dags tests
	$(BIN)/ruff format --check plugins dags tests

typecheck: install
	$(BIN)/mypy

docs: install
	$(BIN)/retention dbt -- docs generate

## make bench: the loader vs a bare COPY vs pandas to_sql (BENCH_ROWS), then the real DAGs at
## three scales (BENCH_CUSTOMERS, BENCH_SCALES; own temporary warehouses); both write BENCH_OUT
bench: install
	$(BIN)/retention warehouse start
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/pipeline_bench.py

warehouse-stop:
	-$(BIN)/retention warehouse stop

## regenerate the pinned versions after changing pyproject.toml
lock:
	rm -rf /tmp/retention-lock && $(PYTHON) -m venv /tmp/retention-lock
	/tmp/retention-lock/bin/pip install --quiet '.[dev]'
	/tmp/retention-lock/bin/pip freeze --exclude retention-pipeline | sort > requirements.lock

clean: warehouse-stop
	rm -rf .retention dbt_project/target dbt_project/logs
