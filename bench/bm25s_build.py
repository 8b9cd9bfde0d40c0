"""Index a benchmark corpus with bm25s, the way bench/peers.py compares it with `indexer build`.

    python bench/bm25s_build.py CORPUS OUT_DIR

Reads bench/bench_corpus.py's documents, tokenizes them with its lower-cased \\w+ rule (indexer's
analyzer with --stem none), indexes the token lists with bm25s.BM25(method="lucene", k1=0.9, b=0.4)
and saves the model to OUT_DIR with the doc ids beside it (doc_ids.json, bm25s keeps none).
One JSON line on stdout: documents, seconds (reading and tokenizing included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import bm25s
from bench_corpus import read_docs, words

K1, B = 0.9, 0.4
DOC_IDS = "doc_ids.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path, help="the model folder (replaced)")
    args = parser.parse_args()
    started = time.perf_counter()
    ids, tokens = [], []
    for doc_id, text in read_docs(args.corpus):
        ids.append(doc_id)
        tokens.append(words(text))
    model = bm25s.BM25(method="lucene", k1=K1, b=B)
    model.index(tokens, show_progress=False)
    shutil.rmtree(args.out, ignore_errors=True)
    model.save(str(args.out))
    (args.out / DOC_IDS).write_text(json.dumps(ids), encoding="utf-8")
    seconds = time.perf_counter() - started
    print(json.dumps({"documents": len(ids), "seconds": seconds}))


if __name__ == "__main__":
    main()
