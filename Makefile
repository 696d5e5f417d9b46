# Releaseboard: `make run` for the demo, `make test` for the whole test suite.
# Needs Python 3.11+ (with venv) and git; everything else goes into .venv.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=
# Tests run in parallel on pytest-xdist workers, each module on one worker except those
# tests/conftest.py lets split (each worker has its own var dir, test database and Redis
# key prefix); the slowest start first. Two per core (at most 8): most tests spend much
# of their time waiting for a Celery worker, git or a browser, so a core has room for
# two. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 1) * 2 )); [ $$n -gt 8 ] && n=8; echo $$n)

VENV_PY := $(VENV)/bin/python
# Touched after a successful pip install: pip runs again only when a requirements
# file is newer than its stamp.
RUN_STAMP := $(VENV)/.installed-requirements
DEV_STAMP := $(VENV)/.installed-requirements-dev
CLI_STAMP := $(VENV)/.installed-cli

.PHONY: help run test lint format install install-dev migrate demo clean-var
.DEFAULT_GOAL := help

help:
	@echo "make run    start the demo: web on http://127.0.0.1:$(PORT)/, worker and beat (Ctrl-C stops)"
	@echo "make test   run the whole test suite (extra pytest arguments: PYTEST_ARGS=..., parallel: TEST_WORKERS=N, default two per core)"
	@echo "make lint   ruff (lint and format check) and mypy; 'make format' rewrites the formatting"
	@echo "make demo   (re)load the demo users and repository only"

$(VENV_PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Releaseboard needs Python 3.11 or newer; $(PYTHON) is older (set PYTHON=...)." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create $(VENV); on Debian/Ubuntu install python3-venv." >&2; rm -rf $(VENV); exit 1; }

$(RUN_STAMP): requirements.txt | $(VENV_PY)
	$(VENV_PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV_PY)
	$(VENV_PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@ $(RUN_STAMP)

# The rb command-line client (cli/, standard library only) into the same venv: .venv/bin/rb.
$(CLI_STAMP): cli/pyproject.toml $(wildcard cli/rb/*.py) | $(VENV_PY)
	$(VENV_PY) -m pip install --disable-pip-version-check -q ./cli
	@touch $@

install: $(RUN_STAMP) $(CLI_STAMP)
install-dev: $(DEV_STAMP)

run: $(RUN_STAMP) $(CLI_STAMP)
	RELEASEBOARD_DEBUG=True PORT=$(PORT) exec $(VENV_PY) scripts/run.py

migrate: $(RUN_STAMP)
	$(VENV_PY) manage.py migrate --noinput

demo: migrate
	$(VENV_PY) manage.py load_demo

test: $(DEV_STAMP)
	$(VENV_PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

LINT_PATHS := releaseboard tests bench scripts manage.py

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

# Removes the embedded database, broker, mirrors, demo repository and logs.
clean-var:
	rm -rf var/
