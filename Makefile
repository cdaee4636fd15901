# make run / make test work on a fresh machine with python3 and make: they build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint screens bench venv apt system-packages

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { $(MAKE) apt PACKAGES=python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# Install Debian packages (as root, or through sudo), waiting up to 10 minutes for another apt-get.
apt:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	$$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $(PACKAGES)

# Debian packages the tests use, installed only when missing: openssl makes the test certificates
# and probes STARTTLS (s_client), swaks is the SMTP client the gateway tests send with, postfix is
# a real receiving server for the delivery tests (looked for in /usr/sbin, which a user's PATH lacks), chromium
# is the browser the browser suite drives (Playwright, never a downloaded browser); strace shows the
# gateway's fsyncs come before its 250.
# PostgreSQL (its binaries are not on PATH) is the shared database of the cluster tests and of the
# second pass of the suite; the tests start a server of their own in a temporary folder.
SYSTEM_TOOLS = /usr/bin/openssl /usr/bin/swaks /usr/sbin/postfix /usr/bin/chromium /usr/bin/strace
system-packages:
	@missing=$$(for tool in $(SYSTEM_TOOLS); do test -x $$tool || printf ' %s' $$(basename $$tool); done); \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then $(MAKE) apt PACKAGES="$$missing"; fi

run: venv
	$(PY) manage.py runappliance

# The tests keep their keys, logs and databases in a fresh data directory. Then the tests of what the
# database holds (the workflow, configuration files, certificates, policies, records) run again on
# PostgreSQL, as the machines of a cluster share it.
POSTGRES_TESTS = tests/test_database.py tests/test_workflow.py tests/test_configfile.py \
	tests/test_web_configfile.py tests/test_certificate_store.py tests/test_console.py tests/test_hat.py \
	tests/test_destination_table.py tests/test_tracking.py tests/test_cluster_config.py \
	tests/test_levels.py tests/test_levels_console.py tests/test_levels_web.py
test: venv system-packages
	@data=$$(mktemp -d); APPLIANCE_DATA_DIR=$$data $(PY) -m pytest \
	&& APPLIANCE_DATA_DIR=$$data APPLIANCE_TEST_DATABASE=postgres $(PY) -m pytest -m "not browser" $(POSTGRES_TESTS); \
	status=$$?; rm -rf $$data; exit $$status

# The browser suite again, its screenshots written to docs/screens (the README shows them).
screens: venv system-packages
	@data=$$(mktemp -d); APPLIANCE_DATA_DIR=$$data SCREENS_DIR=docs/screens $(PY) -m pytest -m browser; \
	status=$$?; rm -rf $$data; exit $$status

# Every benchmark in one run (Postfix included, installed when missing); figures in bench/results.md.
bench: venv system-packages
	$(PY) bench/run.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
