# Two commands: `make run` (the console) and `make test` (the whole suite).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# Fixed, test-only secrets and services: the suite never sees a production key.
test: export SECRET_KEY := test-only-secret-key-not-for-production-0123456789
test: export SECRETS_ENCRYPTION_KEY := dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=
test: export DATABASE_URL := postgres://jcc_test:jcc_test@127.0.0.1:5432/jcc_test
test: export CELERY_BROKER_URL := redis://127.0.0.1:6379/15
test: export ALLOWED_HOSTS := 127.0.0.1,localhost,testserver
test: export EXTRA_STEP_MODULES := tests.deployments.engine_steps

.PHONY: run test lint venv dev-venv testbed testbed-down

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

run: venv
	@scripts/run.sh

test: dev-venv
	@scripts/test_services.sh
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run -v0
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: dev-venv
	$(VENV)/bin/ruff check .

# A sandbox cluster on this machine (root), loaded into the console `make run` serves.
testbed: venv
	@$(PY) scripts/dev_env.py
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py testbed up --full --import > var/testbed-inventory.json
	@echo "Inventory in var/testbed-inventory.json; the cluster is in the console. 'make testbed-down' removes it."

testbed-down: venv
	$(PY) manage.py testbed down
