# Three commands do everything on a fresh Debian machine with Python 3.11+ and Go:
#   make demo   install, then run the offline pipeline on k8s/3tier-app.yaml with the built-in defaults
#   make test   install everything the tests need (pip packages, Debian packages, the Go-built control plane), then pytest
#   make lint   ruff (configured in pyproject.toml) on the whole tree, mypy on the packages ([tool.mypy] files)
#   make demo-live  the pipeline against the 3-tier app on the local sandbox, to a report (KEEP=1 leaves it running)
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: install demo demo-live test lint deps sandbox sandbox-down bench bench-scale clean

# Quiet, and nothing on stdout: `eval "$(make -s sandbox)"` reads only the sandbox's export lines.
$(BIN)/chaos-inventory: setup.cfg pyproject.toml
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install -q --upgrade pip >&2
	@$(BIN)/pip install -q -e '.[test]' >&2
	@touch $@

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
	$(BIN)/mypy

# `make -s sandbox` prints only export lines (eval "$$(make -s sandbox)"); everything else goes to stderr.
sandbox: install
	@bash tests/sandbox/build.sh >/dev/null
	@$(BIN)/python -m tests.sandbox.sandbox up

sandbox-down:
	@$(BIN)/python -m tests.sandbox.sandbox down

# The sandbox with the 3-tier app, Litmus CRDs, runner, traffic simulator and Prometheus, then
# inventory | suggest | litmus | watch and chaos-report into $(DEMO_OUT); exits with the pipeline's status.
# KEEP=1 keeps the sandbox running (stop it with `make sandbox-down`).
DEMO_OUT ?= build/demo-live
demo-live: install
	@bash tests/sandbox/build.sh >/dev/null
	@$(BIN)/python -m tests.sandbox.demo_live --out $(DEMO_OUT)

# gen_manifest.py is the benchmarks' input generator, not a benchmark; inventory_scale.py takes ~25 minutes.
BENCHMARKS := pipeline_offline prompt_budget truth_score watch_abort

bench: install
	@for name in $(BENCHMARKS); do echo "== benchmarks/$$name.py"; $(BIN)/python benchmarks/$$name.py || exit 1; done

bench-scale: install
	$(BIN)/python benchmarks/inventory_scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
