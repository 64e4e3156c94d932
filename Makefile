# Everyday entry points. The virtualenv lives in .venv; installs are remembered
# by stamp files inside it, so re-runs skip pip until pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

# The web page's one browser library, tus-js-client (resumable uploads), from the npm registry
# with its license: pinned, and fetched once by the install steps below (no CDN at run time).
TUS_JS_VERSION := 4.3.1
VENDOR := src/cargohold/api/static/ui/vendor
TUS_JS := $(VENDOR)/tus.min.js

ARGS ?=
PYTEST_ARGS ?=

.PHONY: up test lint bench

up: $(STAMP)
	exec $(BIN)/cargohold up $(ARGS)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(TUS_JS):
	rm -rf $(VENDOR).tmp && mkdir -p $(VENDOR).tmp
	cd $(VENDOR).tmp && npm pack --silent tus-js-client@$(TUS_JS_VERSION) >/dev/null
	tar -xzf $(VENDOR).tmp/tus-js-client-$(TUS_JS_VERSION).tgz -C $(VENDOR).tmp
	mkdir -p $(VENDOR)
	cp $(VENDOR).tmp/package/LICENSE $(VENDOR)/tus-js-client.LICENSE.txt
	cp $(VENDOR).tmp/package/dist/tus.min.js $@
	rm -rf $(VENDOR).tmp

$(STAMP): pyproject.toml $(TUS_JS) | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# The dev extras include the package itself, so this satisfies $(STAMP) too.
$(DEV_STAMP): pyproject.toml $(TUS_JS) | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP) $@
