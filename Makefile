# llmesh: `make run` starts the mesh, `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROTOS := $(wildcard protos/llmesh/v1/*.proto)
# The folders laid out as the installed `llmesh` package, in links, for mypy: it does not run the
# editable install's import hook, so it finds llmesh.services (services/), llmesh.gateway
# (gateway/) and llmesh.v1 (gen/llmesh/v1) here (pyproject.toml: [tool.mypy] mypy_path).
TYPING := $(VENV)/typing/llmesh

.PHONY: run test lint gen check-gen venv buf browser clean bench soak soak-chaos bench-telemetry

$(STAMP): pyproject.toml constraints.txt setup.py services/telemetry/_otlp_native.c services/telemetry/_lean_native.c services/telemetry/_current_native.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,local]'
	@touch $(STAMP)

$(TYPING): | $(STAMP)
	mkdir -p $@
	ln -sfn ../../../services $@/services
	ln -sfn ../../../gateway $@/gateway
	ln -sfn ../../../gen/llmesh/v1 $@/v1

venv: $(STAMP) $(TYPING)

# Generated code is committed; `gen` rewrites it from protos/ with the pinned grpcio-tools.
gen: $(STAMP)
	rm -rf gen/llmesh
	mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)

# Fails when gen/ is not what `make gen` would write.
check-gen: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	if ! diff -r -q -x __pycache__ $$tmp/llmesh gen/llmesh; then \
	  echo "gen/ is stale: run 'make gen' and commit the result"; rm -rf $$tmp; exit 1; fi; \
	rm -rf $$tmp; echo "gen/ is up to date"

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

buf: $(BUF)

lint: $(STAMP) $(TYPING) $(BUF)
	$(BUF) lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(VENV)/typing $(VENV)/bin/lint-imports  # the llmesh package as installed

run: $(STAMP) gen
	$(VENV)/bin/llmesh up

# Debian's chromium for the console's browser tests (tests/console), which launch it by path:
# installed with apt-get when missing and running as root. Otherwise those tests are skipped
# saying why; under CI (CI=true) a missing chromium fails them.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for the console's browser tests"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null || \
	    echo "could not install chromium: the console's browser tests cannot run"; \
	else echo "chromium is missing and this is not root: the console's browser tests are skipped"; fi

# Two worker processes (pytest-xdist): the integration tests mostly wait on the servers they
# start, so two workers take about 60 % of one's time on 2 cores. --dist loadfile runs each
# test file whole in one worker: a module's fixtures (a mesh, `llmesh up`) start once, and
# tests that build on the ones above them in their file (test_up_workers, test_up_telemetry)
# see them run first.
test: $(STAMP) check-gen lint browser
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# The benchmark suite (about 6 minutes; not part of `test`, whose smoke run keeps it working):
# llmesh against the direct path to the same upstream, as a table and bench/results/*.json.
bench: $(STAMP)
	$(PY) -m bench

# A steady load through llmesh watching memory; BENCH_SOAK_SECONDS (600), BENCH_SOAK_INTERVAL
# (60) and BENCH_SOAK_CONCURRENCY (32) change it.
soak: $(STAMP)
	$(PY) -m bench --soak

# Load with 30 % random emulator faults of every kind (10 minutes; MINUTES=2 for a short run):
# no hung stream, one ledger row per call, breakers open and close, RSS and fds flat.
MINUTES ?= 10
soak-chaos: $(STAMP)
	$(PY) -m bench.soak_chaos --minutes $(MINUTES) --concurrency 16

# What telemetry costs (about 4 minutes): three meshes side by side, telemetry off, metrics
# only, metrics and 100 %-sampled tracing to a local OTLP receiver, against issue 14's targets.
bench-telemetry: $(STAMP)
	$(PY) -m bench --telemetry
