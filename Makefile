# Two commands on a fresh machine with Python 3.11:  `make demo`  and  `make test`.
# Each creates .venv (pinned by constraints.txt) on first use; all state stays under .mlops_home/.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export MLOPS_HOME ?= $(CURDIR)/.mlops_home
export DAGSTER_HOME ?= $(MLOPS_HOME)/dagster
# The demo feeds a few broken rows so that quarantine has something to show.
export MLOPS_SYNTHETIC_INVALID_ROW_SHARE ?= 0.002
# Which contract's model `make serve` / `make kserve-manifest` use (a name in MLOPS_CONTRACTS).
CONTRACT ?= loan_default
# Most tests wait on real processes (daemon ticks, servers starting): two workers overlap the waits.
TEST_WORKERS ?= 2

.PHONY: install demo dev mlflow-ui serve kserve-manifest monitoring-files crash-files example-files system-deps test test-quick clean dagster-home

install: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

dagster-home:
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: install  ## the main job: the whole story from a clean state, then a summary
	rm -rf "$(MLOPS_HOME)"
	$(MAKE) dagster-home
	$(BIN)/python -m mlops_assets.demo

dev: install dagster-home  ## the Dagster UI (and daemon) on http://127.0.0.1:3000, with the demo's settings
	$(BIN)/python -m mlops_assets.demo --ui-only

mlflow-ui: install  ## the MLflow UI over the local store, on http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "sqlite:///$(MLOPS_HOME)/mlflow/mlflow.db" --host 127.0.0.1 --port 5000

serve: install  ## the champion over HTTP, requests checked against the contract, on http://127.0.0.1:5001/invocations
	$(BIN)/python -m mlops_assets.serving serve --contract $(CONTRACT) --port 5001

kserve-manifest: install  ## a KServe InferenceService for the champion, in deploy/kserve/
	$(BIN)/python -m mlops_assets.serving kserve --contract $(CONTRACT) --out deploy/kserve/$(CONTRACT).yaml

monitoring-files: install  ## Prometheus alert rules + Grafana dashboard from the current settings
	$(BIN)/python -m mlops_assets.monitoring.alerting --out deploy/monitoring

crash-files: install  ## the vehicle_crashes example's daily CSV files (20 days, high-speed crashes from day 11)
	$(BIN)/python -m mlops_assets.examples.vehicle_crashes --out "$(MLOPS_HOME)/sources/vehicle_crashes" \
	  --start 2026-01-01 --days 20 --drift-start 2026-01-11

example-files: crash-files  ## every real-data example's daily CSV files (their real shift from day 11)
	for example in pc_prices cracker_brands; do \
	  $(BIN)/python -m mlops_assets.examples.$$example --out "$(MLOPS_HOME)/sources/$$example" \
	    --start 2026-01-01 --days 13 --drift-start 2026-01-11 || exit 1; \
	done

system-deps:  ## Debian packages the tests use (promtool, Pushgateway, chromium, PostgreSQL), if missing
	bash scripts/install-system-deps.sh

test: install system-deps  ## lint + the whole test suite (TEST_WORKERS pytest workers, default 2)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MLOPS_REQUIRE_SYSTEM_TOOLS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=40

test-quick: install  ## the tests that start no daemon, server or browser (-m "not slow"), for while you edit
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow" --durations=10

clean:
	rm -rf "$(MLOPS_HOME)"
