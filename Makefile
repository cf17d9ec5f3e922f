# Two entry points for a fresh Debian / Raspberry Pi OS machine (see README.md):
#   make demo   the hub and a simulated doorbell on this machine
#   make test   the whole test suite, as CI runs it
# Each installs what it needs: Debian packages (scripts/install-system-packages) and a
# virtual environment with Porch in .venv.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo test lint bench system-packages clean

demo: system-packages $(STAMP)
	$(VENV)/bin/porch demo

test: system-packages $(STAMP) lint
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: system-packages $(STAMP)
	$(PYTHON) bench/run_all.py

system-packages:
	@scripts/install-system-packages

$(STAMP): pyproject.toml
	@scripts/install-system-packages
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
