# Every target does its own set-up, so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Idle OpenMP threads sleep instead of spinning: on 2 cores a spinning pool starves the
# other thread (measured 23 -> 130 cross-encoder pairs/s on a busy machine).
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test test-fast test-slow test-browser browser-setup bench-deps lint format clean

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

# Only for benchmarks/ope_obd.py's side-by-side run against the Open Bandit Pipeline:
# obp 0.4.1 pins old releases of our dependencies, so it goes in without them and gets
# just what it imports at run time (the benchmark applies small pandas-3 shims itself).
bench-deps: setup
	$(PY) -m pip install -q --no-deps obp==0.4.1
	$(PY) -m pip install -q matplotlib==3.11.2 seaborn==0.13.2 mypy-extensions==1.2.0

clean:
	rm -rf var .pytest_cache .ruff_cache
