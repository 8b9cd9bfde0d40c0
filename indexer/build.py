"""Build: plan chunks -> invert them on an executor -> merge term ranges -> write one index file.

The parent only plans, orders summaries and concatenates segments; inverting and merging run on
the executor. Doc ids follow chunk order and each term is encoded on its own, so the file is the
same whatever the process count, chunk size or memory limit.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indexer import format as fmt
from indexer.analysis import AnalyzerConfig
from indexer.corpus import CorpusPlan, ReadOptions, plan_corpus
from indexer.errors import CorpusError, IndexerError
from indexer.executors import cpu_count, make_executor
from indexer.files import make_temp_dir, remove_leftovers, writer_lock
from indexer.format import is_index_file
from indexer.invert import InvertSettings, RunSummary, invert_chunk
from indexer.merge import (
    TermRange,
    combine_runs,
    merge_range,
    plan_ranges,
    run_term_count,
    segment_arrays,
)

DEFAULT_CHUNK_SIZE = 4 << 20
DEFAULT_MEMORY = 1 << 30
BYTES_PER_MERGED_POSTING = 120  # peak worker RSS growth per posting + position of a merge batch (measured)
RANGES_PER_PROCESS = 4
MIN_FAN_IN, MAX_FAN_IN = 4, 256  # runs one merge reads at once; more are first combined in groups
BYTES_PER_RUN_TERM = 48  # merge memory per run and term it reads (offsets, hashes, numbers; measured)


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


@dataclass
class BuildStats:
    documents: int
    terms: int
    postings: int
    tokens: int
    bytes_read: int
    seconds: float
    processes: int
    skipped: int  # inputs not indexed
    skipped_by_reason: dict[str, int]  # every reason, repaired ones (documents kept) included
    repaired: int  # documents indexed despite a problem (duplicate id, undecodable bytes replaced)
    skipped_examples: dict[str, list[str]]
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
    stats.leftovers_removed = leftovers
    return stats


def _build(paths, output: Path, options: BuildOptions, on_progress, executor, started: float) -> BuildStats:
    timings: dict[str, float] = {}
    plan = plan_corpus(list(paths), options.chunk_size, options.read, ignore=Path(os.path.abspath(output)))
    processes = executor.processes if executor is not None else options.processes or cpu_count()
    processes = max(1, min(processes, len(plan.chunks))) if executor is None else processes
    timings["plan"] = time.perf_counter() - started
    own_executor = executor is None
    tmp = _make_tmp_dir(options.tmp_dir, output)
    writing = tmp  # what a full disk would be full of
    finished = False
    try:
        if own_executor:
            executor = make_executor(processes)
        if hasattr(executor, "check_paths"):  # workers on other machines (Dask) must see our files
            executor.check_paths([tmp, plan.chunks[0].pieces[0].path])
        share = options.memory // (processes + 1)  # each worker's memory; the parent keeps one share
        settings = InvertSettings(options.analyzer, options.read, options.positions, share)
        summaries = _invert(executor, plan, settings, tmp, on_progress, timings)
        mark = time.perf_counter()
        documents = sum(s.documents for s in summaries)
        skipped, examples = _skips(plan, summaries)
        if options.read.strict and skipped:
            details = ", ".join(f"{n} {r} (first: {(examples.get(r) or ['?'])[0]})" for r, n in skipped.items())
            raise CorpusError(f"{details}; --strict refuses skipped or repaired input: fix it or drop --strict")
        if documents == 0:
            reasons = ", ".join(f"{n} {r}" for r, n in skipped.items()) or "no documents"
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
        segments = _run_all(executor, merge_range, tasks, "merge", on_progress)
        timings["merge"] = time.perf_counter() - mark
        mark = time.perf_counter()
        stats = BuildStats(
            documents=documents,
            terms=sum(s.terms for s in segments),
            postings=sum(s.postings for s in segments),
            tokens=sum(s.tokens for s in summaries),
            bytes_read=sum(s.bytes_read for s in summaries),
            seconds=0.0,
            processes=processes,
            skipped=sum(n for reason, n in skipped.items() if not is_kept(reason)),
            repaired=sum(n for reason, n in skipped.items() if is_kept(reason)),
            skipped_by_reason=skipped,
            skipped_examples=examples,
            index=str(output),
            index_bytes=0,
        )
        writing = output
        _write(output, plan, summaries, segments, stats, options)
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
    stats.index_bytes = output.stat().st_size
    stats.seconds = time.perf_counter() - started
    stats.timings = timings
    return stats


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


def is_kept(reason: str) -> bool:
    """Whether documents counted under `reason` are still indexed (repaired) rather than skipped."""
    return reason == "duplicate id" or reason.startswith("invalid ")


def _skips(plan: CorpusPlan, summaries: list[RunSummary]) -> tuple[dict[str, int], dict[str, list[str]]]:
    counts = {reason: len(paths) for reason, paths in plan.skipped.items()}
    examples = {reason: paths[:3] for reason, paths in plan.skipped.items()}
    for s in summaries:
        for reason, n in s.skipped.items():
            counts[reason] = counts.get(reason, 0) + n
            examples.setdefault(reason, [])
            examples[reason] += s.skipped_examples[reason][: 3 - len(examples[reason])]
    duplicates, first = _duplicate_ids(summaries)
    if duplicates:
        counts["duplicate id"] = duplicates
        examples["duplicate id"] = first
    return dict(sorted(counts.items())), examples


def _duplicate_ids(summaries: list[RunSummary]) -> tuple[int, list[str]]:
    """How many documents repeat an earlier document's id, and the first few such ids. Both are
    kept in the index (a search shows both); the count warns the user."""
    seen: set[bytes] = set()
    count, first = 0, []
    for s in summaries:
        with np.load(s.docs_path) as docs:
            ends = np.cumsum(docs["name_lengths"]).tolist()
            blob = docs["names"].tobytes()
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


def _write(output: Path, plan: CorpusPlan, summaries, segments, stats: BuildStats, options: BuildOptions) -> None:
    """Stream every section into the index file (see docs/FORMAT.md for the layout)."""
    meta = {
        "documents": stats.documents,
        "terms": stats.terms,
        "postings": stats.postings,
        "tokens": stats.tokens,
        "positions": options.positions,
        "analyzer": options.analyzer.to_dict(),
        "source_files": len(plan.files),
        "skipped": stats.skipped_by_reason,
        # how documents were read, so that snippets can read them back the same way
        "read": {
            "id_fields": list(options.read.id_fields),
            "text_fields": list(options.read.text_fields),
            "encoding": options.read.encoding,
        },
    }
    docs = [np.load(s.docs_path) for s in summaries]
    segs = [segment_arrays(s.path) for s in segments]
    with fmt.IndexWriter(output) as w:
        w.section(fmt.META, json.dumps(meta, sort_keys=True).encode("utf-8"))
        w.section(fmt.DOC_LENGTHS, *(d["lengths"] for d in docs))
        w.section(fmt.DOC_NAMES, *(fmt.encode_varints(d["name_lengths"]) for d in docs), *(d["names"] for d in docs))
        w.section(fmt.DOC_SOURCES, *(fmt.encode_varints(d["sources"]) for d in docs))
        paths = [os.fsencode(p) for p in plan.files]
        w.section(fmt.SOURCE_FILES, fmt.encode_varints(np.fromiter(map(len, paths), np.int64, len(paths))), *paths)
        w.section(fmt.TERMS, *(s["term_lengths"] for s in segs), *(s["terms"] for s in segs))
        w.section(fmt.TERM_INFO, *(s["info"] for s in segs))
        for kind, name in ((fmt.DOCS, "docs"), (fmt.FREQS, "freqs"), (fmt.POSITIONS, "positions")):
            w.begin(kind)
            for segment in segments:
                _copy_into(w, os.path.join(segment.path, name + ".bin"))
            w.end()
        w.commit()


def _copy_into(writer: fmt.IndexWriter, path: str, block: int = 8 << 20) -> None:
    with open(path, "rb") as f:
        while data := f.read(block):
            writer.write(data)
