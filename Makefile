# kelabooking: `make run` starts the app on the embedded default, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The embedded default: SQLite, tasks in-process, e-mail and SMS on the console, the local Suomi.fi sandbox.
PORT ?= 8000
RUN_ENV := DEBUG=1 SUOMIFI_SANDBOX=1 SUOMIFI_SANDBOX_BASE_URL=http://127.0.0.1:$(PORT)

.PHONY: help install run test fuzz lint format migrations messages worker beat clean bench

help:
	@echo "make run    - install, migrate, load demo data and serve http://127.0.0.1:8000/"
	@echo "make test   - run the whole test suite"
	@echo "make fuzz   - the property tests with many more generated inputs"
	@echo "make lint   - ruff check, ruff format --check, makemigrations --check"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kelabooking needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements/dev.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	@touch $@

install: $(VENV)/.installed

run: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py load_demo
	@echo ""
	@echo "  kelabooking is at http://127.0.0.1:$(PORT)/ (Finnish /fi/, Swedish /sv/, English /en/)"
	@echo ""
	$(RUN_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The property tests with many more generated inputs than `make test` runs (tests/conftest.py's `fuzz` profile).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_properties.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(RUN_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the fi and sv catalogues and compile them (needs GNU gettext); the compiled .mo files are committed.
messages: install
	$(RUN_ENV) $(BIN)/python manage.py makemessages --locale fi --locale sv --no-obsolete --ignore '.venv/*' --ignore 'staticfiles/*' --ignore 'tests/*'
	$(RUN_ENV) $(BIN)/python manage.py compilemessages --ignore '.venv/*'

# The production shape without Docker: run these beside `gunicorn` with CELERY_BROKER_URL set.
worker: install
	$(BIN)/celery -A kelabooking worker --loglevel INFO

beat: install
	$(BIN)/celery -A kelabooking beat --loglevel INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

# Benchmarks against PostgreSQL on 127.0.0.1 (a throw-away kelabooking_bench database); see docs/benchmarks.md.
# Locust and its dependencies come from requirements/bench.txt (dev.txt plus the `bench` extra).
$(VENV)/.bench-installed: $(VENV)/.installed requirements/bench.txt
	$(BIN)/python -m pip install --quiet -r requirements/bench.txt
	@touch $@

# Every script runs, one at a time, even after one has missed a target; make fails at the end if any did.
BENCH_SCRIPTS := contended_booking growth http_journey http_contention insights http_booking

bench: install $(VENV)/.bench-installed
	@failed=""; for script in $(BENCH_SCRIPTS); do \
	  echo "== bench/$$script.py"; \
	  $(BIN)/python bench/$$script.py || failed="$$failed $$script"; \
	done; \
	if [ -n "$$failed" ]; then echo "== missed a target or failed:$$failed"; exit 1; fi; \
	echo "== every benchmark met its targets"
