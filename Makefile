# indexer: everyday commands. `make` runs lint and test.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SIZE    ?= 300MB
SYNTH   := bench/data/synthetic-$(SIZE)
CORPUS  ?= $(SYNTH)
PROCS   ?= 1,2

.PHONY: all install test lint fmt demo smoke bench bench-peers bench-search bench-serve clean

all: lint test

$(BIN)/indexer: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,dask,serve]' ruff
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

# make bench                          300 MB synthetic corpus (generated once), -p 1 and -p 2
# make bench CORPUS=~/papers PROCS=1,2,4,8   any folder or file, any process counts
bench: install
	@if [ "$(CORPUS)" = "$(SYNTH)" ]; then $(BIN)/python bench/gen_corpus.py $(SYNTH) --size $(SIZE); fi
	$(BIN)/indexer bench $(CORPUS) -p $(PROCS)

# indexer beside tantivy and bm25s on the Linux kernel's documentation (fetched with apt-get download)
bench-peers: install
	$(BIN)/python bench/get_kernel_docs.py
	$(BIN)/python bench/peers.py --out bench/results/peers.md

# indexer serve under load: 8 client threads, 10,000 queries on the kernel docs x10 (57k documents).
# The queries are drawn from the kernel docs themselves: the x10 copies have the same words in the
# same share of documents.
KX10        := bench/data/kernel-docs-x10
SERVE_INDEX ?= bench/out/kernel-docs-x10.idx
bench-serve: install
	$(BIN)/python bench/get_kernel_docs.py
	@test -f bench/data/queries/kernel-docs-mid.tsv || $(BIN)/python bench/make_queries.py bench/data/kernel-docs
	@test -f $(SERVE_INDEX) || (mkdir -p $(dir $(SERVE_INDEX)) && $(BIN)/indexer build $(KX10) -o $(SERVE_INDEX) --stem none -q)
	$(BIN)/python bench/serve_load.py $(SERVE_INDEX) -c 8 -n 10000 --seconds 120 \
		--queries bench/data/queries/kernel-docs-mid.tsv bench/data/queries/kernel-docs-common.tsv

# Search beside tantivy and bm25s on the kernel docs x10 (57k documents; queries of the x10 corpus),
# then latency on 100k, 1M and 3M synthetic passages and `search --queries -p 2` against -p 1.
bench-search: install
	$(BIN)/python bench/get_kernel_docs.py
	$(BIN)/python bench/peers.py --corpus $(KX10) --out bench/results/peers-x10.md
	@test -f bench/data/queries/kernel-docs-mid.tsv || $(BIN)/python bench/make_queries.py bench/data/kernel-docs
	$(BIN)/python bench/search_scaling.py --batch-corpus $(KX10) --batch-queries bench/data/queries/kernel-docs-mid.tsv \
		--out bench/results/search-scaling.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis sample_corpus.idx bench/out
	find . -name __pycache__ -prune -exec rm -rf {} +
