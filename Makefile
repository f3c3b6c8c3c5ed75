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
test-sqlite: export SECRET_KEY := test-only-secret-key-not-for-production-0123456789
test-sqlite: export SECRETS_ENCRYPTION_KEY := dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=
test-sqlite: export ALLOWED_HOSTS := 127.0.0.1,localhost,testserver
test-sqlite: export EXTRA_STEP_MODULES := tests.deployments.engine_steps

.PHONY: run test test-sqlite lint venv dev-venv testbed testbed-down

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

# The embedded default (`make run`: SQLite, the filesystem broker) runs these too, with their real workers.
SQLITE_TESTS ?= tests/deployments/test_engine.py tests/deployments/test_plan.py tests/deployments/test_logs.py \
  tests/deployments/test_wizard.py tests/deployments/test_checklist.py tests/nodes/test_inventory.py \
  tests/nodes/test_views.py tests/nodes/test_health.py tests/licensing/test_licensing.py \
  tests/licensing/test_licensing_testbed.py tests/foundation/test_roles.py tests/foundation/test_audit.py \
  tests/foundation/test_rotate_secrets.py tests/api/test_tokens.py tests/api/test_reads_and_input.py \
  "tests/deployments/test_faults.py::test_a_console_error_around_the_step_fails_its_runs_at_once_with_the_reason" \
  "tests/deployments/test_joget_records.py::test_stale_entry_is_shown_removed_by_the_directory_owner_and_a_second_remove_changes_nothing" \
  "tests/deployments/test_joget_records.py::test_remove_refuses_get_viewers_and_bad_names_and_changes_nothing"
SQLITE_ENV = DATABASE_URL=sqlite:///$(CURDIR)/var/test-default.sqlite3 CELERY_BROKER_URL=filesystem://localhost/

test: dev-venv
	@scripts/test_services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run -v0
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	@# A narrowed run (PYTEST_ARGS) skips the second tier: `make test-sqlite` runs it alone.
	@[ -n "$(PYTEST_ARGS)" ] || { echo "== the same engine, inventory, licensing and page tests on SQLite + filesystem broker"; \
	  $(SQLITE_ENV) $(VENV)/bin/pytest $(SQLITE_TESTS); }

test-sqlite: dev-venv
	@scripts/test_services.sh
	$(SQLITE_ENV) $(VENV)/bin/pytest $(SQLITE_TESTS)

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# A sandbox cluster on this machine (root), loaded into the console `make run` serves.
# TESTBED_PREFIX names another one beside it (its cluster is then "testbed-<prefix>").
TESTBED_PREFIX ?= tb
# Run with sudo in a user's checkout: root writes no bytecode there (the user could not remove it).
testbed testbed-down: export PYTHONDONTWRITEBYTECODE := 1
testbed: venv
	@$(PY) scripts/dev_env.py
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py testbed up --full --import --prefix $(TESTBED_PREFIX) > var/testbed-inventory.json
	@# Run with sudo: what it wrote under var/ (database, artifacts) goes back to whoever runs `make run`.
	@chown -R --reference=. var
	@echo "Inventory in var/testbed-inventory.json; the cluster is in the console. 'make testbed-down' removes it."

testbed-down: venv
	$(PY) manage.py testbed down --prefix $(TESTBED_PREFIX)
