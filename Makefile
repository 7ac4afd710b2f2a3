# `make run` and `make test` are the two commands a fresh clone needs (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
BENCH_STAMP := $(VENV)/.bench-installed
# Lighthouse from npm, pinned, in a node_modules of its own under .venv (12.x runs on Node 18+).
LIGHTHOUSE_VERSION := 12.8.2
LIGHTHOUSE := $(VENV)/lighthouse/.installed-$(LIGHTHOUSE_VERSION)

.DEFAULT_GOAL := help
.PHONY: help install run run-ha worker test test-unit conformance lint bench chaos browser wrk lighthouse

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(STAMP) ## create .venv and install the pinned requirements

run: $(STAMP) ## start web, worker and (without REDIS_URL or REDIS_SENTINELS) an embedded Redis
	exec $(BIN)/python -m scripts.run

run-ha: $(STAMP) ## the same on a local primary, replica and 3 sentinels: kill the primary, watch
	exec $(BIN)/python -m scripts.run --ha

# The Procfile's worker line is the one declaration of the worker command.
worker: $(STAMP) ## start the Procfile's worker line on REDIS_URL (or REDIS_SENTINELS)
	PATH="$(CURDIR)/$(BIN):$$PATH" exec sh -c "exec $$(sed -n 's/^worker: *//p' Procfile)"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-unit: $(STAMP) ## unit tests only (seconds)
	$(BIN)/pytest -m "not integration and not browser" -q

# RQ's own tests, from the pinned RQ's sdist (fetched once into .venv/rq-suite), with rq.Worker
# replaced by jobs.worker.Worker; tests/rq_suite/run.py says how, expected_failures.txt what may fail.
conformance: $(STAMP) ## RQ's own test suite against our worker (~1.5 min; Redis on 127.0.0.1:6379)
	$(BIN)/python -m tests.rq_suite.run

# Debian's chromium for the browser tests; in CI a browser that cannot be installed fails the run.
browser: ## install chromium for the browser tests when missing (apt-get, as root)
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| { test -z "$$CI" && echo "chromium missing: browser tests will skip"; }

$(LIGHTHOUSE):
	npm install --prefix $(VENV)/lighthouse --no-audit --no-fund --loglevel=error lighthouse@$(LIGHTHOUSE_VERSION)
	touch $@

# tests/browser/test_lighthouse.py: the page with a job running, mobile, simulated throttling (~30 s).
lighthouse: $(STAMP) browser $(LIGHTHOUSE) ## Lighthouse on the page with a job running: 100 in all four categories
	$(BIN)/pytest tests/browser/test_lighthouse.py -q

# Units (fakeredis, CPU-bound) on two processes; then the tests that start real processes, on two
# processes too, a file to each (its tests one at a time): they mostly wait on their servers; then
# RQ's own suite against our worker (`make conformance`), on two processes as well.
test: $(STAMP) lint browser $(LIGHTHOUSE) ## the whole suite: lint, units, integration (embedded and local Redis), browser, RQ's suite
	$(BIN)/pytest -m "not integration and not browser" -n 2
	$(BIN)/pytest -m "integration or browser" -n 2 --dist loadfile
	$(BIN)/python -m tests.rq_suite.run

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# Debian's wrk loads both stacks in `make bench`; a bench without it fails, it never falls back.
wrk: ## install wrk for the benchmark when missing (apt-get, as root)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "wrk is missing and could not be installed: run 'apt-get install wrk' as root"; exit 1; }

# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS="--duration 10 --streams 2000"`.
bench: $(BENCH_STAMP) wrk ## benchmarks vs the tutorial's stack (~15 min): bench/results.{json,md,png}
	$(BIN)/python -m bench $(BENCH_ARGS)

# CHAOS_ARGS passes options to both runs, e.g. CHAOS_ARGS="--jobs 200 --duration 60".
chaos: $(STAMP) ## jobs under SIGKILLs, Redis restarts, failovers (~8 min): bench/chaos.json
	@# Both runs always happen; the target fails when either lost or left a job stuck.
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS); first=$$?; \
		$(BIN)/python -m bench.chaos --sentinel $(CHAOS_ARGS) && exit $$first
