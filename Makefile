# Three commands do everything on a fresh Debian machine with Python 3.11+ and Go:
#   make demo   install, then run the offline pipeline on k8s/3tier-app.yaml with the built-in defaults
#   make test   install everything the tests need (pip packages, Debian packages, the Go-built control plane), then pytest
#   make lint   ruff (configured in pyproject.toml) on the whole tree, mypy on the packages
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: install demo test lint deps sandbox bench bench-scale clean

$(BIN)/chaos-inventory: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/chaos-inventory

demo: install
	chaos-inventory -f k8s/3tier-app.yaml | chaos-suggest -n 3 | chaos-litmus

deps: install
	bash tests/install-deps.sh

test: deps
	$(BIN)/pytest -q -ra

$(BIN)/mypy: $(BIN)/chaos-inventory
	$(BIN)/pip install -q -e '.[lint]'
	touch $@

lint: $(BIN)/mypy
	$(BIN)/ruff check .
	$(BIN)/mypy chaosgen chaos_inventory chaos_suggest chaos_litmus chaos_watch

sandbox: install
	bash tests/sandbox/build.sh >/dev/null
	$(BIN)/python -m tests.sandbox.sandbox up

# gen_manifest.py is the benchmarks' input generator, not a benchmark; inventory_scale.py takes ~25 minutes.
BENCHMARKS := pipeline_offline prompt_budget truth_score watch_abort

bench: install
	@for name in $(BENCHMARKS); do echo "== benchmarks/$$name.py"; $(BIN)/python benchmarks/$$name.py || exit 1; done

bench-scale: install
	$(BIN)/python benchmarks/inventory_scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
