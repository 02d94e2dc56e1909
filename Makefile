# Every target does its own set-up, so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast test-slow test-browser browser-setup lint format clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: it resolves to the CPU build on local disk, never a CUDA download
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

test-fast: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

# Browser tests drive Debian's Chromium (never a Playwright-downloaded build). Installing it
# needs root (or sudo) and Debian's package mirror; when that is impossible the browser tests
# skip with a message saying so, and everything else still runs.
CHROMIUM ?= /usr/bin/chromium
browser-setup:
	@if [ -x "$(CHROMIUM)" ]; then echo "chromium: $$($(CHROMIUM) --version 2>/dev/null)"; else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null ) \
	  && echo "chromium installed: $$($(CHROMIUM) --version)" \
	  || echo "WARNING: could not install Chromium; browser tests will be skipped"; fi

# Everything: fast, slow and browser tests in one pytest run (one summary line for CI).
test: lint browser-setup
	$(PY) -m pytest -m 'slow or not slow'

test-browser: setup browser-setup
	$(PY) -m pytest -m browser

# Builds the demo shop (first run only), trains the default models (first run only; they are
# kept in the shop's model registry), then serves the storefront, dashboard and API on
# 127.0.0.1:8000 and prints the URLs and the demo API keys.
demo: setup
	$(VENV)/bin/shoploop serve --home var/demo --demo --host 127.0.0.1 --port 8000

clean:
	rm -rf var .pytest_cache .ruff_cache
