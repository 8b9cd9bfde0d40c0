"""Build: plan chunks -> invert them on an executor -> merge term ranges -> write one index file.

The parent only plans, orders summaries and concatenates range parts; inverting and merging run
on the executor. Doc ids follow chunk order and each term is encoded on its own, so the file is
the same whatever the process count, chunk size or memory limit.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from indexer.analysis import AnalyzerConfig
from indexer.corpus.discover import CorpusPlan, plan_corpus, plan_stream
from indexer.corpus.readers import STDIN, ReadOptions
from indexer.corpus.skips import EXAMPLES_PER_REASON, SkipReason
from indexer.errors import CorpusError, IndexerError
from indexer.indexing.executors import Executor, cpu_count, make_executor
from indexer.indexing.invert import InvertSettings, RunSummary, invert_chunk
from indexer.indexing.merge import RangeSummary, TermRange, combine_runs, merge_range, plan_ranges
from indexer.indexing.parts import read_part
from indexer.indexing.runs import read_doc_table, run_term_count
from indexer.store.files import disk_full, make_temp_dir, make_temp_file, remove_leftovers, writer_lock
from indexer.store.index import Deletions, IndexWriter, is_index_file
from indexer.store.meta import CorpusInfo, IndexMeta, ReadInfo, SegmentEntry
from indexer.store.segment import FILE, SOURCE, SegmentColumns, SegmentMeta

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
    stdin: BinaryIO | None = None,
) -> BuildStats:
    """Index the documents under `paths` into the file `output` (replaced atomically).

    The path "-" alone reads documents from `stdin` (default: this process's standard input, see
    `spooled` and `plan_stream`).

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
    from_stdin = any(os.fspath(p) == STDIN for p in paths)
    if from_stdin and len(paths) > 1:
        raise CorpusError("- (standard input) cannot be combined with other corpus paths; name a file '-' as ./-")
    with writer_lock(output), ExitStack() as cleanup:
        leftovers = remove_build_leftovers(output, options.tmp_dir)
        if from_stdin:
            spool = cleanup.enter_context(spooled(stdin or sys.stdin.buffer, Path(options.tmp_dir or output.parent)))
        requested = executor.processes if executor is not None else options.processes or cpu_count()
        # a pool for a corpus that may hold more than one chunk starts before planning, so that
        # its workers start and import while we plan
        inputs = [spool] if from_stdin else paths
        early = requested if executor is not None or _more_than_a_chunk(inputs, options.chunk_size) else 1
        with work_session(output, options, executor, early) as session:
            if from_stdin:
                plan = plan_stream(spool, options.chunk_size, options.read)
            else:
                plan = plan_corpus(list(paths), options.chunk_size, options.read, ignore=Path(os.path.abspath(output)))
            processes = session.fit(len(plan.chunks), requested, options.memory)
            timings = {"plan": time.perf_counter() - started}
            indexed = index_documents(session, plan, options, on_progress, timings)
            if indexed.documents == 0:
                reasons = ", ".join(f"{n} {SkipReason(r).label}" for r, n in indexed.skipped.items()) or "no documents"
                where = "standard input" if from_stdin else ", ".join(map(str, paths))
                raise CorpusError(f"nothing to index in {where}: {reasons}")
            mark = time.perf_counter()
            session.writing = output
            meta = IndexMeta(
                analyzer=options.analyzer.to_dict(),
                positions=options.positions,
                read=read_info(options.read),
                corpus=CorpusInfo(tuple(plan.roots)),
                segments=(SegmentEntry(0, 0, indexed.documents, 0, indexed.tokens),),
                skipped=indexed.skipped,
            )
            with IndexWriter(output) as writer:
                writer.add_segment(indexed.columns)
                writer.commit(meta, [Deletions.none()])
            timings["write"] = time.perf_counter() - mark
    return BuildStats(
        documents=indexed.documents,
        terms=indexed.terms,
        postings=indexed.postings,
        tokens=indexed.tokens,
        bytes_read=indexed.bytes_read,
        seconds=time.perf_counter() - started,
        processes=processes,
        skipped=sum(n for code, n in indexed.skipped.items() if not SkipReason(code).kept),
        repaired=sum(n for code, n in indexed.skipped.items() if SkipReason(code).kept),
        skipped_by_reason=indexed.skipped,
        skipped_examples=indexed.examples,
        index=str(output),
        index_bytes=output.stat().st_size,
        timings=timings,
        leftovers_removed=leftovers,
    )


GZIP_MAGIC = b"\x1f\x8b"
SPOOL_BLOCK = 1 << 20


@contextmanager
def spooled(stream: BinaryIO, folder: Path):
    """Copy `stream` to a temporary file in `folder` (gzip data decompressed on the way) and give
    its path; the file is removed on the way out. Workers then read byte ranges of it in parallel,
    as of any file. A full disk becomes one IndexerError."""
    fd, path = make_temp_file(folder, "stdin")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_stream(stream, out, folder)
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _copy_stream(stream: BinaryIO, out: BinaryIO, folder: Path) -> None:
    try:
        block = stream.read(SPOOL_BLOCK)
        unzip = zlib.decompressobj(wbits=31) if block.startswith(GZIP_MAGIC) else None
        while block:
            if unzip is None:
                out.write(block)
            else:
                out.write(unzip.decompress(block))
                while unzip.eof and unzip.unused_data:  # concatenated gzip members, as zcat reads them
                    rest = unzip.unused_data
                    unzip = zlib.decompressobj(wbits=31)
                    out.write(unzip.decompress(rest))
            block = stream.read(SPOOL_BLOCK)
        if unzip is not None and not unzip.eof:
            raise CorpusError("standard input: the gzip data ends early (truncated)")
    except zlib.error as err:
        raise CorpusError(f"standard input: damaged gzip data ({err})") from None
    except OSError as err:
        if disk_full(err):
            raise IndexerError(
                f"no space left on device while copying standard input into {folder}; "
                "free some space, or use --tmp-dir on a larger disk"
            ) from None
        raise


def _more_than_a_chunk(paths, chunk_size: int) -> bool:
    """Whether the corpus may be cut into several chunks: a folder, or a file larger than one."""
    for path in paths:
        try:
            if os.path.isdir(path) or os.path.getsize(path) > chunk_size:
                return True
        except OSError:  # planning reports it
            pass
    return False


def read_info(read: ReadOptions) -> ReadInfo:
    return ReadInfo(read.format, read.id_fields, read.text_fields, read.encoding, read.include, read.exclude)


def remove_build_leftovers(output: Path, tmp_dir: Path | None) -> list[str]:
    """Remove what killed builds left beside `output` and in `tmp_dir`; their paths."""
    removed = remove_leftovers(output.parent)
    if tmp_dir is not None and Path(tmp_dir).resolve() != output.parent.resolve():
        removed += remove_leftovers(Path(tmp_dir))
    return removed


@dataclass
class Session:
    """What indexing work shares: its temporary folder and executor, and what it is writing (for
    the message when the disk is full)."""

    tmp: str
    executor: Executor
    processes: int
    share: int  # each worker's part of the memory budget (the parent keeps one)
    writing: str | Path
    own: bool = True  # the session made its executor (and may change it)

    def fit(self, chunks: int, wanted: int, memory: int) -> int:
        """Use `wanted` processes but no more than there are chunks of work (one chunk: this
        process alone): a pool started early is closed or kept, one is started if none was; the
        memory shares follow. Returns the process count."""
        if not self.own:
            return self.processes
        target = max(1, min(wanted, chunks))
        if target == 1 and self.processes > 1:
            self.executor.close()
            self.executor = make_executor(1)
        elif target > 1 and self.processes == 1:
            self.executor = make_executor(target)
        self.processes = target
        self.share = memory // (target + 1)
        return target


@contextmanager
def work_session(output: Path, options: BuildOptions, executor: Executor | None, processes: int):
    """A temporary folder beside `output` (or in options.tmp_dir) and an executor (`executor`, or
    a new one of `processes`); on the way out the workers are stopped (at once after an error or
    a signal) and the folder removed. A full disk becomes one IndexerError naming what was written."""
    tmp = _make_tmp_dir(options.tmp_dir, output)
    own = executor is None
    session = None
    finished = False
    try:
        session = Session(
            tmp, executor or make_executor(processes), processes, options.memory // (processes + 1), tmp, own
        )
        yield session
        finished = True
    except OSError as err:
        if disk_full(err):
            where = session.writing if session else tmp
            hint = "free some space" + (", or use --tmp-dir on a larger disk" if where == tmp else "")
            raise IndexerError(f"no space left on device while writing {where}; {hint}") from None
        raise
    finally:
        if own and session is not None:
            if finished:
                session.executor.close()
            else:  # an error or an interrupt: stop the workers before their folder goes
                session.executor.abort()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Indexed:
    """A segment's worth of documents, inverted and merged: its columns (None without documents)."""

    columns: SegmentColumns | None
    documents: int
    terms: int
    postings: int
    tokens: int
    bytes_read: int
    skipped: dict[str, int]
    examples: dict[str, list[str]]


def index_documents(session: Session, plan: CorpusPlan, options: BuildOptions, on_progress, timings: dict) -> Indexed:
    """Invert the plan's chunks and merge their runs into a segment's columns (left in the
    session's folder). Raises CorpusError with options.read.strict on any skipped input."""
    executor, tmp = session.executor, session.tmp
    executor.check_paths([tmp, *[p.path for p in plan.chunks[0].pieces[:1]]])  # workers elsewhere must see our files
    settings = InvertSettings(options.analyzer, options.read, options.positions, session.share)
    summaries = _invert(executor, plan, settings, tmp, on_progress, timings)
    mark = time.perf_counter()
    documents = sum(s.documents for s in summaries)
    skipped, examples = _skips(plan, summaries)
    if options.read.strict and skipped:
        details = ", ".join(f"{n} {SkipReason(r).label} (first: {examples[r][0]})" for r, n in skipped.items())
        raise CorpusError(f"{details}; --strict refuses skipped or repaired input: fix it or drop --strict")
    bytes_read = sum(s.bytes_read for s in summaries)
    if documents == 0:
        return Indexed(None, 0, 0, 0, 0, bytes_read, skipped, examples)
    ranges = _plan_ranges(summaries, session.processes)
    runs, offset = [], 0
    for s in summaries:
        runs.extend((path, offset) for path in s.runs)
        offset += s.documents
    doc_lengths = os.path.join(tmp, "doc-lengths.npy")  # each merge records its blocks' shortest documents
    np.save(doc_lengths, np.concatenate([read_doc_table(s.docs_path).lengths for s in summaries]))
    timings["between"] = time.perf_counter() - mark
    batch_weight = max(1000, session.share // BYTES_PER_MERGED_POSTING)
    mark = time.perf_counter()
    runs = _limit_fan_in(executor, runs, tmp, options.positions, session.share, batch_weight, on_progress)
    timings["combine"] = time.perf_counter() - mark
    mark = time.perf_counter()
    tasks = [(runs, r, tmp, options.positions, doc_lengths, batch_weight) for r in ranges]
    parts: list[RangeSummary] = _run_all(executor, merge_range, tasks, "merge", on_progress)
    timings["merge"] = time.perf_counter() - mark
    columns = segment_columns(plan, summaries, parts, options.positions, skipped)
    return Indexed(
        columns,
        documents,
        sum(p.terms for p in parts),
        sum(p.postings for p in parts),
        sum(s.tokens for s in summaries),
        bytes_read,
        skipped,
        examples,
    )


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


def segment_columns(
    plan: CorpusPlan, summaries: list[RunSummary], parts: list[RangeSummary], positions: bool, skipped: dict
) -> SegmentColumns:
    """What the segment of these chunks and merged term ranges holds, in doc id and term order."""
    tables = [read_doc_table(s.docs_path) for s in summaries]
    stamps = {n: stamp for s in summaries for n, stamp in s.stamps.items()}
    readers = sorted({stamp.reader for stamp in stamps.values()} | {"text"})
    file_nos = np.concatenate([t.file_nos for t in tables])
    files = np.zeros(len(plan.files), dtype=FILE)
    files["first_doc"] = np.searchsorted(file_nos, np.arange(len(plan.files)), side="left")
    files["reader"] = readers.index("text")  # files no reader opened (unreadable) hold no document
    for n, stamp in stamps.items():
        mtime = 0 if plan.files[n] == STDIN else stamp.mtime_ns  # a copy's time says nothing of the input
        files[n] = (files["first_doc"][n], readers.index(stamp.reader), stamp.size, mtime)
    sources = []
    for t in tables:
        rows = np.zeros(len(t.lengths), dtype=SOURCE)
        rows["offset"], rows["length"], rows["crc"] = t.offsets, t.record_lengths, t.crcs
        sources.append(rows)
    read = [read_part(p.path) for p in parts]
    terms = [part for part, _ in read]
    total = sum(int(p.data_lengths.sum()) for p in terms) + sum(len(p.terms) for p in terms)
    meta = SegmentMeta(
        documents=sum(len(t.lengths) for t in tables),
        terms=sum(p.terms for p in parts),
        postings=sum(p.postings for p in parts),
        tokens=sum(s.tokens for s in summaries),
        positions=positions,
        files=len(plan.files),
        readers=tuple(readers),
        wide=max(
            total, sum(len(t.names) for t in tables), max((int(t.offsets.max(initial=0)) for t in tables), default=0)
        )
        >= 1 << 32,
        skipped=skipped,
        positions_bytes=sum(n for _, n in read),
    )
    return SegmentColumns(
        meta=meta,
        doc_lengths=[t.lengths for t in tables],
        name_lengths=[t.name_lengths for t in tables],
        names=[t.names for t in tables],
        sources=sources,
        files=files,
        file_names=[os.fsencode(p) for p in plan.files],
        terms=terms,
    )
