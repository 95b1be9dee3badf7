# watchllm-analytics: `make demo` and `make test` work on a fresh clone with Python 3.11, make and git.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CLI := $(BIN)/watchllm-analytics

DEMO_ROWS ?= 300000
DEMO_DAYS ?= 30
DEMO_PROJECTS ?= 200

.PHONY: setup system-packages setup-spark demo test test-postgres test-spark docs ui bench bench-spark bench-docs lint pricing-seed db-stop clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## setup: the venv, the project, the embedded Postgres and dbt's manifest (the shared first half of demo and test)
setup: $(VENV)/.installed system-packages
	$(CLI) db start
	$(CLI) dbt parse --quiet

## system-packages: Debian's chromium (headless browser tests of the docs site and reports), installed
## with apt-get when missing and root; otherwise prints the command to run
system-packages:
	@scripts/system-packages.sh chromium=chromium

DAGSTER_HOME_DIR := $(CURDIR)/.data/dagster_home
UI_PORT ?= 3000

## ui: the Dagster UI on the embedded database with the demo data built; schedules on
ui: demo
	mkdir -p $(DAGSTER_HOME_DIR)
	cp orchestration/defs/dagster.yaml $(DAGSTER_HOME_DIR)/dagster.yaml
	@echo "Dagster UI: http://127.0.0.1:$(UI_PORT)  (Ctrl-C to stop)"
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH \
		$(BIN)/dg dev --use-active-venv --host 127.0.0.1 --port $(UI_PORT)

## demo: generate realistic messy logs, run `dbt build`, print what a customer would see
demo: setup
	$(CLI) generate --rows $(DEMO_ROWS) --days $(DEMO_DAYS) --projects $(DEMO_PROJECTS) --seed 42 --messy --token-classes --attribution --keys 400 --end-users 20000 --tags 30
	$(CLI) dbt build --exclude-resource-type unit_test
	$(CLI) reconcile --days $(DEMO_DAYS) --heal
	@echo
	$(CLI) summary --write-report

## test: the whole suite, the Spark target included (it installs the Spark extras and Java first):
## dbt tests and unit tests run inside it, on a real Postgres and a local Spark, one test file per
## worker process, the longest files first (TEST_WORKERS=1 runs it in one process)
TEST_WORKERS ?= 2
test: setup-spark
	WATCHLLM_SPARK_TESTS=required $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## test-postgres: the suite without the Spark target (needs no Java)
test-postgres: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not spark"

## setup-spark: the Spark extras in the same .venv (dbt-spark with a local pyspark and PyHive for a Thrift server) and Java 17
## with the Postgres JDBC driver (Debian's openjdk-17-jre-headless and libpostgresql-jdbc-java, installed when missing and root)
$(VENV)/.installed-spark: $(VENV)/.installed
	@scripts/system-packages.sh java=openjdk-17-jre-headless /usr/share/java/postgresql.jar=libpostgresql-jdbc-java
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@
setup-spark: setup $(VENV)/.installed-spark

## test-spark: only the Spark target: the same project built on a local Spark and through a Thrift
## server, compared with the Postgres build (~18 min)
test-spark: setup-spark
	WATCHLLM_SPARK_TESTS=required $(BIN)/python -m pytest -m spark

DOCS_PORT ?= 8080
## docs: build dbt's documentation site (every model, column, macro, test and exposure; lineage) and
## serve it on 127.0.0.1 (after `make demo` the catalog also has every table's column types and sizes)
docs: setup
	$(CLI) dbt docs generate --quiet
	@echo "dbt docs: http://127.0.0.1:$(DOCS_PORT)  (Ctrl-C to stop)"
	$(CLI) dbt docs serve --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

## bench: the performance benchmark, 13–15 min at the default 1M/10M rows (--one-size: one history); writes bench/results/
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-spark: the same 1M- and 10M-row histories built on Postgres and on a local Spark (local[1] and local[2]),
## export and publish through a Thrift server beside the local session; writes bench/results/spark.*
bench-spark: setup-spark
	$(BIN)/python bench/spark.py $(BENCH_SPARK_ARGS)

## bench-docs: copy the figures of bench/results/latest.json into docs/performance.md
bench-docs: setup
	$(BIN)/python bench/docs_figures.py

## lint: ruff, and sqlfluff over the SQL dbt compiles (every macro expanded, the functions' queries
## included; layout is checked by eye)
lint: setup
	$(BIN)/ruff check orchestration pytests bench scripts
	$(CLI) dbt compile --quiet
	$(BIN)/python scripts/lint_sql.py target/compiled/watchllm_analytics/models

## pricing-seed: rebuild seeds/model_pricing.csv from the documented history and the LiteLLM snapshots
## in pricing/snapshots/ (oldest first; see pricing/snapshots/README.md)
SNAPSHOTS := pricing/snapshots
pricing-seed: $(VENV)/.installed
	cp pricing/known_price_history.csv seeds/model_pricing.csv
	$(CLI) pricing import $(SNAPSHOTS)/litellm-1.53.1-model-prices.json --as-of 2024-11-28 \
		--source "LiteLLM 1.53.1 model_prices_and_context_window.json"
	$(CLI) pricing import $(SNAPSHOTS)/litellm-1.110.2-model-prices.json --as-of 2026-11-01 \
		--source "LiteLLM 1.110.2 model_prices_and_context_window.json"

db-stop:
	$(CLI) db stop

clean: db-stop
	rm -rf .data target logs
