"""Build: plan chunks -> invert them on an executor -> merge term ranges -> write one index file.

The parent only plans, orders summaries and concatenates range parts; inverting and merging run
on the executor. Doc ids follow chunk order and each term is encoded on its own, so the file is
the same whatever the process count, chunk size or memory limit.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.analysis import AnalyzerConfig
from indexer.corpus.discover import CorpusPlan, plan_corpus
from indexer.corpus.readers import ReadOptions
from indexer.corpus.skips import EXAMPLES_PER_REASON, SkipReason
from indexer.errors import CorpusError, IndexerError
from indexer.indexing.executors import cpu_count, make_executor
from indexer.indexing.invert import InvertSettings, RunSummary, invert_chunk
from indexer.indexing.merge import RangeSummary, TermRange, combine_runs, merge_range, plan_ranges
from indexer.indexing.parts import STREAMS, part_arrays, part_stream
from indexer.indexing.runs import read_doc_table, run_term_count
from indexer.store.files import make_temp_dir, remove_leftovers, writer_lock
from indexer.store.index import TermTable, is_index_file, write_index
from indexer.store.meta import IndexMeta, ReadInfo

DEFAULT_CHUNK_SIZE = 4 << 20
DEFAULT_MEMORY = 1 << 30
BYTES_PER_MERGED_POSTING = 120  # peak worker RSS growth per posting + position of a merge batch (measured)
RANGES_PER_PROCESS = 4
MIN_FAN_IN, MAX_FAN_IN = 4, 256  # runs one merge reads at once; more are first combined in groups
BYTES_PER_RUN_TERM = 80  # merge memory per run and term it reads (offsets, hashes, groups, numbers; measured)


@dataclass(frozen=True)
class BuildOptions:
    """Everything a build can be asked to do differently. None processes: one per CPU."""

    processes: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    memory: int = DEFAULT_MEMORY
    positions: bool = True
    analyzer: AnalyzerConfig = AnalyzerConfig()
    read: ReadOptions = ReadOptions()
    tmp_dir: Path | None = None


@dataclass(frozen=True)
class Progress:
    """Reported after each finished task: stage is "invert" (done/total in bytes), "combine" or
    "merge" (done/total in tasks)."""

    stage: str
    done: int
    total: int
    documents: int = 0


@dataclass(frozen=True)
class BuildStats:
    documents: int
    terms: int
    postings: int
    tokens: int
    bytes_read: int
    seconds: float
    processes: int
    skipped: int  # inputs not indexed
    skipped_by_reason: dict[str, int]  # reason code -> count; repaired ones (documents kept) included
    repaired: int  # documents indexed despite a problem (duplicate id, undecodable bytes replaced)
    skipped_examples: dict[str, list[str]]  # reason code -> the first few places
    index: str
    index_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    leftovers_removed: list[str] = field(default_factory=list)  # temporary files of killed builds, removed

    def to_dict(self) -> dict:
        return asdict(self)


def build_index(
    paths: list[Path],
    output: Path,
    options: BuildOptions = BuildOptions(),
    on_progress: Callable[[Progress], None] | None = None,
    executor=None,
) -> BuildStats:
    """Index the documents under `paths` into the file `output` (replaced atomically).

    `executor` overrides the one `options.processes` asks for (the caller then closes it). A
    symbolic link `output` keeps pointing where it did: the file it names is replaced. Temporary
    files that killed builds left beside `output` (or in `options.tmp_dir`) are removed first.
    Raises CorpusError when there is nothing to index, IndexerError when another process is writing
    `output`, when the disk fills up or when output cannot be written (or OSError), WorkerError
    when a worker dies. On any failure or interrupt `output` is left as it was, and nothing else.
    """
    started = time.perf_counter()
    output = _write_target(Path(output))
    _check_output(output)
    with writer_lock(output):
        leftovers = remove_leftovers(output.parent)
        if options.tmp_dir is not None and Path(options.tmp_dir).resolve() != output.parent.resolve():
            leftovers += remove_leftovers(Path(options.tmp_dir))
        stats = _build(paths, output, options, on_progress, executor, started)
    return replace(stats, leftovers_removed=leftovers)


def _build(paths, output: Path, options: BuildOptions, on_progress, executor, started: float) -> BuildStats:
    timings: dict[str, float] = {}
    own_executor = executor is None
    requested = executor.processes if executor is not None else options.processes or cpu_count()
    # a pool is started before planning, so that its workers start and import while we plan
    early = make_executor(requested) if own_executor and requested > 1 else None
    try:
        plan = plan_corpus(list(paths), options.chunk_size, options.read, ignore=Path(os.path.abspath(output)))
        tmp = _make_tmp_dir(options.tmp_dir, output)
    except BaseException:
        if early is not None:
            early.abort()
        raise
    processes = max(1, min(requested, len(plan.chunks))) if own_executor else requested
    timings["plan"] = time.perf_counter() - started
    writing = tmp  # what a full disk would be full of
    finished = False
    try:
        if own_executor:
            executor = early if early is not None and processes > 1 else make_executor(processes)
            if early is not None and executor is not early:  # one chunk: the work runs in this process
                early.close()
        executor.check_paths([tmp, plan.chunks[0].pieces[0].path])  # workers elsewhere (Dask) must see our files
        share = options.memory // (processes + 1)  # each worker's memory; the parent keeps one share
        settings = InvertSettings(options.analyzer, options.read, options.positions, share)
        summaries = _invert(executor, plan, settings, tmp, on_progress, timings)
        mark = time.perf_counter()
        documents = sum(s.documents for s in summaries)
        skipped, examples = _skips(plan, summaries)
        if options.read.strict and skipped:
            details = ", ".join(f"{n} {SkipReason(r).label} (first: {examples[r][0]})" for r, n in skipped.items())
            raise CorpusError(f"{details}; --strict refuses skipped or repaired input: fix it or drop --strict")
        if documents == 0:
            reasons = ", ".join(f"{n} {SkipReason(r).label}" for r, n in skipped.items()) or "no documents"
            raise CorpusError(f"nothing to index in {', '.join(map(str, paths))}: {reasons}")
        ranges = _plan_ranges(summaries, processes)
        runs, offset = [], 0
        for s in summaries:
            runs.extend((path, offset) for path in s.runs)
            offset += s.documents
        timings["between"] = time.perf_counter() - mark
        batch_weight = max(1000, share // BYTES_PER_MERGED_POSTING)
        mark = time.perf_counter()
        runs = _limit_fan_in(executor, runs, tmp, options.positions, share, batch_weight, on_progress)
        timings["combine"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tasks = [(runs, r, tmp, options.positions, batch_weight) for r in ranges]
        parts: list[RangeSummary] = _run_all(executor, merge_range, tasks, "merge", on_progress)
        timings["merge"] = time.perf_counter() - mark
        mark = time.perf_counter()
        stats = BuildStats(
            documents=documents,
            terms=sum(p.terms for p in parts),
            postings=sum(p.postings for p in parts),
            tokens=sum(s.tokens for s in summaries),
            bytes_read=sum(s.bytes_read for s in summaries),
            seconds=0.0,
            processes=processes,
            skipped=sum(n for code, n in skipped.items() if not SkipReason(code).kept),
            repaired=sum(n for code, n in skipped.items() if SkipReason(code).kept),
            skipped_by_reason=skipped,
            skipped_examples=examples,
            index=str(output),
            index_bytes=0,
        )
        writing = output
        _write(output, plan, summaries, parts, stats, options)
        timings["write"] = time.perf_counter() - mark
        finished = True
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "free some space" + (", or use --tmp-dir on a larger disk" if writing == tmp else "")
            raise IndexerError(f"no space left on device while writing {writing}; {hint}") from None
        raise
    finally:
        if own_executor and executor is not None:
            if finished:
                executor.close()
            else:  # an error or an interrupt: stop the workers before their folder goes
                executor.abort()
        shutil.rmtree(tmp, ignore_errors=True)
    return replace(stats, index_bytes=output.stat().st_size, seconds=time.perf_counter() - started, timings=timings)


def _write_target(output: Path) -> Path:
    """The file to write: a symbolic link's target (its link stays, as editors keep it), else `output`."""
    return Path(os.path.realpath(output)) if output.is_symlink() else output


def _make_tmp_dir(tmp_dir: Path | None, output: Path) -> str:
    where = tmp_dir or output.parent
    try:
        return make_temp_dir(where)
    except OSError as err:
        option = "--tmp-dir" if tmp_dir else "-o"
        raise IndexerError(
            f"{where}: cannot create temporary files there ({err.strerror}); choose another {option}"
        ) from None


def _check_output(output: Path) -> None:
    folder = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise IndexerError(f"{output}: is a folder; give a file name for the index with -o")
    if not folder.is_dir():
        raise IndexerError(f"{output}: folder {folder} does not exist; create it or choose another -o")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise IndexerError(f"{output}: cannot write in folder {folder} (permission denied); choose another -o")
    if output.exists() and output.stat().st_size and not is_index_file(output):  # an empty file holds nothing
        raise IndexerError(f"{output}: exists and is not an index file; remove it or choose another -o")


def _invert(executor, plan: CorpusPlan, settings, tmp, on_progress, timings) -> list[RunSummary]:
    mark = time.perf_counter()
    tasks = [(chunk, settings, tmp) for chunk in plan.chunks]
    summaries: list[RunSummary | None] = [None] * len(tasks)
    done_bytes = documents = 0
    for i, summary in executor.run(invert_chunk, tasks):
        summaries[i] = summary
        done_bytes += plan.chunks[i].size
        documents += summary.documents
        if on_progress:
            on_progress(Progress("invert", done_bytes, plan.total_bytes, documents))
    timings["invert"] = time.perf_counter() - mark
    return summaries


def _plan_ranges(summaries: list[RunSummary], processes: int) -> list[TermRange]:
    """Ranges for parallelism only (memory is bounded inside each range merge): a few per
    process, so that one heavy range does not leave the other processes idle."""
    samples = [point for s in summaries for point in s.sample]
    return plan_ranges(samples, 1 if processes <= 1 else RANGES_PER_PROCESS * processes)


def _limit_fan_in(executor, runs, tmp, positions: bool, share: int, batch_weight: int, on_progress):
    """Combine groups of consecutive runs until one merge reads few enough of them at once: a
    merge keeps each run's terms in its range in memory (about BYTES_PER_RUN_TERM each), so the
    fan-in follows the memory share, between MIN_FAN_IN and MAX_FAN_IN."""
    level = 0
    while True:
        terms_per_run = max(1, sum(run_term_count(path) for path, _ in runs) // max(1, len(runs)))
        fan_in = max(MIN_FAN_IN, min(MAX_FAN_IN, share // (BYTES_PER_RUN_TERM * terms_per_run)))
        if len(runs) <= fan_in:
            return runs
        groups = [runs[i : i + fan_in] for i in range(0, len(runs), fan_in)]
        tasks = [
            (group, os.path.join(tmp, f"combined-{level}-{n:05d}"), positions, batch_weight)
            for n, group in enumerate(groups)
        ]
        runs = [(path, 0) for path in _run_all(executor, combine_runs, tasks, "combine", on_progress)]
        level += 1


def _run_all(executor, fn, tasks: list[tuple], stage: str, on_progress) -> list:
    """Run every task on the executor; results in task order, progress reported as tasks finish."""
    results: list = [None] * len(tasks)
    for n, (i, result) in enumerate(executor.run(fn, tasks), 1):
        results[i] = result
        if on_progress:
            on_progress(Progress(stage, n, len(tasks)))
    return results


def _skips(plan: CorpusPlan, summaries: list[RunSummary]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Every skip reason met while planning and reading, by code: counts and the first few places."""
    counts: dict[SkipReason, int] = dict(plan.skipped.counts)
    examples: dict[SkipReason, list[str]] = {r: list(e) for r, e in plan.skipped.examples.items()}
    for s in summaries:
        for reason, n in s.skipped.items():
            counts[reason] = counts.get(reason, 0) + n
            found = examples.setdefault(reason, [])
            found += s.skipped_examples[reason][: EXAMPLES_PER_REASON - len(found)]
    duplicates, first = _duplicate_ids(summaries)
    if duplicates:
        counts[SkipReason.DUPLICATE_ID] = duplicates
        examples[SkipReason.DUPLICATE_ID] = first
    order = sorted(counts, key=lambda r: r.code)
    return {r.code: counts[r] for r in order}, {r.code: examples[r] for r in order}


def _duplicate_ids(summaries: list[RunSummary]) -> tuple[int, list[str]]:
    """How many documents repeat an earlier document's id, and the first few such ids. Both are
    kept in the index (a search shows both); the count warns the user."""
    seen: set[bytes] = set()
    count, first = 0, []
    for s in summaries:
        docs = read_doc_table(s.docs_path)
        ends = np.cumsum(docs.name_lengths).tolist()
        blob = docs.names.tobytes()
        start = 0
        for end in ends:
            name = blob[start:end]
            start = end
            if name in seen:
                count += 1
                if len(first) < 3:
                    first.append(name.decode("utf-8", "replace"))
            else:
                seen.add(name)
    return count, first


def _write(output: Path, plan: CorpusPlan, summaries, parts, stats: BuildStats, options: BuildOptions) -> None:
    meta = IndexMeta(
        documents=stats.documents,
        terms=stats.terms,
        postings=stats.postings,
        tokens=stats.tokens,
        positions=options.positions,
        analyzer=options.analyzer.to_dict(),
        source_files=len(plan.files),
        skipped=stats.skipped_by_reason,
        read=ReadInfo(options.read.id_fields, options.read.text_fields, options.read.encoding),
    )
    tables = [part_arrays(p.path) for p in parts]
    write_index(
        output,
        meta,
        [read_doc_table(s.docs_path) for s in summaries],
        plan.files,
        [TermTable(t["term_lengths"], t["terms"], t["info"]) for t in tables],
        {name: [part_stream(p.path, name) for p in parts] for name in STREAMS},
    )
