"""Compare our BM25 with bm25s: retrieval quality on the shared test collections, and query speed.

    python bench/compare_bm25s.py [--data ../shared/data] [--synthetic DIR] [--out bench/results/quality.md]

    (a synthetic corpus: python bench/gen_corpus.py bench/data/synthetic-50MB-jsonl --size 50MB --format jsonl)

For each collection (cranfield, scifact, cisi, medline) and each analyzer (stem none, stem english):
build our index from corpus.jsonl, run every query to depth 1000 as plain words, and score nDCG@10,
MAP and Recall@100 with indexer.evaluate. bm25s ("lucene", k1=0.9, b=0.4) indexes the very same
token lists (our Analyzer over each record's title + text, records our reader skips left out) and
is scored by the same code. Speed: batch queries per second at k=10 in this one process, on the
largest collection and on the --synthetic corpus (a folder or file bench/gen_corpus.py wrote; its
queries are 2-4 terms drawn from its token stream with a fixed seed, so common terms come often).
Ours is timed over `Searcher.search_many`, query parsing and analysis included, first with a fresh
Searcher (postings decoded as the batch goes) and then again on the same Searcher (decoded postings
cached); bm25s over `retrieve` on pre-tokenized queries. Best of --repeat runs, interleaved.
The markdown report is printed and written to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.corpus.discover import plan_corpus
from indexer.corpus.readers import ReadOptions, read_piece, record_id_and_text
from indexer.corpus.skips import SkipLog
from indexer.evaluate import evaluate, evaluate_index, read_qrels, read_queries
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval.searcher import Searcher, open_index

K1, B, DEPTH = 0.9, 0.4, 1000
METRICS = ["ndcg@10", "map", "recall@100"]
COLLECTIONS = ["cranfield", "scifact", "cisi", "medline"]
STEMS = ["none", "english"]
# nDCG@10 of the reference BM25 in shared/data/README.md: (no stemming, English Snowball)
REFERENCE = {
    "cranfield": (0.3276, 0.3496),
    "scifact": (0.6618, 0.6817),
    "cisi": (0.3180, 0.3380),
    "medline": (0.6484, 0.6681),
}


def collection_tokens(corpus: Path, analyzer: Analyzer) -> tuple[list[str], list[list[str]]]:
    """(doc ids, token lists) of a JSONL corpus, as our reader sees it: same fields, same skips."""
    ids, tokens = [], []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc_id, text = record_id_and_text(json.loads(line))
            if doc_id is None or not text.strip():
                continue
            ids.append(doc_id)
            tokens.append(analyzer.terms(text))
    return ids, tokens


def bm25s_index(tokens: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25(method="lucene", k1=K1, b=B)
    model.index(tokens, show_progress=False)
    return model


def bm25s_run(model, ids: list[str], queries: list[tuple[str, list[str]]], depth: int) -> dict[str, list[str]]:
    """Query id -> doc ids ranked by bm25s, documents with score 0 (no query term) left out."""
    docs, scores = model.retrieve([q for _, q in queries], k=min(depth, len(ids)), show_progress=False)
    return {
        qid: [ids[d] for d, s in zip(row_docs.tolist(), row_scores.tolist()) if s > 0]
        for (qid, _), row_docs, row_scores in zip(queries, docs, scores)
    }


def quality(data: Path, tmp: Path) -> tuple[list[dict], dict]:
    rows, largest = [], None
    for name in COLLECTIONS:
        folder = data / name
        if not (folder / "corpus.jsonl").exists():
            print(f"skipping {name}: no {folder / 'corpus.jsonl'}", file=sys.stderr)
            continue
        queries = read_queries(folder / "queries.tsv")
        qrels = read_qrels(folder / "qrels.txt")
        for stem in STEMS:
            config = AnalyzerConfig(stem=stem)
            index = tmp / f"{name}-{stem}.idx"
            stats = build_index([folder / "corpus.jsonl"], index, BuildOptions(processes=1, analyzer=config))
            with open_index(index) as reader:
                ours = evaluate_index(reader, queries, qrels, METRICS, depth=DEPTH, k1=K1, b=B)
            analyzer = Analyzer(config)
            ids, tokens = collection_tokens(folder / "corpus.jsonl", analyzer)
            assert len(ids) == stats.documents, (name, len(ids), stats.documents)
            model = bm25s_index(tokens)
            query_tokens = [(qid, analyzer.terms(text)) for qid, text in queries]
            theirs = evaluate(bm25s_run(model, ids, query_tokens, DEPTH), qrels, METRICS)
            rows.append(
                {
                    "collection": name,
                    "stem": stem,
                    "docs": stats.documents,
                    "queries": ours.queries,
                    "ours": ours.mean,
                    "bm25s": theirs.mean,
                    "reference": REFERENCE[name][STEMS.index(stem)],
                }
            )
            print(f"{name} stem={stem}: done", file=sys.stderr)
            if stem == "none" and (largest is None or stats.documents > largest["docs"]):
                largest = {"name": name, "docs": stats.documents, "index": index, "queries": queries}
                largest.update(model=model, analyzer=analyzer)
    return rows, largest


def time_batches(index: Path, queries: list[tuple[str, str]], model, analyzer, repeat: int) -> dict[str, float]:
    """Best-of-`repeat` queries per second at k=10: ours cold, ours warm, bm25s."""
    query_tokens = [analyzer.terms(text) for _, text in queries]
    best = {"ours_fresh": 0.0, "ours_cached": 0.0, "bm25s": 0.0}
    with open_index(index) as reader:
        Searcher(reader).search("warm up the reader", k=10)  # map the file, decode the doc table
        for _ in range(repeat):
            searcher = Searcher(reader, K1, B)
            for key in ("ours_fresh", "ours_cached"):
                started = time.perf_counter()
                for _ in searcher.search_many(queries, 10, syntax=False):
                    pass
                best[key] = max(best[key], len(queries) / (time.perf_counter() - started))
            started = time.perf_counter()
            model.retrieve(query_tokens, k=10, show_progress=False, n_threads=0)
            best["bm25s"] = max(best["bm25s"], len(queries) / (time.perf_counter() - started))
    return best


def synthetic(corpus: Path, tmp: Path, count: int, seed: int, repeat: int) -> dict:
    config = AnalyzerConfig(stem="none")
    analyzer = Analyzer(config)
    index = tmp / "synthetic.idx"
    started = time.perf_counter()
    stats = build_index([corpus], index, BuildOptions(analyzer=config))
    build_seconds = time.perf_counter() - started
    # the same documents our reader indexed, tokenized by the same analyzer, for bm25s
    tokens, log = [], SkipLog()
    for chunk in plan_corpus([corpus], 64 << 20, ReadOptions()).chunks:
        for piece in chunk.pieces:
            tokens.extend(analyzer.terms(doc.text) for doc in read_piece(piece, ReadOptions(), log))
    assert len(tokens) == stats.documents, (len(tokens), stats.documents)
    started = time.perf_counter()
    model = bm25s_index(tokens)
    bm25s_seconds = time.perf_counter() - started
    rng = random.Random(seed)
    queries = []
    for i in range(count):
        words = []
        for _ in range(rng.randint(2, 4)):
            doc = tokens[rng.randrange(len(tokens))]
            while not doc:
                doc = tokens[rng.randrange(len(tokens))]
            words.append(doc[rng.randrange(len(doc))])
        queries.append((f"s{i}", " ".join(words)))
    del tokens
    speed = time_batches(index, queries, model, analyzer, repeat)
    return {
        "corpus": str(corpus),
        "docs": stats.documents,
        "tokens": stats.tokens,
        "queries": count,
        "build_seconds": build_seconds,
        "bm25s_index_seconds": bm25s_seconds,
        "speed": speed,
    }


def report(rows: list[dict], speeds: list[tuple[str, dict]], args) -> str:
    out = [
        "# BM25 quality and speed: indexer vs bm25s",
        "",
        f"`python bench/compare_bm25s.py{' --synthetic ' + str(args.synthetic) if args.synthetic else ''}`"
        f" (k1={K1}, b={B}, depth {DEPTH}, queries as plain words; bm25s {bm25s.__version__} `lucene` on the"
        " same token lists; both scored by indexer.evaluate; reference: shared/data/README.md)",
        "",
        "| collection | stem | docs | queries | nDCG@10 ours | nDCG@10 bm25s | nDCG@10 reference | ours - ref"
        " | MAP ours | MAP bm25s | R@100 ours | R@100 bm25s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        o, t = r["ours"], r["bm25s"]
        out.append(
            f"| {r['collection']} | {r['stem']} | {r['docs']:,} | {r['queries']} | {o['ndcg@10']:.4f}"
            f" | {t['ndcg@10']:.4f} | {r['reference']:.4f} | {round(o['ndcg@10'] - r['reference'], 4) + 0.0:+.4f}"
            f" | {o['map']:.4f} | {t['map']:.4f} | {o['recall@100']:.4f} | {t['recall@100']:.4f} |"
        )
    out += [
        "",
        "docs: the records our reader indexes (records with no text are skipped; the reference counts them).",
        "",
        f"Batch queries per second, k=10, one process, best of {args.repeat} (ours: `Searcher.search_many`,"
        " parsing and analysis included; fresh = new Searcher, cached = the same batch again;"
        " bm25s: `retrieve` on pre-tokenized queries):",
        "",
        "| corpus | docs | queries | ours fresh | ours cached | bm25s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    machine = (
        f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs"
        f" ({platform.machine()}); timings are wall clock, so other load on the machine lowers them."
    )
    for label, s in speeds:
        sp = s["speed"]
        out.append(
            f"| {label} | {s['docs']:,} | {s['queries']:,} | {sp['ours_fresh']:,.0f} | {sp['ours_cached']:,.0f}"
            f" | {sp['bm25s']:,.0f} |"
        )
    return "\n".join([*out, "", machine]) + "\n"


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=here.parents[1] / "shared" / "data")
    parser.add_argument("--synthetic", type=Path, help="a corpus written by bench/gen_corpus.py")
    parser.add_argument("--synthetic-queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=here / "results" / "quality.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: no such folder; give --data DIR with the test collections")
    with tempfile.TemporaryDirectory(prefix="compare-bm25s-") as tmp:
        rows, largest = quality(args.data, Path(tmp))
        speeds = []
        if largest is not None:
            name, queries = largest["name"], largest["queries"]
            speed = time_batches(largest["index"], queries, largest["model"], largest["analyzer"], args.repeat)
            speeds.append((name, {"docs": largest["docs"], "queries": len(queries), "speed": speed}))
        if args.synthetic:
            result = synthetic(args.synthetic, Path(tmp), args.synthetic_queries, args.seed, args.repeat)
            speeds.append((f"synthetic {args.synthetic.name}", result))
            print(json.dumps(result), file=sys.stderr)
    text = report(rows, speeds, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
