# Pulse — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Every target sets up (or checks) its environment first, so a fresh clone needs nothing else.
UV = "$$(scripts/setup.sh $(SETUP_FLAGS) | tail -n 1)"
# The suite mostly waits (brokers, polling, process start-ups), so workers beyond the cores pay off;
# each runs its own stack. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3

.PHONY: help up demo test lint format bench bench-freshness bench-metrics bench-collector bench-collectors bench-rollup bench-dashboard vendor clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

up: ## Run the whole product with embedded defaults (data in ./.pulse)
	@$(UV) run pulse up

demo: ## The same, with realistic demo traffic flowing through the collector
	@$(UV) run pulse up --demo-traffic

test: SETUP_FLAGS = --test
test: ## Run the whole test suite (installs what it needs first), TEST_WORKERS files at a time
	@$(UV) run pytest -n $(TEST_WORKERS)

lint: ## ruff, ruff format --check and mypy
	@uv=$(UV) && $$uv run ruff check backend tests bench && $$uv run ruff format --check backend tests bench && $$uv run mypy

format: ## Apply ruff's fixes and formatting
	@uv=$(UV) && $$uv run ruff check --fix backend tests bench && $$uv run ruff format backend tests bench

bench: bench-freshness bench-metrics bench-collector bench-collectors bench-rollup bench-dashboard ## All benchmarks

bench-freshness: ## Beacon-to-visible latency of pulse up, against a bare Kafka round trip
	@$(UV) run python bench/freshness.py

bench-metrics: SETUP_FLAGS = --bench
bench-metrics: ## Collector throughput with metrics on and off (wrk)
	@$(UV) run python bench/metrics_overhead.py

bench-collector: SETUP_FLAGS = --bench
bench-collector: ## Collector single and batched throughput against a bare Litestar endpoint (wrk)
	@$(UV) run python bench/collector.py

bench-collectors: SETUP_FLAGS = --bench
bench-collectors: ## Events/s through HAProxy with one collector process and with two (wrk)
	@$(UV) run python bench/collector_scaling.py

bench-rollup: ## Rollup worker events/s from a pre-filled topic to ClickHouse + Redis, against a plain consume loop
	@$(UV) run python bench/rollup.py

bench-dashboard: SETUP_FLAGS = --test
bench-dashboard: ## Overview page and panel queries at 10M events against raw; live beacon-to-screen; SSE to 5,000
	@$(UV) run python bench/dashboard.py

vendor: ## Refresh the vendored front-end libraries from npm
	cd ui && npm ci --no-audit --no-fund
	cp ui/node_modules/htmx.org/dist/htmx.min.js ui/node_modules/uplot/dist/uPlot.iife.min.js \
	   ui/node_modules/uplot/dist/uPlot.min.css ui/static/vendor/

clean: ## Remove the local data directory and caches
	rm -rf .pulse .pytest_cache .mypy_cache .ruff_cache test-artifacts
