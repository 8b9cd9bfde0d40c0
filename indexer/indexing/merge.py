"""Merge: the runs of all chunks -> encoded postings, one term range at a time.

Term ranges are independent, so the executor merges them side by side into range parts
(indexer.indexing.parts); the writer then concatenates the parts in term order. Within a range
the merge is vectorized: the sorted union of the runs' vocabularies, then one scatter per run
(runs arrive in chunk order, so a term's postings are already in doc-id order once placed run
after run). Encoding is per term, so the file does not depend on where the range boundaries fall.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from indexer.indexing.hashing import MAX_HASHED_WORD, distinct, padded, span_hashes
from indexer.indexing.parts import PartWriter
from indexer.indexing.runs import RunSlice, RunWriter
from indexer.store.codec import encode_terms


@dataclass(frozen=True)
class TermRange:
    """Terms t with lo <= t < hi (None: unbounded); `number` names its part's folder."""

    number: int
    lo: str | None
    hi: str | None


@dataclass(frozen=True)
class RangeSummary:
    number: int
    path: str
    terms: int
    postings: int


def _scatter_index(dest_start: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For groups of `counts` consecutive items, the destination of each item: dest_start[g] + i."""
    total = int(counts.sum())
    group_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.repeat(dest_start - group_first, counts) + np.arange(total, dtype=np.int64)


def merge_range(
    runs: list[tuple[str, int]],
    term_range: TermRange,
    out_dir: str,
    positions: bool,
    doc_lengths_path: str,
    batch_weight: int = 1 << 22,
) -> RangeSummary:
    """Merge the terms of `term_range` from every run ((path, doc offset) in chunk order) and write
    the encoded range part to `out_dir/range-NNNN`. `doc_lengths_path` is the .npy of every
    document's length by global doc id (each block records its shortest document).

    Memory stays bounded: terms are merged in batches of about `batch_weight` postings + positions,
    and a term heavier than that on its own is encoded run by run, in pieces.
    """
    doc_lengths = np.load(doc_lengths_path, mmap_mode="r")
    vocab, df, cf, parts = _open_range(runs, term_range.lo, term_range.hi)
    part = PartWriter(os.path.join(out_dir, f"range-{term_range.number:04d}"))
    for first, last, heavy in _batches(df, cf, positions, batch_weight):
        if heavy:
            term = part.heavy_term(doc_lengths, positions)
            for piece in _heavy_pieces(parts, first, positions, batch_weight):
                term.feed(*piece)
            term.finish()
        else:
            docs, tfs, pos = _gather(parts, first, last, df, cf, positions)
            part.append(encode_terms(df[first:last], docs, tfs, pos, doc_lengths))
    part.close(vocab)
    return RangeSummary(term_range.number, part.path, len(vocab), int(df.sum()))


def _union(opened) -> tuple[list[str], list[np.ndarray]]:
    """The sorted union of the runs' terms (in the range they were opened for), and each run's terms as numbers into it.

    Terms are named by a hash of their bytes (numpy, no Python object per run and term); only the
    distinct terms become strings, taken run by run in each run's sorted order, so that sorting
    them merges a few sorted sequences. Terms longer than the hash covers are named by their
    strings, on their own: they never send the other terms the slow way.
    """
    shorts = [np.diff(run.term_offsets) <= MAX_HASHED_WORD for run, _ in opened]
    bounds = np.concatenate(([0], np.cumsum([int(short.sum()) for short in shorts])))
    every = np.empty(int(bounds[-1]), dtype=np.uint64)  # filled run by run: no second copy
    long_terms: list[list[str]] = []
    for (run, _), short, lo, hi in zip(opened, shorts, bounds[:-1], bounds[1:]):
        offsets = run.term_offsets
        every[lo:hi] = span_hashes(padded(run.blob), offsets[:-1][short], np.diff(offsets)[short])
        raw = run.blob.tobytes() if not short.all() else b""
        cuts = zip(offsets[:-1][~short].tolist(), offsets[1:][~short].tolist())
        long_terms.append([raw[x:y].decode("utf-8") for x, y in cuts])
    first, group = distinct(every)
    del every
    by_first = np.argsort(first)  # groups in order of first appearance: run by run, each in its own order
    first_sorted = first[by_first]
    del first
    strings: list[str] = []
    for run_no, ((run, _), short) in enumerate(zip(opened, shorts)):
        lo, hi = np.searchsorted(first_sorted, bounds[run_no : run_no + 2])
        if lo == hi:
            continue
        at = np.flatnonzero(short)[first_sorted[lo:hi] - bounds[run_no]]
        cuts = zip(run.term_offsets[at].tolist(), run.term_offsets[at + 1].tolist())
        raw = run.blob.tobytes()
        if raw.isascii():  # slicing a str by byte offsets is then right, and cheaper than decoding each
            text = raw.decode("ascii")
            strings.extend([text[x:y] for x, y in cuts])
        else:
            strings.extend([raw[x:y].decode("utf-8") for x, y in cuts])
    named = len(strings)
    long_index = {t: named + i for i, t in enumerate(dict.fromkeys(t for terms in long_terms for t in terms))}
    strings.extend(long_index)
    order = sorted(range(len(strings)), key=strings.__getitem__)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    group_rank = np.empty(named, dtype=np.int64)
    group_rank[by_first] = rank[:named]
    ids = []
    for run_no, short in enumerate(shorts):
        g = group_rank[group[bounds[run_no] : bounds[run_no + 1]]].astype(np.int32)
        if long_terms[run_no]:
            full = np.empty(len(short), dtype=np.int32)
            full[short] = g
            full[~short] = rank[[long_index[t] for t in long_terms[run_no]]]
            g = full
        ids.append(g)
    return [strings[i] for i in order], ids


def _gather(parts, first: int, last: int, df: np.ndarray, cf: np.ndarray, positions: bool):
    """The postings (docs, tfs, positions) of terms first..last-1 (range-local) from every run."""
    bdf, bcf = df[first:last], cf[first:last]
    docs = np.empty(int(bdf.sum()), dtype=np.uint32)
    tfs = np.empty(len(docs), dtype=np.uint32)
    pos = np.empty(int(bcf.sum()), dtype=np.uint32) if positions else None
    post_fill = np.concatenate(([0], np.cumsum(bdf)[:-1]))
    pos_fill = np.concatenate(([0], np.cumsum(bcf)[:-1]))
    for run, doc_offset, g in parts:
        lo, hi = np.searchsorted(g, first), np.searchsorted(g, last)  # this run's terms in the batch
        if lo == hi:
            continue
        local = g[lo:hi] - first
        run_df, run_cf = run.counts(lo, hi)
        p0, p1 = int(run.post_start[lo]), int(run.post_start[hi])
        dest = _scatter_index(post_fill[local], run_df)
        docs[dest] = run.read("docs", p0, p1) + np.uint32(doc_offset)
        tfs[dest] = run.read("tfs", p0, p1)
        post_fill[local] += run_df
        if pos is not None:
            q0, q1 = int(run.pos_start[lo]), int(run.pos_start[hi])
            pos[_scatter_index(pos_fill[local], run_cf)] = run.read("positions", q0, q1)
            pos_fill[local] += run_cf
    return docs, tfs, pos


def _heavy_pieces(parts, term: int, positions: bool, batch_weight: int):
    """One term's postings, run by run and in pieces of about batch_weight postings + positions:
    (docs, tfs, positions) in doc order. A very common word's postings never sit whole in memory."""
    for run, doc_offset, g in parts:
        i = int(np.searchsorted(g, term))
        if i == len(g) or g[i] != term:
            continue
        p0, p1, q0 = int(run.post_start[i]), int(run.post_start[i + 1]), int(run.pos_start[i])
        tfs = run.read("tfs", p0, p1)
        ends = np.cumsum(tfs, dtype=np.int64)  # positions up to and including each posting
        weight = ends + np.arange(1, len(tfs) + 1) if positions else np.arange(1, len(tfs) + 1)
        cuts = np.searchsorted(weight, np.arange(batch_weight, int(weight[-1]), batch_weight), side="right")
        bounds = [0, *sorted(set(cuts.tolist()) - {0, len(tfs)}), len(tfs)]
        for x, y in zip(bounds[:-1], bounds[1:]):
            docs = run.read("docs", p0 + x, p0 + y) + np.uint32(doc_offset)
            before = int(ends[x - 1]) if x else 0
            pos = run.read("positions", q0 + before, q0 + int(ends[y - 1])) if positions else None
            yield docs, tfs[x:y], pos


def _open_range(runs: list[tuple[str, int]], lo: str | None, hi: str | None):
    """Open the runs' slices of a term range: (vocabulary, df, cf, per-run parts)."""
    opened = [(RunSlice(path, lo, hi), offset) for path, offset in runs]
    vocab, ids = _union(opened)
    df = np.zeros(len(vocab), dtype=np.int64)
    cf = np.zeros(len(vocab), dtype=np.int64)
    for (run, _), g in zip(opened, ids):
        run_df, run_cf = run.counts(0, len(run))
        df[g] += run_df
        cf[g] += run_cf
    parts = [(run, offset, g) for (run, offset), g in zip(opened, ids) if len(g)]
    return vocab, df, cf, parts


def _batches(df: np.ndarray, cf: np.ndarray, positions: bool, batch_weight: int):
    """(first, last, heavy) term batches of about batch_weight postings + positions each; a term
    heavier than that comes alone with heavy=True."""
    weight = df + (cf if positions else 0)
    before = np.concatenate(([0], np.cumsum(weight)))  # weight of the terms before each term
    first = 0
    while first < len(df):
        if weight[first] > batch_weight:
            yield first, first + 1, True
            first += 1
            continue
        last = max(first + 1, int(np.searchsorted(before, before[first] + batch_weight, side="right")) - 1)
        yield first, last, False
        first = last


def combine_runs(runs: list[tuple[str, int]], path: str, positions: bool, batch_weight: int = 1 << 22) -> str:
    """Merge consecutive runs ((path, doc offset) in chunk order) into one run at `path` whose doc
    ids are global (its offset is 0). Limits a merge's fan-in: see build.MAX_FAN_IN."""
    vocab, df, cf, parts = _open_range(runs, None, None)
    with RunWriter(path, int(df.sum()), int(cf.sum()) if positions else None) as writer:
        for first, last, heavy in _batches(df, cf, positions, batch_weight):
            pieces = (
                _heavy_pieces(parts, first, positions, batch_weight)
                if heavy
                else [_gather(parts, first, last, df, cf, positions)]
            )
            for piece in pieces:
                writer.append(*piece)
        writer.terms([t.encode("utf-8") for t in vocab], df, cf)
    return path


def plan_ranges(samples: list[tuple[str, int]], parts: int) -> list[TermRange]:
    """Split the vocabulary into `parts` ranges of about equal weight, from the runs' samples."""
    if parts <= 1 or not samples:
        return [TermRange(0, None, None)]
    weights: dict[str, int] = {}
    for term, w in samples:
        weights[term] = weights.get(term, 0) + w
    terms = sorted(weights)
    cum = np.cumsum([weights[t] for t in terms])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts)
    bounds = sorted({terms[i] for i in cuts.tolist() if 0 < i < len(terms)})
    edges = [None, *bounds, None]
    return [TermRange(i, lo, hi) for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
