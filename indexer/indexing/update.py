"""Updates: bring an index up to date with its corpus, add paths, delete documents, merge segments.

Every change is one commit (store.index): a new file holding the segments kept (copied byte for
byte), at most one new segment with the new and changed documents, and the deletions, renamed over
the old file under the one-writer lock. The corpus is found again from the paths and read options
the index records; a file whose size and mtime are unchanged is unchanged, and one of a single
document whose bytes still have its CRC-32 was only touched. Deleted documents leave df, N and the
average length exactly (the commit records the postings they held), so scores after any sequence
of updates equal those of a fresh build. The merge policy (store.policy) then keeps the number of
segments small, in a second commit.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.analysis import AnalyzerConfig
from indexer.corpus.discover import find_files, plan_files
from indexer.corpus.readers import STDIN, ReadOptions, display_path, open_source
from indexer.corpus.skips import EXAMPLES_PER_REASON, SkipLog, SkipReason
from indexer.errors import IndexerError
from indexer.indexing.executors import cpu_count
from indexer.indexing.pipeline import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MEMORY,
    BuildOptions,
    Progress,
    _check_output,
    _write_target,
    index_documents,
    remove_build_leftovers,
    work_session,
)
from indexer.store.compact import deleted_df, merge_segments
from indexer.store.files import writer_lock
from indexer.store.index import Deletions, IndexReader, IndexWriter
from indexer.store.meta import CorpusInfo, SegmentEntry
from indexer.store.policy import plan_merge


@dataclass(frozen=True)
class UpdateOptions:
    """How an update runs (what it indexes and how is what the index records)."""

    processes: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    memory: int = DEFAULT_MEMORY
    tmp_dir: Path | None = None
    merge: bool = True  # let the merge policy merge segments after the update


@dataclass(frozen=True)
class UpdateStats:
    index: str
    added: int = 0  # files new to the index
    changed: int = 0  # files whose documents were indexed again
    removed: int = 0  # files gone from the corpus
    unchanged: int = 0
    documents_added: int = 0
    documents_deleted: int = 0
    documents: int = 0  # live documents after
    segments: int = 0
    merged_segments: int = 0  # segments the merge policy (or optimize) merged into one
    seconds: float = 0.0
    index_bytes: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)  # ids `delete` did not find
    leftovers_removed: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """Nothing was changed: no file indexed or forgotten, no document deleted, no merge."""
        return not (self.added or self.changed or self.removed or self.documents_deleted or self.merged_segments)

    def to_dict(self) -> dict:
        return {**asdict(self), "up_to_date": self.up_to_date}


@dataclass(frozen=True)
class _Known:
    """A file the index holds a current record of."""

    segment: int
    file_no: int
    size: int
    mtime_ns: int
    first_doc: int
    end_doc: int  # one past its last document (local ids)
    reader: str


def _known_files(reader: IndexReader) -> dict[str, _Known]:
    known: dict[str, _Known] = {}
    for n, segment in enumerate(reader.segments):
        table = segment.files
        firsts = table["first_doc"].astype(np.int64)
        ends = np.append(firsts[1:], segment.doc_count)
        dead = set(reader.deletions[n].files.tolist())
        for i, path in enumerate(segment.file_names):
            if i not in dead and path != STDIN:  # documents read from standard input stay as they are
                reader_name = segment.meta.readers[int(table["reader"][i])]
                row = (int(table["size"][i]), int(table["mtime_ns"][i]), int(firsts[i]), int(ends[i]), reader_name)
                known[os.path.abspath(path)] = _Known(n, i, *row)
    return known


def update_index(
    index: Path,
    options: UpdateOptions = UpdateOptions(),
    paths: list[Path] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> UpdateStats:
    """Index what is new or changed in the corpus the index records, and delete what is gone.

    With `paths` (`indexer add`), only the files under them are looked at; a path outside the
    recorded corpus is added to it. Exits early, changing nothing, when all is up to date.
    Raises IndexerError (IndexFormatError for a damaged index, CorpusError for a path that does
    not exist) and leaves the index as it was on any failure or interrupt.
    """
    started = time.perf_counter()
    output = _open_target(index)
    with writer_lock(output):
        leftovers = remove_build_leftovers(output, options.tmp_dir)
        with IndexReader(output) as reader:
            stats = _update(reader, output, options, paths, on_progress, started)
        if options.merge and stats.documents_added + stats.documents_deleted:
            merged = _merge_by_policy(output, options)
            stats = replace(stats, merged_segments=merged)
    return _finish(stats, output, started, leftovers)


def _open_target(index: Path) -> Path:
    output = _write_target(Path(index))
    if not output.exists():
        raise IndexerError(f"{output}: no such index file; build one with 'indexer build'")
    _check_output(output)
    return output


def _finish(stats: UpdateStats, output: Path, started: float, leftovers: list[str]) -> UpdateStats:
    with IndexReader(output) as reader:
        documents, segments = reader.doc_count, len(reader.segments)
    return replace(
        stats,
        documents=documents,
        segments=segments,
        seconds=time.perf_counter() - started,
        index_bytes=output.stat().st_size,
        leftovers_removed=leftovers,
    )


def _update(reader: IndexReader, output: Path, options: UpdateOptions, paths, on_progress, started) -> UpdateStats:
    meta = reader.meta
    read = ReadOptions(
        format=meta.read.format,
        id_fields=meta.read.id_fields,
        text_fields=meta.read.text_fields,
        encoding=meta.read.encoding,
        include=meta.read.include,
        exclude=meta.read.exclude,
    )
    roots = list(meta.corpus.paths)
    if paths is None and not roots:
        raise IndexerError(
            f"{output} was built from standard input: there is no corpus to look at again; "
            "add files with 'indexer add', or build it anew"
        )
    scope: list[str] | None = None  # absolute paths the update looks under (None: the whole corpus)
    if paths is not None:
        scope = [os.path.abspath(p) for p in paths]
        for path in scope:
            if not os.path.exists(path):
                raise IndexerError(f"{display_path(path)}: no such file or folder")
            if not any(_under(path, root) for root in roots):
                roots.append(path)
    known = _known_files(reader)
    skipped = SkipLog()
    found = {
        f.absolute: f
        for f in find_files([Path(r) for r in roots], read, skipped, ignore=output, missing_ok=True)
        if scope is None or any(_under(f.absolute, s) for s in scope)
    }
    added, changed, unchanged, gone = [], [], 0, []
    for path, f in found.items():
        record = known.get(path)
        if record is None:
            added.append(path)
        elif (record.size, record.mtime_ns) == (f.size, f.mtime_ns) or _only_touched(reader, record, f):
            unchanged += 1
        else:
            changed.append(path)
    for path in known:
        if path not in found and (scope is None or any(_under(path, s) for s in scope)):
            gone.append(path)
    if not (added or changed or gone) and roots == list(meta.corpus.paths):
        return UpdateStats(str(output), unchanged=unchanged)
    # what the changed and removed files held is deleted
    new_docs: dict[int, list[np.ndarray]] = {}
    dead_files: dict[int, list[int]] = {}
    for path in changed + gone:
        record = known[path]
        new_docs.setdefault(record.segment, []).append(np.arange(record.first_doc, record.end_doc))
        dead_files.setdefault(record.segment, []).append(record.file_no)
    processes = options.processes or cpu_count()
    build = BuildOptions(
        processes=processes,
        chunk_size=options.chunk_size,
        memory=options.memory,
        positions=meta.positions,
        analyzer=AnalyzerConfig.from_dict(meta.analyzer),
        read=read,
        tmp_dir=options.tmp_dir,
    )
    wanted = set(added + changed)
    indexed = None
    timings: dict[str, float] = {}
    plan = plan_files(
        [f for path, f in found.items() if path in wanted], [Path(r) for r in roots], options.chunk_size, read, skipped
    )
    processes = max(1, min(processes, len(plan.chunks) or 1))
    with work_session(output, build, None, processes) as session:
        if plan.chunks:
            indexed = index_documents(session, plan, build, on_progress, timings)
        session.writing = output
        deletions, entries, deleted = _deletions(reader, new_docs, dead_files)
        new_meta = replace(meta, generation=meta.generation + 1, corpus=CorpusInfo(tuple(roots)))
        has_new = indexed is not None and indexed.columns is not None
        if has_new:
            entries.append(SegmentEntry(0, 0, indexed.documents, 0, indexed.tokens))
            deletions.append(Deletions.none())
        kept = [n for n, e in enumerate(entries[: len(reader.segments)]) if e.documents > e.deleted]
        skipped_now = dict(indexed.skipped) if indexed is not None else {}
        examples = dict(indexed.examples) if indexed is not None else {}
        if has_new:  # ids the new documents share with documents the index keeps: warned, as a build does
            repeats = _repeated_ids(reader, deletions, indexed.columns)
            if repeats:
                code = SkipReason.DUPLICATE_ID.code
                skipped_now[code] = skipped_now.get(code, 0) + len(repeats)
                examples[code] = (examples.get(code, []) + repeats)[:EXAMPLES_PER_REASON]
        with IndexWriter(output) as writer:
            for n in kept:
                writer.copy_segment(reader.segments[n])
            if has_new:
                writer.add_segment(indexed.columns)
            order = kept + ([len(reader.segments)] if has_new else [])
            writer.commit(
                replace(new_meta, segments=tuple(entries[n] for n in order), skipped=skipped_now),
                [deletions[n] for n in order],
            )
    return UpdateStats(
        str(output),
        added=len(added),
        changed=len(changed),
        removed=len(gone),
        unchanged=unchanged,
        documents_added=indexed.documents if indexed is not None else 0,
        documents_deleted=deleted,
        skipped_by_reason=skipped_now,
        skipped_examples=examples,
    )


def _repeated_ids(reader: IndexReader, deletions: list[Deletions], columns) -> list[str]:
    """The ids of the new segment's documents that a live document the index keeps already has."""
    names = np.concatenate(columns.names).tobytes() if columns.names else b""
    ends = np.cumsum(np.concatenate(columns.name_lengths)).tolist() if columns.name_lengths else []
    new = {names[a:b].decode("utf-8", "replace") for a, b in zip([0, *ends[:-1]], ends)}
    repeats = []
    for n, segment in enumerate(reader.segments):
        gone = set(deletions[n].docs.tolist())
        repeats += [name for d, name in enumerate(segment.doc_names()) if name in new and d not in gone]
    return repeats


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _only_touched(reader: IndexReader, record: _Known, found) -> bool:
    """A file of one document whose size is the same and whose bytes still have the CRC-32 they
    had when indexed (its mtime changed, its content did not)."""
    if found.size != record.size or record.end_doc - record.first_doc != 1 or record.reader != "text":
        return False
    source = reader.segments[record.segment].sources[record.first_doc]
    length = int(source["length"])  # of the text (for a .gz file, decompressed)
    try:
        with open_source(found.path) as f:
            data = f.read(length + 1)
    except (OSError, EOFError, zlib.error):
        return False
    return len(data) == length and zlib.crc32(data) == int(source["crc"])


def _deletions(reader: IndexReader, new_docs: dict[int, list[np.ndarray]], dead_files: dict[int, list[int]]):
    """Each segment's deletions and entry with these documents and files deleted too, and how many
    documents are newly deleted."""
    deletions, entries, total = [], [], 0
    for n, (segment, entry) in enumerate(zip(reader.segments, reader.meta.segments)):
        old = reader.deletions[n]
        docs = np.concatenate(new_docs.get(n, [np.zeros(0, np.int64)])).astype(np.int64)
        docs = np.setdiff1d(docs, old.docs.astype(np.int64))  # those not deleted before
        if not len(docs) and n not in dead_files:
            deletions.append(old)
            entries.append(entry)
            continue
        terms, counts = deleted_df(segment, docs) if len(docs) else (np.zeros(0, np.uint32),) * 2
        all_terms = np.concatenate((old.terms.astype(np.int64), terms.astype(np.int64)))
        all_counts = np.concatenate((old.counts.astype(np.int64), counts.astype(np.int64)))
        order = np.argsort(all_terms, kind="stable")
        unique, starts = np.unique(all_terms[order], return_index=True)
        summed = np.add.reduceat(all_counts[order], starts) if len(order) else all_counts
        files = np.union1d(old.files.astype(np.int64), np.array(dead_files.get(n, []), dtype=np.int64))
        deletions.append(
            Deletions(
                np.union1d(old.docs.astype(np.int64), docs).astype("<u4"),
                unique.astype("<u4"),
                summed.astype("<u4"),
                files.astype("<u4"),
            )
        )
        lost = int(np.asarray(segment.doc_lengths)[docs].sum(dtype=np.int64))
        entries.append(replace(entry, deleted=entry.deleted + len(docs), live_tokens=entry.live_tokens - lost))
        total += len(docs)
    return deletions, entries, total


def delete_documents(index: Path, ids: list[str], options: UpdateOptions = UpdateOptions()) -> UpdateStats:
    """Delete the live documents with these external ids (every one that has it). Ids no live
    document has are listed in the result's `not_found`."""
    started = time.perf_counter()
    output = _open_target(index)
    wanted = set(ids)
    with writer_lock(output):
        leftovers = remove_build_leftovers(output, options.tmp_dir)
        with IndexReader(output) as reader:
            new_docs: dict[int, list[np.ndarray]] = {}
            found: set[str] = set()
            for n, segment in enumerate(reader.segments):
                gone = set(reader.deletions[n].docs.tolist())
                hits = [d for d, name in enumerate(segment.doc_names()) if name in wanted and d not in gone]
                if hits:
                    new_docs[n] = [np.array(hits, dtype=np.int64)]
                    found.update(segment.doc_name(d) for d in hits)
            deleted = 0
            if new_docs:
                deletions, entries, deleted = _deletions(reader, new_docs, {})
                meta = replace(reader.meta, generation=reader.meta.generation + 1)
                # a segment whose documents are all gone stays while it records a file of theirs
                # that is current: an update must not index that file again until it changes
                kept = [
                    n
                    for n, e in enumerate(entries)
                    if e.documents > e.deleted or len(reader.segments[n].files) > len(deletions[n].files)
                ]
                with IndexWriter(output) as writer:
                    for n in kept:
                        writer.copy_segment(reader.segments[n])
                    writer.commit(replace(meta, segments=tuple(entries[n] for n in kept)), [deletions[n] for n in kept])
        merged = _merge_by_policy(output, options) if deleted and options.merge else 0
    stats = UpdateStats(
        str(output), documents_deleted=deleted, merged_segments=merged, not_found=sorted(wanted - found)
    )
    return _finish(stats, output, started, leftovers)


def optimize_index(index: Path, max_segments: int = 1, options: UpdateOptions = UpdateOptions()) -> UpdateStats:
    """Merge segments until at most `max_segments` remain (the newest merged first), and rewrite
    every segment that holds deleted documents without them."""
    if max_segments < 1:
        raise IndexerError(f"max segments must be 1 or more, not {max_segments}")
    started = time.perf_counter()
    output = _open_target(index)
    merged = 0
    with writer_lock(output):
        leftovers = remove_build_leftovers(output, options.tmp_dir)
        while True:
            done = _merge_by_policy(output, options, lambda entries: _optimize_plan(entries, max_segments))
            if not done:
                break
            merged += done
    return _finish(UpdateStats(str(output), merged_segments=merged), output, started, leftovers)


def _optimize_plan(entries: list[SegmentEntry], max_segments: int) -> list[int]:
    if len(entries) > max_segments:
        return list(range(max_segments - 1, len(entries)))
    return next(([n] for n, e in enumerate(entries) if e.deleted), [])


def _merge_by_policy(output: Path, options: UpdateOptions, plan: Callable | None = None) -> int:
    """Merge the segments the merge policy (or `plan`) picks as one more commit; returns how many
    segments were merged (0: none)."""
    with IndexReader(output) as reader:
        entries = list(reader.meta.segments)
        group = (plan or plan_merge)(entries)
        if not group:
            return 0
        build = BuildOptions(processes=1, tmp_dir=options.tmp_dir)
        with work_session(output, build, None, 1) as session:
            columns = merge_segments(reader, group, session.tmp)
            session.writing = output
            before, after = list(range(group[0])), list(range(group[-1] + 1, len(entries)))
            middle = [SegmentEntry(0, 0, columns.meta.documents, 0, columns.meta.tokens)]
            if not columns.meta.documents and not columns.meta.files:
                middle = []  # nothing live was left in them, and no file to remember
            # (a segment of no document still holds the files whose documents were deleted by
            # id, so that an update does not index them again while they are unchanged)
            with IndexWriter(output) as writer:
                for n in before:
                    writer.copy_segment(reader.segments[n])
                if middle:
                    writer.add_segment(columns)
                for n in after:
                    writer.copy_segment(reader.segments[n])
                meta = replace(
                    reader.meta,
                    generation=reader.meta.generation + 1,
                    segments=tuple([entries[n] for n in before] + middle + [entries[n] for n in after]),
                )
                deletions = [reader.deletions[n] for n in before] + [Deletions.none()] * len(middle)
                writer.commit(meta, deletions + [reader.deletions[n] for n in after])
    return len(group)
