"""Bench: build the same corpus with several process counts and compare speed, memory and size.

Reports per process count: seconds, MB/s, speedup over the first count, the parent's serial share
(planning, ordering and writing: the Amdahl fraction), peak RSS of the whole process tree, and bytes
per posting and per token. It also times the bare `re.findall(r"\\w+", text.lower())` loop over the
same documents, the speed limit of CPython's tokenizer that a sequential build is measured against.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from indexer.analysis import WORD_RE
from indexer.corpus.discover import plan_corpus
from indexer.corpus.readers import read_piece
from indexer.corpus.skips import SkipLog
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval.searcher import Searcher
from indexer.store.index import IndexReader


@dataclass(frozen=True)
class BenchRow:
    requested: int  # the process count asked for
    processes: int  # the count the build used (fewer when the corpus has fewer chunks)
    seconds: float
    mb_per_s: float
    speedup: float
    serial_share: float  # parent-only seconds / this build's seconds
    peak_rss_bytes: int | None
    index_bytes: int
    bytes_per_posting: float
    bytes_per_token: float
    timings: dict


@dataclass(frozen=True)
class BenchReport:
    corpus: str
    documents: int
    tokens: int
    postings: int
    bytes_read: int
    findall_mb_per_s: float
    open_and_query_ms: float  # open the index and answer a two-term query (median of 5, warm cache)
    rows: list[BenchRow]

    def to_dict(self) -> dict:
        return asdict(self)


class _PeakRss:
    """Samples the RSS of this process and all its descendants (psutil) until stopped."""

    def __init__(self, interval: float = 0.05):
        try:
            import psutil
        except ImportError:  # optional: `pip install indexer[bench]`
            self.peak = None
            return
        self._psutil, self._interval, self.peak = psutil, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = self._psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except self._psutil.Error:  # the process ended between listing and reading
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def stop(self) -> int | None:
        if self.peak is not None:
            self._stop.set()
            self._thread.join()
        return self.peak


def findall_speed(paths: list[Path]) -> float:
    """MB/s of reading every document and running `re.findall(r"\\w+", text.lower())` on it."""
    plan = plan_corpus(paths, 1 << 62)
    log = SkipLog()
    started, size = time.perf_counter(), 0
    for chunk in plan.chunks:
        for piece in chunk.pieces:
            for doc in read_piece(piece, BuildOptions().read, log):
                for block in doc.blocks():  # (a streamed file's blocks may cut a word: no matter here)
                    WORD_RE.findall(block.lower())
                size += doc.length
    return size / 1e6 / (time.perf_counter() - started)


def run_bench(
    paths: list[Path], process_counts: list[int], options: BuildOptions = BuildOptions(), out_dir: Path | None = None
) -> BenchReport:
    """Build `paths` once per process count (same options otherwise) and measure each build."""
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        _warm_up(paths, Path(tmp), options)
        for processes in process_counts:
            out = Path(tmp, f"bench-p{processes}.idx")
            sampler = _PeakRss()
            stats = build_index(paths, out, replace(options, processes=processes))
            peak = sampler.stop()
            serial = stats.timings["plan"] + stats.timings["between"] + stats.timings["write"]
            rows.append(
                BenchRow(
                    requested=processes,
                    processes=stats.processes,
                    seconds=stats.seconds,
                    mb_per_s=stats.bytes_read / 1e6 / stats.seconds,
                    speedup=(rows[0].seconds / stats.seconds) if rows else 1.0,
                    serial_share=serial / stats.seconds,
                    peak_rss_bytes=peak,
                    index_bytes=stats.index_bytes,
                    bytes_per_posting=stats.index_bytes / max(1, stats.postings),
                    bytes_per_token=stats.index_bytes / max(1, stats.tokens),
                    timings=stats.timings,
                )
            )
            if len(rows) == 1:
                query_ms = _open_and_query_ms(out)
            out.unlink()
    findall = findall_speed(paths)  # after the builds, so that it too reads from a warm page cache
    return BenchReport(
        corpus=", ".join(map(str, paths)),
        documents=stats.documents,
        tokens=stats.tokens,
        postings=stats.postings,
        bytes_read=stats.bytes_read,
        findall_mb_per_s=findall,
        open_and_query_ms=query_ms,
        rows=rows,
    )


def _warm_up(paths: list[Path], tmp: Path, options: BuildOptions) -> None:
    """Untimed: read the corpus once (page cache) and build a one-document corpus (imports, the
    stemmer), so that the first timed build is not charged for what the later ones get free."""
    findall_speed(paths)
    (tmp / "warm-up").mkdir()
    (tmp / "warm-up" / "doc.txt").write_text("warm up the indexer\n", encoding="utf-8")
    build_index([tmp / "warm-up"], tmp / "warm-up.idx", replace(options, processes=1))


def _open_and_query_ms(index: Path) -> float:
    """Milliseconds to open `index` and rank a query of two mid-frequency terms (median of 5)."""
    with IndexReader(index) as reader:
        middle = reader.term_count // 2
        query = f"{reader.term(middle)} {reader.term(min(middle + 1, reader.term_count - 1))}"
    times = []
    for _ in range(5):
        started = time.perf_counter()
        with IndexReader(index) as reader:
            Searcher(reader).search(query, k=10)
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[2]
