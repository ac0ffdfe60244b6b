# Handoff tracking: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps
INSTALLED := $(VENV)/.installed
GEN := services/common/gen
GENERATED := $(GEN)/.generated
COMPILED := $(VENV)/compiled/SOURCES
COMPILE_SOURCES := $(shell find services/sla/sla services/common/common -name '*.py')
PROTOS := $(wildcard proto/handoff/v1/*.proto)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install proto proto-check kafka-jars chromium deploy-tools deploy-manifests run up down test test-unit bench lock clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(DEPS): $(PY) requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

$(GENERATED): $(PROTOS) $(DEPS)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	@touch $@

# The project itself is installed (editable) after generation, so the generated `handoff`
# package is found alongside the services' packages.
$(INSTALLED): $(GENERATED) pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# The sla worker's hot path compiled with mypyc (devstack/compile.py), rebuilt when a source
# of the copied packages changes; the services devstack starts run it.
$(COMPILED): $(INSTALLED) $(COMPILE_SOURCES) devstack/compile.py
	$(PY) -m devstack.compile --out $(VENV)/compiled
	@touch $@

install: $(INSTALLED) $(COMPILED) ## Virtualenv, pinned dependencies, generated protobuf code, compiled sla modules
	@true

proto: $(DEPS) ## Regenerate the protobuf and gRPC code from proto/
	rm -f $(GENERATED) && $(MAKE) --no-print-directory install

proto-check: install ## Fail when the generated code is stale against proto/
	$(PY) -m devstack.protocheck $(GEN) $(PROTOS)

kafka-jars: install ## Fetch the Apache Kafka jars (cached outside the repo)
	@$(PY) -m common.localkafka fetch >/dev/null

# Headless Chromium (Debian's package) renders the report in tests; tmux reads the live view.
chromium: ## Install Chromium and tmux from Debian's packages when missing (the report and live-view tests)
	@command -v chromium >/dev/null && command -v tmux >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium tmux fonts-dejavu-core; }

deploy-tools: install ## Fetch promtool, Prometheus, CRD schemas, kubernetes-validate, checkov (cached outside the repo)
	@$(PY) -m deploy.tools fetch >/dev/null

deploy-manifests: install ## Regenerate deploy/ files that follow from the code (topics, users, workloads, rules, dashboards)
	$(PY) -m deploy.generate

run: install kafka-jars ## Kafka, the services and a simulated contact centre with a live view; Ctrl-C stops all
	$(PY) -m devstack run

# POLICIES=config/demo-sla-policies.yaml: targets of seconds, for the README's tour.
POLICIES ?= config/sla-policies.yaml
up: install kafka-jars ## The same stack in the background; prints every endpoint (POLICIES=file to choose the SLA policies)
	$(PY) -m devstack up --policies $(POLICIES)

down: ## Stop the background stack
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing is running"; fi

test: install kafka-jars chromium deploy-tools proto-check ## The whole suite against a real broker
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install ## Unit tests only (no broker)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: install kafka-jars ## Benchmarks; prints a table and writes bench/results.json (flags: BENCH_ARGS="--help")
	$(PY) -m bench.run $(BENCH_ARGS)

lock: $(INSTALLED) ## Re-pin requirements.lock from pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^pip==' | sed '1i # Every package the project installs, pinned. Regenerate with '"'"'make lock'"'"' after changing pyproject.toml.' > requirements.lock

clean: ## Remove the virtualenv, generated code and local data (not the Kafka jar cache)
	rm -rf $(VENV) $(GEN) var .run .pytest_cache
