# seriatim: the two set-up commands are `make run` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP_RUN  := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test
PYTEST_ARGS ?=

.PHONY: run test lint bench venv clean debian-test-tools debian-bench-tools fuzz soak

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[test,bench]'
	touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)

## Start a broker on 127.0.0.1:9092 with data in ./data.
run: $(STAMP_RUN)
	$(VENV)/bin/seriatim serve -c listeners=PLAINTEXT://127.0.0.1:9092 -c log.dirs=./data

# Debian tools some tests use (kcat); optional: the tests that need them skip with a reason.
debian-test-tools:
	@if ! command -v kcat >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null 2>&1) \
	    || echo "note: could not install kcat; kcat interop tests will be skipped"; \
	fi

## Run the whole suite (lint first).
test: $(STAMP_TEST) debian-test-tools
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests bench fuzz tools
	$(VENV)/bin/mypy

# Redis Streams is the benchmarks' baseline; optional: without it those rows say why they are missing.
debian-bench-tools:
	@if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools librdkafka-dev gcc >/dev/null 2>&1) \
	    || echo "note: could not install redis-server; Redis baselines will be skipped"; \
	fi

## Run the benchmarks and rewrite docs/benchmarks.md.
bench: $(STAMP_TEST) debian-bench-tools
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

FUZZ_SECONDS ?= 600
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=1 -artifact_prefix=fuzz/
## Long fuzz runs of both targets (crash files land in fuzz/; copy them to fuzz/regressions/).
fuzz: $(STAMP_TEST)
	@mkdir -p fuzz/corpus/requests fuzz/corpus/records
	$(PY) fuzz/fuzz_requests.py $(FUZZ_FLAGS) fuzz/corpus/requests fuzz/seeds/requests & p=$$!; \
	$(PY) fuzz/fuzz_records.py $(FUZZ_FLAGS) fuzz/corpus/records fuzz/seeds/records; r2=$$?; \
	wait $$p; r1=$$?; exit $$(( r1 || r2 ))

SOAK_MINUTES ?= 10
## kill -9 loop + malformed corpus, repeated (outside CI).
soak: $(STAMP_TEST)
	$(PY) tools/soak.py --minutes $(SOAK_MINUTES)
