"""Side by side with the peers: indexer vs tantivy and bm25s, same machine, corpus, queries and run.

    python bench/peers.py [--corpus bench/data/kernel-docs] [--queries FILE ...] [--repeat 3] [--big]
                          [--tantivy-tokenizer default|words] [--json] [--out bench/results/peers.md]

(the corpus: python bench/get_kernel_docs.py; the queries: python bench/make_queries.py CORPUS,
which this script runs itself when bench/data/queries/<corpus>-{mid,common,rare}.tsv are missing)

Build: each tool runs as its own process: `python -m indexer build CORPUS --stem none -p 1` and
`-p 2`, bench/tantivy_build.py with 1 and 2 writer threads, bench/bm25s_build.py. Wall time, CPU
time (user + sys of the whole process tree: this process becomes a child subreaper, so helpers
that outlive their parent, like multiprocessing's forkserver, are reaped here and counted), peak
RSS of the largest process (wait4) and of the tree (the sum, sampled every 50 ms), index size.
--big adds the same builds on <corpus>-x10 and <corpus>-x10.jsonl.
Queries: top 10, one thread, in this process, each set timed whole, interleaved: ours
`Searcher.search` (a fresh Searcher per pass, so no postings decoded by an earlier pass help),
tantivy `searcher.search(index.parse_query(...), 10)` with each hit's id read from its doc store,
bm25s `retrieve` on the whole set (tokenizing included). One untimed pass first checks that the
rankings agree. One-shot: whole processes `indexer search` and bench/tantivy_search.py, beside
`python -c "import numpy"`. Open + first query: in this process, the index files page-cached.
Every repetition runs every tool, in an order rotated from one repetition to the next; times are
the best of --repeat (medians for the 10-run latencies). Ratios are ours / theirs.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import bm25s
import psutil
import tantivy
from bench_corpus import corpus_files, corpus_name, words
from make_queries import KINDS, read_tsv, write_query_sets
from measure import become_subreaper, path_bytes, run_measured
from tantivy_build import WORDS_TOKENIZER, register_tokenizers

from indexer import Searcher, open_index

HERE = Path(__file__).resolve().parent
K = 10
TANTIVY_K1, TANTIVY_B = 1.2, 0.75  # tantivy's BM25 constants; ours is set to them for the comparison
BM25S_K1, BM25S_B = 0.9, 0.4  # bench/bm25s_build.py's, and ours by default
LATENCY_RUNS = 10
# our Searcher.search takes plain words with syntax=False; older versions have no such parameter
PLAIN = {"syntax": False} if "syntax" in inspect.signature(Searcher.search).parameters else {}


def rotated(items: list, times: int) -> list:
    times %= len(items)
    return items[times:] + items[:times]


# ---------------------------------------------------------------------------- build


def build_commands(corpus: Path, work: Path, tokenizer: str, heap_mb: int) -> dict[str, tuple[list[str], Path]]:
    """Tool label -> (command, what it writes)."""
    py, tag = sys.executable, corpus_name(corpus) + ("-jsonl" if corpus.is_file() else "")
    tools = {}
    for p in (1, 2):
        out = work / f"{tag}-ours-p{p}.idx"
        cmd = [py, "-m", "indexer", "build", str(corpus), "-o", str(out), "--stem", "none", "-p", str(p), "--json"]
        tools[f"ours -p {p}"] = (cmd, out)
    for threads in (1, 2):
        out = work / f"{tag}-tantivy-{threads}"
        cmd = [py, str(HERE / "tantivy_build.py"), str(corpus), str(out), "--threads", str(threads)]
        cmd += ["--heap-mb", str(heap_mb), "--tokenizer", tokenizer]
        tools[f"tantivy {threads} thread{'s' if threads > 1 else ''}"] = (cmd, out)
    out = work / f"{tag}-bm25s"
    tools["bm25s"] = ([py, str(HERE / "bm25s_build.py"), str(corpus), str(out)], out)
    return tools


def warm_page_cache(corpus: Path) -> None:
    """Read the corpus once, so that the first tool timed does not pay for the disk."""
    if corpus.is_file():
        with open(corpus, "rb") as f:
            while f.read(1 << 24):
                pass
        return
    for rel in corpus_files(corpus):
        (corpus / rel).read_bytes()


def measure_builds(corpus: Path, work: Path, args) -> dict:
    tools = build_commands(corpus, work, args.tantivy_tokenizer, args.heap_mb)
    warm_page_cache(corpus)
    runs: dict[str, list[dict]] = {label: [] for label in tools}
    for rep in range(args.repeat):
        for label in rotated(list(tools), rep):
            cmd, out = tools[label]
            result = run_measured(cmd)
            result["index_bytes"] = path_bytes(out)
            report = json.loads(result.pop("stdout").strip().splitlines()[-1])
            result["documents"] = report["documents"]
            result["extra"] = {k: v for k, v in report.items() if k in ("segments", "terms", "tokens")}
            runs[label].append(result)
            print(f"build {corpus.name} rep {rep + 1}: {label} {result['seconds']:.2f} s", file=sys.stderr)
    best = {}
    for label, results in runs.items():
        best[label] = {
            "seconds": min(r["seconds"] for r in results),
            "cpu_seconds": min(r["cpu_seconds"] for r in results),
            "peak_rss": max(r["peak_rss"] for r in results),
            "peak_tree_rss": max(r["peak_tree_rss"] for r in results),
            "index_bytes": results[-1]["index_bytes"],
            "documents": results[-1]["documents"],
            **results[-1]["extra"],
        }
    counts = {b["documents"] for b in best.values()}
    if len(counts) > 1:
        print(f"warning: the tools indexed different numbers of documents: {counts}", file=sys.stderr)
    pairs = [("ours -p 1", "tantivy 1 thread"), ("ours -p 2", "tantivy 2 threads"), ("ours -p 1", "bm25s")]
    ratios = {
        f"{a} / {b}": {
            key: best[a][key] / best[b][key] for key in ("seconds", "cpu_seconds", "peak_tree_rss", "index_bytes")
        }
        for a, b in pairs
    }
    paths = {label: str(out) for label, (_, out) in tools.items()}
    return {"corpus": str(corpus), "best": best, "ratios": ratios, "runs": runs, "paths": paths}


# ---------------------------------------------------------------------------- queries


class Tools:
    """The three indexes, open in this process, each answering a list of query texts with the
    top-10 doc ids of each."""

    def __init__(self, ours: Path, tantivy_dir: Path, bm25s_dir: Path, tokenizer: str):
        self.ours, self.tantivy_dir, self.bm25s_dir, self.tokenizer = ours, tantivy_dir, bm25s_dir, tokenizer
        self.stack = contextlib.ExitStack()
        self.reader = self.stack.enter_context(open_index(ours))
        self.index = self.open_tantivy()
        self.searcher = self.index.searcher()
        self.model, self.ids = self.open_bm25s()

    def open_tantivy(self) -> tantivy.Index:
        index = tantivy.Index.open(str(self.tantivy_dir))
        if self.tokenizer != "default":
            register_tokenizers(index)
        return index

    def open_bm25s(self):
        ids = json.loads((self.bm25s_dir / "doc_ids.json").read_text(encoding="utf-8"))
        return bm25s.BM25.load(str(self.bm25s_dir)), ids

    def ours_top(self, texts: list[str], k1: float = TANTIVY_K1, b: float = TANTIVY_B) -> list[list[str]]:
        searcher = Searcher(self.reader, k1=k1, b=b)
        return [[hit.doc for hit in searcher.search(text, k=K, **PLAIN).hits] for text in texts]

    def tantivy_top(self, texts: list[str]) -> list[list[str]]:
        index, searcher, found = self.index, self.searcher, []
        for text in texts:
            hits = searcher.search(index.parse_query(text, ["text"]), K).hits
            found.append([searcher.doc(address)["id"][0] for _, address in hits])
        return found

    def bm25s_top(self, texts: list[str]) -> list[list[str]]:
        docs, scores = self.model.retrieve([words(t) for t in texts], k=K, show_progress=False, n_threads=0)
        ids = self.ids
        return [
            [ids[d] for d, s in zip(row, row_scores) if s > 0]
            for row, row_scores in zip(docs.tolist(), scores.tolist())
        ]

    def close(self) -> None:
        self.stack.close()


def agreement(ours: list[list[str]], theirs: list[list[str]]) -> dict:
    """Share of queries with the same top-1 doc, and mean overlap of the top-10 lists."""
    both = [(a, b) for a, b in zip(ours, theirs) if a and b]
    top1 = sum(a[0] == b[0] for a, b in both) / len(both) if both else 0.0
    overlap = [len(set(a) & set(b)) / max(len(a), len(b)) for a, b in zip(ours, theirs) if a or b]
    empty_mismatch = sum(bool(a) != bool(b) for a, b in zip(ours, theirs))
    return {
        "top1": top1,
        "overlap_at_10": statistics.fmean(overlap) if overlap else 1.0,
        "compared": len(both),
        "hits_in_one_only": empty_mismatch,
    }


def measure_queries(tools: Tools, query_sets: dict[str, list[tuple[str, str]]], repeat: int) -> dict:
    results = {}
    for name, queries in query_sets.items():
        texts = [text for _, text in queries]
        # the untimed pass: rankings to compare, and every file and code path warm
        ours_t, theirs_t = tools.ours_top(texts), tools.tantivy_top(texts)
        ours_b, theirs_b = tools.ours_top(texts, BM25S_K1, BM25S_B), tools.bm25s_top(texts)
        results[name] = {
            "queries": len(texts),
            "agreement_tantivy": agreement(ours_t, theirs_t),
            "agreement_bm25s": agreement(ours_b, theirs_b),
            "qps_runs": {"ours": [], "tantivy": [], "bm25s": []},
        }
    runners = {"ours": tools.ours_top, "tantivy": tools.tantivy_top, "bm25s": tools.bm25s_top}
    for rep in range(repeat):
        for name, queries in query_sets.items():
            texts = [text for _, text in queries]
            for label in rotated(list(runners), rep):
                started = time.perf_counter()
                runners[label](texts)
                results[name]["qps_runs"][label].append(len(texts) / (time.perf_counter() - started))
        print(f"queries rep {rep + 1}: done", file=sys.stderr)
    for r in results.values():
        r["qps"] = {label: max(runs) for label, runs in r["qps_runs"].items()}
        r["ratios"] = {f"ours / {peer}": r["qps"]["ours"] / r["qps"][peer] for peer in ("tantivy", "bm25s")}
    return results


# ---------------------------------------------------------------------------- latency


def measure_oneshot(ours: Path, tantivy_dir: Path, texts: list[str], tokenizer: str) -> dict:
    """Median and min wall seconds of whole processes, one query each, interleaved."""
    py = sys.executable
    script = Path(py).parent / "indexer"
    ours_cmd = [str(script)] if script.exists() else [py, "-m", "indexer"]
    commands = {
        "indexer search": lambda q: [*ours_cmd, "search", str(ours), q, "-k", str(K)],
        "tantivy_search.py": lambda q: (
            [py, str(HERE / "tantivy_search.py"), str(tantivy_dir), q, "-k", str(K)] + ["--tokenizer", tokenizer]
        ),
        "python -c 'import numpy'": lambda q: [py, "-c", "import numpy"],
        "python -c 'import tantivy'": lambda q: [py, "-c", "import tantivy"],
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    for i, text in enumerate(texts[:LATENCY_RUNS]):
        for label in rotated(list(commands), i):
            started = time.perf_counter()
            subprocess.run(commands[label](text), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - started)
    return {label: {"median": statistics.median(t), "min": min(t), "runs": t} for label, t in times.items()}


def measure_open_first(tools: Tools, texts: list[str]) -> dict:
    """Median wall seconds to open each index in this process and answer one query."""

    def ours(text: str) -> None:
        with open_index(tools.ours) as reader:
            Searcher(reader, k1=TANTIVY_K1, b=TANTIVY_B).search(text, k=K, **PLAIN)

    def peer_tantivy(text: str) -> None:
        index = tools.open_tantivy()
        searcher = index.searcher()
        hits = searcher.search(index.parse_query(text, ["text"]), K).hits
        _ = [searcher.doc(address)["id"][0] for _, address in hits]

    def peer_bm25s(text: str) -> None:
        model, ids = tools.open_bm25s()
        docs, _ = model.retrieve([words(text)], k=K, show_progress=False, n_threads=0)
        _ = [ids[d] for d in docs[0].tolist()]

    runners = {"ours": ours, "tantivy": peer_tantivy, "bm25s": peer_bm25s}
    times: dict[str, list[float]] = {label: [] for label in runners}
    for i, text in enumerate(texts[:LATENCY_RUNS]):
        for label in rotated(list(runners), i):
            started = time.perf_counter()
            runners[label](text)
            times[label].append(time.perf_counter() - started)
    return {label: {"median": statistics.median(t), "min": min(t), "runs": t} for label, t in times.items()}


# ---------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "indexer"], capture_output=True, text=True
    )
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: metadata.version(name) for name in ("indexer", "numpy", "tantivy", "bm25s")},
        "indexer_commit": git.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else ""),
        "load_average_start": os.getloadavg(),
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def report(result: dict, args) -> str:
    m, c = result["machine"], result["corpus"]
    v = m["versions"]
    out = [
        f"# indexer vs tantivy and bm25s: {c['name']}",
        "",
        "`" + " ".join(["python bench/peers.py", *args.argv]) + "`",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_bytes'] / 2**30:.0f} GiB; {m['platform']}; Python"
        f" {m['python']}, numpy {v['numpy']}, tantivy {v['tantivy']}, bm25s {v['bm25s']}, indexer {v['indexer']}"
        f" ({m['indexer_commit']}). Load average {m['load_average_start'][0]:.2f} at the start,"
        f" {result['load_average_end'][0]:.2f} at the end. {result['seconds']:.0f} s in all.",
        "",
        f"Corpus: `{c['path']}`, {c['documents']:,} documents, {_mb(c['bytes'])} MB"
        + (f", {c['tokens']:,} tokens (ours)" if c.get("tokens") else "")
        + ".",
        "",
    ]
    for build in result["builds"]:
        best = build["best"]
        out += [
            f"## Build: `{build['corpus']}`",
            "",
            f"Best of {args.repeat}, interleaved. CPU: user + sys of the process tree. RSS: peak of the largest"
            " process / peak of the sum over the tree (sampled).",
            "",
            "| tool | seconds | CPU s | peak RSS MB | tree RSS MB | index MB | docs |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, b in best.items():
            note = f" ({b['segments']} segments)" if b.get("segments", 1) > 1 else ""
            out.append(
                f"| {label}{note} | {b['seconds']:.2f} | {b['cpu_seconds']:.2f} | {_mb(b['peak_rss'])}"
                f" | {_mb(b['peak_tree_rss'])} | {_mb(b['index_bytes'])} | {b['documents']:,} |"
            )
        out += ["", "| ours / theirs (above 1: ours slower or bigger) | seconds | CPU s | tree RSS | index size |"]
        out.append("|---|---:|---:|---:|---:|")
        for label, r in build["ratios"].items():
            out.append(
                f"| {label} | {_x(r['seconds'])} | {_x(r['cpu_seconds'])} | {_x(r['peak_tree_rss'])}"
                f" | {_x(r['index_bytes'])} |"
            )
        out.append("")
    out += [
        "## Queries: top 10, one thread, in-process",
        "",
        f"Queries per second, best of {args.repeat}, interleaved; ratios are ours / theirs in q/s (above 1:"
        f" ours faster). Ours with k1={TANTIVY_K1}, b={TANTIVY_B} (tantivy's constants), a fresh Searcher per"
        " pass; bm25s answers each set in one `retrieve` call. Agreement (untimed pass): same top-1 doc, mean"
        f" top-10 overlap; vs bm25s ours uses bm25s's k1={BM25S_K1}, b={BM25S_B}.",
        "",
        "| query set | queries | ours q/s | tantivy q/s | bm25s q/s | ours / tantivy | ours / bm25s"
        " | top-1 = tantivy | overlap@10 tantivy | top-1 = bm25s | overlap@10 bm25s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, q in result["queries"].items():
        qps, at, ab = q["qps"], q["agreement_tantivy"], q["agreement_bm25s"]
        out.append(
            f"| {name} | {q['queries']:,} | {qps['ours']:,.0f} | {qps['tantivy']:,.0f} | {qps['bm25s']:,.0f}"
            f" | {_x(q['ratios']['ours / tantivy'])} | {_x(q['ratios']['ours / bm25s'])}"
            f" | {at['top1']:.1%} | {at['overlap_at_10']:.1%} | {ab['top1']:.1%} | {ab['overlap_at_10']:.1%} |"
        )
    one, first = result["oneshot"], result["open_first"]
    ours_one, tantivy_one = one["indexer search"]["median"], one["tantivy_search.py"]["median"]
    ours_first = first["ours"]["median"]
    numpy_floor, tantivy_floor = one["python -c 'import numpy'"]["median"], one["python -c 'import tantivy'"]["median"]
    out += [
        "",
        f"## One-shot search: a whole process, median of {LATENCY_RUNS} (a different mid query each run)",
        "",
        "| command | median ms | min ms |",
        "|---|---:|---:|",
        *(f"| `{label}` | {t['median'] * 1e3:.0f} | {t['min'] * 1e3:.0f} |" for label, t in one.items()),
        "",
        f"ours / tantivy: {_x(ours_one / tantivy_one)}. Above the floor: ours {(ours_one - numpy_floor) * 1e3:.0f} ms"
        f" more than `import numpy`, tantivy {(tantivy_one - tantivy_floor) * 1e3:.0f} ms more than `import tantivy`.",
        "",
        f"## Open + first query, in-process, median of {LATENCY_RUNS}",
        "",
        "| tool | median ms | min ms | ours / tool |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {t['median'] * 1e3:.1f} | {t['min'] * 1e3:.1f} | {_x(ours_first / t['median'])} |"
            for label, t in first.items()
        ),
        "",
        "## Notes",
        "",
        f"- tantivy: schema `id` (stored, raw) + `text` (positions); tokenizer `{args.tantivy_tokenizer}`"
        + (
            " (splits on anything not alphanumeric, so `foo_bar` is two tokens where `\\w+` keeps one; drops"
            " tokens of 40+ bytes; lower-cases): close to, not the same as, ours with --stem none"
            if args.tantivy_tokenizer == "default"
            else " (a `\\w+` regex, lower-cased, tokens up to 64 bytes: ours with --stem none)"
        )
        + f"; writer heap {args.heap_mb} MB in all (ours: --memory default 1 GB); commit and"
        " wait_merging_threads are timed. Its BM25 is k1=1.2, b=0.75 with doc lengths quantized to one"
        " byte; ours uses exact lengths, so the top-1 can differ where scores are close.",
        "- bm25s: `\\w+` lower-cased tokens (this Python regex, timed in the build), `BM25(method='lucene',"
        " k1=0.9, b=0.4)`, saved with `save`; one process (numpy).",
        "- ours: `python -m indexer build CORPUS --stem none -p N`; queries as plain words. Every build"
        " runs as a whole process, so Python start-up and imports count for all three.",
        "- Query words are ASCII letters and digits (bench/make_queries.py), so all tools read the same words.",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- main


def load_query_sets(corpus: Path, files: list[Path] | None) -> dict[str, list[tuple[str, str]]]:
    name = corpus_name(corpus)
    if not files:
        folder = HERE / "data" / "queries"
        files = [folder / f"{name}-{kind}.tsv" for kind in KINDS]
        if not all(f.exists() for f in files):
            write_query_sets(corpus, folder)
    return {f.stem.removeprefix(name + "-"): read_tsv(f) for f in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=HERE / "data" / "kernel-docs")
    parser.add_argument("--queries", type=Path, nargs="+", help="TSV files (id<TAB>text); default: the three sets")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also time builds of <corpus>-x10 and <corpus>-x10.jsonl")
    parser.add_argument("--tantivy-tokenizer", choices=["default", WORDS_TOKENIZER], default="default")
    parser.add_argument("--heap-mb", type=int, default=1024, help="tantivy's writer heap, all threads")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the report")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    corpus = args.corpus.resolve()
    if not corpus.exists():
        sys.exit(f"{corpus}: no such corpus; run python bench/get_kernel_docs.py first")
    started = time.perf_counter()
    subreaper = become_subreaper()
    if not subreaper:
        print("warning: not a subreaper; CPU time of orphaned helpers goes uncounted", file=sys.stderr)
    query_sets = load_query_sets(corpus, args.queries)
    result = {"machine": machine(), "subreaper": subreaper}
    size = sum((corpus / rel).stat().st_size for rel in corpus_files(corpus)) if corpus.is_dir() else path_bytes(corpus)
    result["corpus"] = {"name": corpus_name(corpus), "path": str(corpus), "bytes": size}
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        result["builds"] = [measure_builds(corpus, work, args)]
        main_build = result["builds"][0]
        ours_p1 = main_build["best"]["ours -p 1"]
        result["corpus"].update(documents=ours_p1["documents"], tokens=ours_p1.get("tokens"))
        paths = {label: Path(p) for label, p in main_build["paths"].items()}
        tools = Tools(paths["ours -p 1"], paths["tantivy 1 thread"], paths["bm25s"], args.tantivy_tokenizer)
        try:
            result["queries"] = measure_queries(tools, query_sets, args.repeat)
            first_texts = [text for _, text in next(iter(query_sets.values()))]
            result["open_first"] = measure_open_first(tools, first_texts)
        finally:
            tools.close()
        result["oneshot"] = measure_oneshot(
            paths["ours -p 1"], paths["tantivy 1 thread"], first_texts, args.tantivy_tokenizer
        )
        if args.big:
            for extra in (corpus.with_name(corpus.name + "-x10"), corpus.with_name(corpus.name + "-x10.jsonl")):
                if extra.exists():
                    result["builds"].append(measure_builds(extra, work, args))
                    for built in map(Path, result["builds"][-1]["paths"].values()):  # the disk is finite
                        shutil.rmtree(built) if built.is_dir() else built.unlink()
                else:
                    print(f"skipping {extra}: not there (python bench/get_kernel_docs.py)", file=sys.stderr)
    result["load_average_end"] = os.getloadavg()
    result["seconds"] = time.perf_counter() - started
    text = report(result, args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(json.dumps(result) if args.json else text)


if __name__ == "__main__":
    main()
