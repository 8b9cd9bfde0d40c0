"""Seeded query sets drawn from a corpus's vocabulary, by document frequency (df).

    python bench/make_queries.py CORPUS [--count 1000] [--seed 0] [--out-dir bench/data/queries]

Words are the corpus's lower-cased \\w+ words (bench/bench_corpus.py). A query word must also be
plain ASCII letters and digits, not all digits, at most 40 characters: a word with `_` or a
non-ASCII letter is split or dropped differently by tantivy's default tokenizer (it splits on
anything not alphanumeric; its query parser turns the pieces into a phrase), and that would
compare different queries. Three kinds, written as OUT_DIR/<corpus name>-<kind>.tsv
(`id<TAB>text`, no header):

    mid     2-4 words, each with MID_DF[0]*N <= df <= MID_DF[1]*N (0.1% .. 5% of the N documents)
    common  2-4 words: one with df > COMMON_DF*N (20%: "the", "of", "kernel"), the others mid
    rare    1-2 words with df <= RARE_DF (5), or with the smallest df there is when no word is
            that rare (a corpus of copies: in kernel-docs-x10 every word is in at least 10)

Words are picked uniformly from each df band (so mostly from the low end of it), distinct within a
query, by a random.Random seeded with (seed, kind): the files depend only on the corpus and seed.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

from bench_corpus import corpus_name, read_docs, words

KINDS = ("mid", "common", "rare")
MID_DF = (0.001, 0.05)
COMMON_DF = 0.20
RARE_DF = 5
QUERY_WORD = re.compile(r"[a-z0-9]{1,40}")


def document_frequencies(corpus: Path) -> tuple[Counter, int]:
    """(word -> number of documents holding it, number of documents)."""
    df: Counter = Counter()
    n = 0
    for _, text in read_docs(corpus):
        df.update(set(words(text)))
        n += 1
    return df, n


def word_bands(df: Counter, n: int) -> dict[str, list[str]]:
    """The candidate query words of each df band, sorted."""
    usable = sorted(w for w in df if QUERY_WORD.fullmatch(w) and not w.isdigit())
    low, high = max(2, math.ceil(MID_DF[0] * n)), math.floor(MID_DF[1] * n)
    rare = max(RARE_DF, min((df[w] for w in usable), default=0))
    return {
        "mid": [w for w in usable if low <= df[w] <= high],
        "common": [w for w in usable if df[w] > COMMON_DF * n],
        "rare": [w for w in usable if df[w] <= rare],
    }


def make_queries(bands: dict[str, list[str]], kind: str, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (query id, text) pairs of one kind."""
    rng = random.Random(f"{seed}:{kind}")
    queries = []
    for i in range(count):
        if kind == "mid":
            chosen = rng.sample(bands["mid"], rng.randint(2, 4))
        elif kind == "common":
            chosen = [rng.choice(bands["common"]), *rng.sample(bands["mid"], rng.randint(1, 3))]
            rng.shuffle(chosen)
        else:
            chosen = rng.sample(bands["rare"], rng.randint(1, 2))
        queries.append((f"{kind}-{i:04d}", " ".join(chosen)))
    return queries


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(query id, text) pairs of a file this script wrote."""
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f if line.strip()]


def write_query_sets(corpus: Path, out_dir: Path, count: int = 1000, seed: int = 0) -> dict[str, Path]:
    """Write the three query sets of `corpus`; returns kind -> file. Reports the bands on stderr."""
    df, n = document_frequencies(corpus)
    bands = word_bands(df, n)
    sizes = ", ".join(f"{kind} {len(found):,}" for kind, found in bands.items())
    print(f"{corpus}: {n:,} documents, {len(df):,} words; candidate query words: {sizes}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind in KINDS:
        path = out_dir / f"{corpus_name(corpus)}-{kind}.tsv"
        lines = [f"{qid}\t{text}\n" for qid, text in make_queries(bands, kind, count, seed)]
        path.write_text("".join(lines), encoding="utf-8")
        written[kind] = path
    return written


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a corpus folder or JSONL file")
    parser.add_argument("--count", type=int, default=1000, help="queries per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=here / "data" / "queries")
    args = parser.parse_args()
    for path in write_query_sets(args.corpus, args.out_dir, args.count, args.seed).values():
        print(path)


if __name__ == "__main__":
    main()
