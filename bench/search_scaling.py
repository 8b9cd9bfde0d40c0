"""Search as the collection grows, and batch search on a pool.

    python bench/search_scaling.py [--sizes 100000,1000000,3000000] [--work bench/out/scaling]
                                   [--batch-corpus DIR --batch-queries TSV] [--out FILE]

Latency: synthetic collections of short passages (20 to 60 words from a Zipf vocabulary of 50,000
words, like MS MARCO passages) of each size, built once and kept under --work. Into every one the
same 50 rare words (zqa, zqb, ...) are planted in exactly 20 passages each, so a query for them has
the same answer at every size. 500 queries of one or two of those words are timed in this process
(top 10, k1 1.2, b 0.75, a fresh Searcher per pass so no term is cached), best of 3 passes; the
mean latency at each size is compared with the smallest one's. The engine is built so that the
cost follows the answer, not the collection: the target is a ratio within 2x.

Batch: `indexer search INDEX --queries FILE -p N --trec run` (1,000 hits a query) as whole
processes for N = 1 and 2 on 10,000 queries (the --batch-queries file repeated), output to
/dev/null, on an index of --batch-corpus (built once under --work, --stem none); the speedup of -p 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import string
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from indexer import Searcher, open_index
from indexer.analysis import AnalyzerConfig
from indexer.indexing.pipeline import BuildOptions, build_index

HERE = Path(__file__).resolve().parent
VOCAB, ZIPF = 50_000, 1.1
PLANTED, PLANTED_DF = 50, 20
QUERIES, PASSES = 500, 3
BATCH_QUERIES = 10_000


def planted_words() -> list[str]:
    letters = string.ascii_lowercase
    return ["zq" + a + b for a, b in itertools.islice(itertools.product(letters, repeat=2), PLANTED)]


def write_collection(path: Path, size: int, seed: int = 0) -> None:
    """`size` passages as JSONL, the planted words in PLANTED_DF passages each."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
    cumulative = np.cumsum(weights / weights.sum())
    vocab = np.array([f"w{i}" for i in range(VOCAB)], dtype=object)
    planted: dict[int, list[str]] = {}
    for word in planted_words():
        for doc in rng.choice(size, PLANTED_DF, replace=False).tolist():
            planted.setdefault(doc, []).append(word)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for start in range(0, size, 100_000):
            count = min(100_000, size - start)
            lengths = rng.integers(20, 61, count)
            words = vocab[np.searchsorted(cumulative, rng.random(int(lengths.sum())))]
            cuts = np.concatenate(([0], np.cumsum(lengths)))
            lines = []
            for i in range(count):
                doc = start + i
                text = " ".join(words[cuts[i] : cuts[i + 1]])
                if doc in planted:
                    text += " " + " ".join(planted[doc])
                lines.append(json.dumps({"id": f"p{doc}", "text": text}))
            out.write("\n".join(lines) + "\n")
    tmp.rename(path)


def collection_index(work: Path, size: int) -> Path:
    corpus, index = work / f"passages-{size}.jsonl", work / f"passages-{size}.idx"
    if not corpus.exists():
        print(f"writing {size:,} passages...", file=sys.stderr)
        write_collection(corpus, size)
    if not index.exists():
        print(f"indexing {size:,} passages...", file=sys.stderr)
        build_index([corpus], index, BuildOptions())
    return index


def rare_queries(seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    words = planted_words()
    return [" ".join(rng.choice(words, int(rng.integers(1, 3)), replace=False)) for _ in range(QUERIES)]


def mean_latency(index: Path, queries: list[str]) -> float:
    best = float("inf")
    with open_index(index) as reader:
        for _ in range(PASSES):
            searcher = Searcher(reader, k1=1.2, b=0.75)
            started = time.perf_counter()
            for text in queries:
                searcher.search(text, k=10, syntax=False)
            best = min(best, (time.perf_counter() - started) / len(queries))
    return best


def batch_speedup(index: Path, queries_file: Path, work: Path) -> dict:
    lines = queries_file.read_text(encoding="utf-8").splitlines()
    repeated = work / "batch-queries.tsv"
    texts = [line.split("\t", 1)[1] for line in lines]
    rows = [f"b{i}\t{text}" for i, text in enumerate(itertools.islice(itertools.cycle(texts), BATCH_QUERIES))]
    repeated.write_text("\n".join(rows) + "\n", encoding="utf-8")
    script = Path(sys.executable).parent / "indexer"
    times: dict[int, list[float]] = {1: [], 2: []}
    for rep in range(PASSES):
        for processes in (1, 2) if rep % 2 == 0 else (2, 1):
            started = time.perf_counter()
            subprocess.run(
                [str(script), "search", str(index), "--queries", str(repeated), "-p", str(processes), "--trec", "b"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times[processes].append(time.perf_counter() - started)
    best = {p: min(t) for p, t in times.items()}
    return {"queries": BATCH_QUERIES, "seconds": best, "speedup": best[1] / best[2], "runs": times}


def report(result: dict) -> str:
    lines = [
        "# Search as the collection grows",
        "",
        f"{result['machine']}; {result['date']}; load average at the end {result['load']}",
        "",
        "| passages | index MB | mean latency, rare-word queries | vs the smallest |",
        "|---:|---:|---:|---:|",
    ]
    first = result["latency"][0]["seconds"]
    for row in result["latency"]:
        lines.append(
            f"| {row['size']:,} | {row['index_bytes'] / 1e6:,.0f} | {row['seconds'] * 1e6:,.0f} µs | "
            f"{row['seconds'] / first:.2f}x |"
        )
    if "batch" in result:
        b = result["batch"]
        lines += [
            "",
            f"Batch search, {b['queries']:,} queries, whole processes: -p 1 {b['seconds'][1]:.2f} s, "
            f"-p 2 {b['seconds'][2]:.2f} s: {b['speedup']:.2f}x.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--work", type=Path, default=HERE / "out" / "scaling")
    parser.add_argument("--batch-corpus", type=Path, help="corpus for the batch measurement (indexed once)")
    parser.add_argument("--batch-queries", type=Path, help="TSV queries for it, repeated to 10,000")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    queries = rare_queries()
    result: dict = {"latency": []}
    for size in map(int, args.sizes.split(",")):
        index = collection_index(args.work, size)
        seconds = mean_latency(index, queries)
        result["latency"].append({"size": size, "seconds": seconds, "index_bytes": index.stat().st_size})
        print(f"{size:,} passages: {seconds * 1e6:,.0f} µs per query", file=sys.stderr)
    if args.batch_corpus and args.batch_queries:
        index = args.work / f"{args.batch_corpus.name}.idx"
        if not index.exists():
            build_index([args.batch_corpus], index, BuildOptions(analyzer=AnalyzerConfig(stem="none")))
        result["batch"] = batch_speedup(index, args.batch_queries, args.work)
    result["machine"] = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    result["date"] = time.strftime("%Y-%m-%d")
    result["load"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result["latency_spread"] = max(r["seconds"] for r in result["latency"]) / min(
        r["seconds"] for r in result["latency"]
    )
    text = report(result)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
