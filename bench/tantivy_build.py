"""Index a benchmark corpus with tantivy, the way bench/peers.py compares it with `indexer build`.

    python bench/tantivy_build.py CORPUS OUT_DIR [--threads 1] [--heap-mb 1024] [--tokenizer default]

Schema: `id`, stored (raw tokenizer, doc ids only: tantivy-py indexes every text field), and `text`
indexed with frequencies and positions, not stored. The documents are bench/bench_corpus.py's, in
the same order as indexer's. --tokenizer default is tantivy's: split on anything not alphanumeric,
drop tokens of 40+ bytes, lower-case; `words` is a \\w+ regex tokenizer, lower-cased, tokens of up to
64 bytes (indexer's analyzer with --stem none, near enough). --heap-mb is the writer's whole budget,
split between its --threads indexing threads (indexer's --memory default is 1 GB). One JSON line
on stdout: documents, segments after merging, seconds (indexing, commit and merges).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import tantivy
from bench_corpus import read_docs

WORDS_TOKENIZER = "words"


def register_tokenizers(index: tantivy.Index) -> None:
    """Tokenizers live in the opened Index, not on disk: every opener must register them."""
    words = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(r"\w+"))
    index.register_tokenizer(
        WORDS_TOKENIZER, words.filter(tantivy.Filter.remove_long(65)).filter(tantivy.Filter.lowercase()).build()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path, help="the index folder (replaced)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--heap-mb", type=int, default=1024)
    parser.add_argument("--tokenizer", choices=["default", WORDS_TOKENIZER], default="default")
    args = parser.parse_args()
    started = time.perf_counter()
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=False, tokenizer_name=args.tokenizer, index_option="position")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    index = tantivy.Index(builder.build(), path=str(args.out), reuse=False)
    register_tokenizers(index)
    writer = index.writer(heap_size=args.heap_mb * 1_000_000, num_threads=args.threads)
    documents = 0
    for doc_id, text in read_docs(args.corpus):
        writer.add_document(tantivy.Document(id=doc_id, text=text))
        documents += 1
    writer.commit()
    writer.wait_merging_threads()
    seconds = time.perf_counter() - started
    index.reload()
    segments = index.searcher().num_segments
    print(json.dumps({"documents": documents, "segments": segments, "seconds": seconds}))


if __name__ == "__main__":
    main()
