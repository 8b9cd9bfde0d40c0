# indexer: everyday commands. `make` runs lint and test.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CORPUS  ?= bench/data/synthetic-200MB
SIZE    ?= 200MB

.PHONY: all install test lint fmt demo smoke bench bench-quick clean

all: lint test

$(BIN)/indexer: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,dask]' ruff
	@touch $@

install: $(BIN)/indexer

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check indexer tests bench

fmt: install
	$(BIN)/ruff format indexer tests bench

demo: install
	$(BIN)/indexer build sample_corpus -o sample_corpus.idx
	$(BIN)/indexer search sample_corpus.idx "parallel merge" -k 5
	$(BIN)/indexer search sample_corpus.idx '"inverted index" OR sourdough' -k 5

smoke: demo
	$(BIN)/python -m indexer --help >/dev/null
	$(BIN)/indexer verify sample_corpus.idx

bench: install
	$(BIN)/python bench/gen_corpus.py $(CORPUS) --size $(SIZE)
	$(BIN)/python -m indexer bench $(CORPUS) -p 1,2 --repeat 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis sample_corpus.idx bench/out
	find . -name __pycache__ -prune -exec rm -rf {} +
