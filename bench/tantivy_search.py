"""Answer one query with a tantivy index, the whole-process counterpart of `indexer search`.

    python bench/tantivy_search.py INDEX_DIR QUERY [-k 10] [--tokenizer default]

Opens the index bench/tantivy_build.py wrote, parses QUERY with tantivy's query parser over the
`text` field (words are OR'ed, as in indexer) and prints `rank<TAB>score<TAB>doc id` for the top k,
reading each id from the doc store as a user of the results must.
"""

from __future__ import annotations

import argparse

import tantivy
from tantivy_build import WORDS_TOKENIZER, register_tokenizers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index")
    parser.add_argument("query")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--tokenizer", choices=["default", WORDS_TOKENIZER], default="default")
    args = parser.parse_args()
    index = tantivy.Index.open(args.index)
    if args.tokenizer != "default":
        register_tokenizers(index)
    searcher = index.searcher()
    result = searcher.search(index.parse_query(args.query, ["text"]), args.k)
    for rank, (score, address) in enumerate(result.hits, 1):
        print(f"{rank}\t{score:.4f}\t{searcher.doc(address)['id'][0]}")


if __name__ == "__main__":
    main()
