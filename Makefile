# FluxForge — every target bootstraps its own tools under .cache/ (git-ignored).
SHELL := /bin/bash
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
# Cargo's downloads (the native kernel's crates) are cached here too, unless CARGO_HOME is set (a
# registry mirror in ~/.cargo/config.toml, say); its toolchain stays where rustup put it.
export CARGO_HOME ?= $(CURDIR)/.cache/cargo
UV := $(CURDIR)/.cache/bootstrap/bin/uv
UV_VERSION := 0.13.8
RUN := $(UV) run --frozen
WORKSPACE_SOURCES := src libs/*/src services/*/src tools/*/src

.PHONY: setup run test test-unit lint bench dashboard-picture kafka-up kafka-down s3-up s3-down clean

$(UV):
	python3 -m venv .cache/bootstrap
	.cache/bootstrap/bin/pip install --quiet uv==$(UV_VERSION)

# `uv sync` builds the native kernel (libs/fluxforge_native) with maturin and cargo when its
# sources changed (README "The native kernel"). Bytecode is compiled once here: where
# PYTHONDONTWRITEBYTECODE is set (CI, the image) every start would compile ~700 modules again
# (~1.5 s). uv compiles site-packages, compileall the workspace's editable sources (uv leaves those
# alone). build_kernel compiles the per-tick modules with mypyc when they changed (README "The
# compiled kernel"); without a C compiler they run as pure Python.
setup: $(UV)
	@command -v cargo >/dev/null || { echo "setup: the native kernel (libs/fluxforge_native) is Rust: install its toolchain (https://rustup.rs, then a new shell) and run make setup again" >&2; exit 2; }
	$(UV) sync --frozen --compile-bytecode
	$(RUN) python -m compileall -q -j 0 $(WORKSPACE_SOURCES)
	$(RUN) python scripts/build_kernel.py

run: setup ## the main job: embedded pipeline on the simulated market, into ./data (ARGS="..." for more)
	$(RUN) fluxforge run $(ARGS)

test: ## the whole suite (lint, types, unit, e2e, integration), starting the servers it needs
	bash scripts/test.sh

test-unit: setup
	$(RUN) pytest tests/unit -q

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

bench: setup ## throughput/latency/memory table (starts a broker for the Kafka rows)
	bash scripts/with-kafka.sh $(RUN) python -m bench

dashboard-picture: setup ## docs/images/overview.png: the overview dashboard drawn from the monitoring test's Prometheus
	FLUXFORGE_DASHBOARD_PICTURE=$(CURDIR)/docs/images/overview.png bash scripts/with-kafka.sh \
		$(RUN) pytest tests/e2e/stack/test_monitoring.py -q

kafka-up:
	bash scripts/kafka.sh up

kafka-down:
	bash scripts/kafka.sh down

s3-up: ## a local S3-compatible server (s3proxy); prints the AWS_* environment a client needs
	bash scripts/s3.sh up

s3-down:
	bash scripts/s3.sh down

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
	find libs/fluxforge_common -name '*.so' -delete  # the mypyc kernel; uv keeps the native one
