# Concord: build, run and test on one machine. `make run` to try it, `make test` to check it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONCORD := $(BIN)/concord
PYTEST := $(BIN)/pytest
PYTEST_ARGS ?=
# Rebuilt when the lock or a project file is newer than it.
STAMP := $(VENV)/.concord-installed
CONTRACTS := $(wildcard contracts/pyproject.toml)

.PHONY: help venv services browser run stop status test unit contract integration e2e fault badinput \
        lint fmt messages bench bench-quick clean distclean

help:
	@echo "make run     build, prepare and start every service (Ctrl-C stops them)"
	@echo "make test    every test suite against the local RabbitMQ and PostgreSQL"
	@echo "other: venv services browser stop status unit contract integration e2e fault badinput"
	@echo "       lint fmt messages bench bench-quick clean distclean"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml $(CONTRACTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps $(if $(CONTRACTS),-e contracts) -e .
	@touch $@

services:
	@bash deploy/local/ensure-services.sh

# Playwright cannot download its own browser here; Debian's Chromium is what the tests use.
browser:
	@test -x /usr/bin/chromium || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

run: venv services
	$(CONCORD) topology declare
	$(CONCORD) migrate
	$(CONCORD) seed
	@echo "Demo users: intake social social2 supervisor supervisor2 police central coordinator admin," \
		"password: $${CONCORD_DEMO_PASSWORD:-concord-demo}"
	@echo "Web: http://$${CONCORD_HTTP_HOST:-127.0.0.1}:$${CONCORD_HTTP_PORT:-8000}/  (Ctrl-C stops everything)"
	$(CONCORD) run --foreground

stop: venv
	$(CONCORD) stop

status: venv
	$(CONCORD) status

# One pytest run over every suite; the tests set their own environment (tests/conftest.py).
# The fault suite runs here at a smaller size (CONCORD_FAULT_REFERRALS, default 90);
# `make fault` runs the full 2,000 referrals.
test: venv services browser
	$(PYTEST) tests/unit tests/contract tests/integration tests/e2e tests/badinput tests/fault \
		$(PYTEST_ARGS)

unit: venv
	$(PYTEST) tests/unit $(PYTEST_ARGS)

contract: venv
	$(PYTEST) tests/contract $(PYTEST_ARGS)

integration: venv services
	$(PYTEST) tests/integration $(PYTEST_ARGS)

e2e: venv services browser
	$(PYTEST) tests/e2e $(PYTEST_ARGS)

# Restarts RabbitMQ and PostgreSQL of this machine for a few seconds each.
fault: venv services
	CONCORD_FAULT_REFERRALS=$${CONCORD_FAULT_REFERRALS:-2000} $(PYTEST) tests/fault tests/e2e -m fault \
		$(PYTEST_ARGS)

badinput: venv services
	$(PYTEST) tests/badinput $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The gateway's messages: the template extracted again from the sources (babel.cfg), then
# merged into each language's .po, keeping its translations (a new or changed message comes
# untranslated or fuzzy: tests/unit/test_gateway_i18n.py fails until it is translated). No
# .mo to compile: gateway.i18n reads the .po files at start.
GATEWAY_MESSAGES := services/gateway/translations
messages: venv
	$(BIN)/pybabel -q extract -F services/gateway/babel.cfg -o $(GATEWAY_MESSAGES)/messages.pot \
		services/gateway
	$(BIN)/pybabel -q update -i $(GATEWAY_MESSAGES)/messages.pot -d $(GATEWAY_MESSAGES)

# Figures, not tests: a table on the terminal and var/bench/results.json (docs/reliability.md).
bench: venv services
	$(BIN)/python -m benchmarks.run

bench-quick: venv services
	$(BIN)/python -m benchmarks.run --quick

# Removes the local state too (var/: SQLite databases, logs), after stopping the services.
clean:
	-@test -x $(CONCORD) && $(CONCORD) stop >/dev/null 2>&1 || true
	rm -rf var build dist .pytest_cache .mypy_cache .ruff_cache
	rm -rf services/*.egg-info contracts/src/*.egg-info contracts/build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
