"""Load on `indexer serve`: queries per second and latency with concurrent clients over HTTP.

    python bench/serve_load.py INDEX --queries FILE [FILE ...] [-c 8] [-n 10000] [--seconds 120]
                               [--warmup 1000] [--searchers 4] [-k 10] [--snippets] [--url URL] [--json]

Starts `python -m indexer serve INDEX --port 0` (or uses the server at --url), sends --warmup
queries untimed (one pass over the set at most), then -n queries from -c client threads, each on
its own kept-alive connection (http.client), stopping early after --seconds. Queries come from
the TSV files (`id<TAB>text`), interleaved, searched as plain words (syntax=0), round and round.
Reported: queries answered, wall time, queries/s, client-side latency (request written to answer
read) median/p90/p99/max, the server's own search time (took_ms) median, and any answer that was
not a 200 (exit 1 then). The clients run in this process and share its GIL: on a small machine
they take CPU from the server.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit


def read_queries(files: list[Path]) -> list[str]:
    """The query texts of TSV files, interleaved file by file (a, b, a, b, ...)."""
    sets = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            sets.append([line.rstrip("\n").split("\t", 1)[1] for line in f if "\t" in line])
    mixed = [q for group in itertools.zip_longest(*sets) for q in group if q is not None]
    if not mixed:
        raise SystemExit(f"no queries in {', '.join(map(str, files))}")
    return mixed


def start_server(index: Path, searchers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer", "serve", str(index), "--port", "0", "--searchers", str(searchers)],
        stderr=subprocess.PIPE,
        text=True,
    )
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        line = proc.stderr.readline() if selector.select(120) else ""
    found = re.search(r" on (http://\S+) ", line)
    if found is None:
        proc.kill()
        raise SystemExit(f"the server did not start: {line.strip() or proc.communicate()[1].strip()}")
    return proc, found[1]


def run_clients(url: str, paths: list[str], clients: int, count: int, seconds: float) -> dict:
    """Send `count` requests (paths taken round and round) from `clients` threads, or fewer when
    `seconds` run out; the latencies, the servers' took_ms and the failures."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    numbers = itertools.count()  # next() on it is atomic in CPython: each request number once
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    took: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []

    def client(me: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while (n := next(numbers)) < count and time.perf_counter() < deadline:
                path = paths[n % len(paths)]
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                latencies[me].append(time.perf_counter() - started)
                if response.status != 200:
                    failures.append(f"{response.status} {path}: {body[:200]!r}")
                else:
                    took[me].append(json.loads(body)["took_ms"])
        except (OSError, http.client.HTTPException) as err:
            failures.append(f"client {me}: {type(err).__name__}: {err}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "latencies": [x for part in latencies for x in part],
        "took_ms": [x for part in took for x in part],
        "failures": failures,
        "seconds": wall,
    }


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path, help="the index to serve (ignored with --url)")
    parser.add_argument("--queries", type=Path, nargs="+", required=True, help="TSV query files: id<TAB>text")
    parser.add_argument("-c", "--clients", type=int, default=8)
    parser.add_argument("-n", "--count", type=int, default=10_000, help="queries timed")
    parser.add_argument("--seconds", type=float, default=120, help="stop the timed run after this long")
    parser.add_argument("--warmup", type=int, default=1_000, help="queries sent first, untimed (one pass at most)")
    parser.add_argument("--searchers", type=int, default=4, help="the server's --searchers")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--snippets", action="store_true", help="ask for snippets (a source file read per hit)")
    parser.add_argument("--url", help="load a server already running there instead of starting one")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    queries = read_queries(args.queries)
    extra = {"k": args.k, "syntax": 0, **({"snippets": 1} if args.snippets else {})}
    paths = ["/search?" + urlencode({"q": q, **extra}) for q in queries]
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        proc, url = start_server(args.index, args.searchers)
    try:
        warm = run_clients(url, paths, args.clients, min(args.warmup, len(paths)), args.seconds)
        timed = run_clients(
            url, paths[len(paths) // 2 :] + paths[: len(paths) // 2], args.clients, args.count, args.seconds
        )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)

    latencies = sorted(timed["latencies"])
    done = len(latencies)
    summary = {
        "index": str(args.index) if proc is not None else None,
        "url": url,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "clients": args.clients,
        "searchers": args.searchers if proc is not None else None,
        "k": args.k,
        "snippets": args.snippets,
        "query_files": [p.name for p in args.queries],
        "distinct_queries": len(set(queries)),
        "warmup_queries": len(warm["latencies"]),
        "queries": done,
        "seconds": timed["seconds"],
        "queries_per_second": done / timed["seconds"] if timed["seconds"] else 0.0,
        "latency_ms": {
            name: percentile(latencies, p) * 1000 if latencies else None
            for name, p in (("median", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "server_took_ms_median": statistics.median(timed["took_ms"]) if timed["took_ms"] else None,
        "failures": len(timed["failures"]) + len(warm["failures"]),
        "failure_examples": (warm["failures"] + timed["failures"])[:5],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        ms = summary["latency_ms"]
        print(f"indexer serve {args.index.name if proc else url}: {summary['machine']}")
        print(
            f"  {done:,} queries ({', '.join(summary['query_files'])}; k={args.k}"
            f"{', snippets' if args.snippets else ''}) from {args.clients} clients in {timed['seconds']:.2f} s"
            f" after {summary['warmup_queries']:,} untimed"
            + (f" (stopped at --seconds {args.seconds:g})" if done < args.count else "")
        )
        print(f"  throughput  {summary['queries_per_second']:,.0f} queries/s")
        if latencies:
            print(
                f"  latency     median {ms['median']:.2f} ms, p90 {ms['p90']:.2f} ms, p99 {ms['p99']:.2f} ms, "
                f"max {ms['max']:.1f} ms (client side)"
            )
            print(f"  search      median {summary['server_took_ms_median']:.2f} ms (the server's took_ms)")
        print(f"  failures    {summary['failures']}" + "".join(f"\n    {f}" for f in summary["failure_examples"]))
    if summary["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
