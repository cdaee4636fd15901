# make run / make test work on a fresh machine with python3 and make: they build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint venv system-packages

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (openssl for test certificates); installed only when missing.
system-packages:
	@command -v openssl >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openssl; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq openssl; fi; }

run: venv
	$(PY) manage.py runappliance

# The tests keep their keys, logs and databases in a fresh data directory.
test: venv system-packages
	@data=$$(mktemp -d); APPLIANCE_DATA_DIR=$$data $(PY) -m pytest; status=$$?; rm -rf $$data; exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
