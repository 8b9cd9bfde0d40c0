"""Merge: the runs of all chunks -> encoded postings, one term range at a time.

Term ranges are independent, so the executor merges them side by side; the writer then concatenates
the range segments in term order. Within a range the merge is vectorized: the sorted union of the
runs' vocabularies, then one scatter per run (runs arrive in chunk order, so a term's postings are
already in doc-id order once placed run after run). Encoding is per term, so the file does not
depend on where the range boundaries fall.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.format import encode_postings, encode_strings, encode_varints


@dataclass(frozen=True)
class TermRange:
    """Terms t with lo <= t < hi (None: unbounded), and the output folder of its segment."""

    number: int
    lo: str | None
    hi: str | None


@dataclass(frozen=True)
class RangeSummary:
    number: int
    path: str
    terms: int
    postings: int


class _Run:
    """One run folder, memory-mapped; decodes only the terms it is asked about."""

    def __init__(self, path: str):
        load = lambda name: np.load(os.path.join(path, name + ".npy"), mmap_mode="r")
        self.term_offsets, self.blob = load("term_offsets"), load("terms")
        self.post_start, self.pos_start = load("post_offsets"), load("pos_offsets")
        self.docs, self.tfs = load("docs"), load("tfs")
        self.positions = load("positions") if os.path.exists(os.path.join(path, "positions.npy")) else None

    def __len__(self) -> int:
        return len(self.term_offsets) - 1

    def counts(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """df and cf of terms a..b-1."""
        return np.diff(self.post_start[a : b + 1]), np.diff(self.pos_start[a : b + 1])

    def __getitem__(self, i: int) -> str:
        return self.blob[self.term_offsets[i] : self.term_offsets[i + 1]].tobytes().decode("utf-8")

    def bounds(self, lo: str | None, hi: str | None) -> tuple[int, int]:
        a = 0 if lo is None else bisect_left(self, lo)
        b = len(self) if hi is None else bisect_left(self, hi)
        return a, b

    def terms(self, a: int, b: int) -> list[str]:
        raw = self.blob[self.term_offsets[a] : self.term_offsets[b]].tobytes()
        cuts = (self.term_offsets[a : b + 1] - self.term_offsets[a]).tolist()
        return [raw[x:y].decode("utf-8") for x, y in zip(cuts[:-1], cuts[1:])]


def _scatter_index(dest_start: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For groups of `counts` consecutive items, the destination of each item: dest_start[g] + i."""
    total = int(counts.sum())
    group_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.repeat(dest_start - group_first, counts) + np.arange(total, dtype=np.int64)


def merge_range(runs: list[tuple[str, int]], term_range: TermRange, out_dir: str, positions: bool) -> RangeSummary:
    """Merge the terms of `term_range` from every run ((path, doc offset) in chunk order) and write
    the encoded segment to `out_dir/range-NNNN`."""
    opened = [(_Run(path), offset) for path, offset in runs]
    slices = [run.bounds(term_range.lo, term_range.hi) for run, _ in opened]
    run_terms = [run.terms(a, b) for (run, _), (a, b) in zip(opened, slices)]
    vocab = sorted(set().union(*run_terms))
    index = {t: i for i, t in enumerate(vocab)}
    ids = [np.fromiter(map(index.__getitem__, terms), np.int64, len(terms)) for terms in run_terms]

    counts = [run.counts(a, b) for (run, _), (a, b) in zip(opened, slices)]
    df = np.zeros(len(vocab), dtype=np.int64)
    cf = np.zeros(len(vocab), dtype=np.int64)
    for g, (run_df, run_cf) in zip(ids, counts):
        df[g] += run_df
        cf[g] += run_cf
    docs = np.empty(int(df.sum()), dtype=np.uint32)
    tfs = np.empty(len(docs), dtype=np.uint32)
    pos = np.empty(int(cf.sum()), dtype=np.uint32) if positions else None
    post_fill = np.concatenate(([0], np.cumsum(df)[:-1]))
    pos_fill = np.concatenate(([0], np.cumsum(cf)[:-1]))
    for (run, doc_offset), (a, b), g, (run_df, run_cf) in zip(opened, slices, ids, counts):
        if a == b:
            continue
        p0, p1 = run.post_start[a], run.post_start[b]
        dest = _scatter_index(post_fill[g], run_df)
        docs[dest] = np.asarray(run.docs[p0:p1]) + np.uint32(doc_offset)
        tfs[dest] = run.tfs[p0:p1]
        post_fill[g] += run_df
        if pos is not None:
            q0, q1 = run.pos_start[a], run.pos_start[b]
            pos[_scatter_index(pos_fill[g], run_cf)] = run.positions[q0:q1]
            pos_fill[g] += run_cf

    encoded = encode_postings(df, docs, tfs, pos)
    lengths, blob = encode_strings(vocab)
    path = os.path.join(out_dir, f"range-{term_range.number:04d}")
    os.makedirs(path, exist_ok=True)  # a task rerun after its worker died overwrites the dead attempt's files
    info = np.stack([df, encoded.docs_len, encoded.freqs_len, encoded.positions_len], axis=1).ravel()
    for name, values in {
        "term_lengths": lengths,
        "terms": np.frombuffer(blob, dtype=np.uint8),
        "info": encode_varints(info),
        "docs": encoded.docs,
        "freqs": encoded.freqs,
        "positions": encoded.positions,
    }.items():
        np.save(os.path.join(path, name + ".npy"), values)
    return RangeSummary(term_range.number, path, len(vocab), len(docs))


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


def segment_arrays(path: str) -> dict[str, np.ndarray]:
    """The arrays of a written range segment, memory-mapped."""
    return {p.stem: np.load(p, mmap_mode="r") for p in Path(path).glob("*.npy")}
