# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: run build test lint bench soak browser hugo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-install: $(BIN)/python pyproject.toml
	@# The distribution was named "digest" (another project's on PyPI): drop the metadata of the old name.
	rm -rf src/digest.egg-info
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-install pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

## run: install, then run the weekly job once on seeds/ with config.toml (feeds + digest to the outbox)
run: $(VENV)/.stamp-install
	@# exit status 5 means "nothing new to send": not a failure when run by hand
	$(BIN)/digest --config $(CONFIG) run || [ $$? -eq 5 ]

## build: rebuild only the feeds
build: $(VENV)/.stamp-install
	$(BIN)/digest --config $(CONFIG) build

## browser: Debian's Chromium and a CJK font for the browser tests (Playwright drives it; it downloads no browser)
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . ; } || { \
	  echo "installing Debian's chromium and a Chinese font for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

## hugo: Debian's hugo (0.111 on bookworm), the oracle of the Hugo tests (they fail without it when CI=true)
hugo:
	@command -v hugo >/dev/null 2>&1 || { \
	  echo "installing Debian's hugo for the Hugo oracle tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends hugo >/dev/null; }

## test: install what the tests need (Python packages, Chromium, hugo) and run the whole suite
test: $(VENV)/.stamp-test browser hugo
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## bench: builds beside Hugo (plain corpus and a generated Hugo site), digest rendering, SMTP throughput, one-click unsubscribes
bench: $(VENV)/.stamp-test
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/hugo_bench.py
	$(BIN)/python bench/unsubscribe_bench.py

## soak: random SIGKILLs and SIGTERMs during a 1,000-recipient SMTP send, against slow, dropping and busy servers
soak: $(VENV)/.stamp-test
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .digest outbox archive test-artifacts
