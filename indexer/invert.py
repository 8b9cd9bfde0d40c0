"""The worker's job: one chunk -> sorted runs on disk -> a small summary for the parent.

A worker reads its own files, maps each token to a chunk-local word number as it goes (one C-level
dict lookup per token, no per-token Python objects kept), then inverts with numpy: a stable sort by
term gives postings ordered by term, doc and position. When the buffered tokens pass the memory
share, the buffer is flushed as a run (single-pass in-memory inversion), so memory stays bounded.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import numpy as np

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.corpus import Chunk, ReadOptions, SkipLog, read_piece

# Bytes of worker memory one buffered token costs at its peak during inversion (measured; see
# docs/ARCHITECTURE.md): used to turn a memory share into a flush threshold.
BYTES_PER_BUFFERED_TOKEN = 64
SAMPLE_POINTS = 64  # term-range sample points per run, for planning the parallel merge

_analyzers: dict[AnalyzerConfig, Analyzer] = {}  # per process: keeps each analyzer's word cache warm


@dataclass(frozen=True)
class InvertSettings:
    analyzer: AnalyzerConfig
    read: ReadOptions
    positions: bool
    memory_per_worker: int  # bytes


@dataclass
class RunSummary:
    """What a worker sends back for one chunk: paths and counts, never postings."""

    chunk: int
    runs: list[str]
    documents: int
    tokens: int
    bytes_read: int
    docs_path: str
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    sample: list[tuple[str, int]] = field(default_factory=list)  # (term, weight since previous point)


def _analyzer(config: AnalyzerConfig) -> Analyzer:
    if config not in _analyzers:
        _analyzers[config] = Analyzer(config)
    return _analyzers[config]


class _Buffer:
    """Tokens of consecutive documents of one chunk, as chunk-local word numbers."""

    def __init__(self, first_doc: int):
        self.first_doc = first_doc
        self.vocab: dict[str, int] = {}
        self.tokens = array("q")  # per token: the token index where its word first appeared
        self.doc_words = array("q")  # words per document
        self._counter = count()

    def add(self, words: list[str]) -> None:
        self.tokens.extend(map(self.vocab.setdefault, words, self._counter))
        self.doc_words.append(len(words))


def invert_chunk(chunk: Chunk, settings: InvertSettings, run_dir: str) -> RunSummary:
    """Read, analyze and invert one chunk; write its runs and document table under `run_dir`.

    Bad documents are skipped and counted in the summary. OSError from `run_dir` propagates.
    """
    analyzer = _analyzer(settings.analyzer)
    log = SkipLog()
    base = Path(run_dir, f"chunk-{chunk.number:06d}")
    names: list[str] = []
    sources = array("q")
    lengths = array("I")
    runs: list[str] = []
    sample: list[tuple[str, int]] = []
    max_tokens = max(1000, settings.memory_per_worker // BYTES_PER_BUFFERED_TOKEN)
    buf = _Buffer(0)
    bytes_read = 0
    for piece in chunk.pieces:
        for doc in read_piece(piece, settings.read, log):
            bytes_read += doc.length
            buf.add(analyzer.words(doc.text))
            names.append(doc.name)
            sources.extend((doc.file_no, doc.offset, doc.length))
            if len(buf.tokens) >= max_tokens:
                lengths.extend(_flush(buf, analyzer, settings.positions, f"{base}-{len(runs):03d}", runs, sample))
                buf = _Buffer(len(names))
    if len(buf.doc_words):
        lengths.extend(_flush(buf, analyzer, settings.positions, f"{base}-{len(runs):03d}", runs, sample))
    docs_path = f"{base}-docs.npz"
    name_bytes = [n.encode("utf-8", "backslashreplace") for n in names]
    np.savez(
        docs_path,
        lengths=np.frombuffer(lengths, dtype=np.uint32),
        name_lengths=np.fromiter(map(len, name_bytes), np.int64, len(name_bytes)),
        names=np.frombuffer(b"".join(name_bytes), dtype=np.uint8),
        sources=np.frombuffer(sources, dtype=np.int64),
    )
    return RunSummary(
        chunk=chunk.number,
        runs=runs,
        documents=len(names),
        tokens=int(np.frombuffer(lengths, dtype=np.uint32).sum(dtype=np.int64)),
        bytes_read=bytes_read,
        docs_path=docs_path,
        skipped=dict(log.counts),
        skipped_examples=dict(log.examples),
        sample=sample,
    )


def _flush(buf: _Buffer, analyzer: Analyzer, positions: bool, path: str, runs: list, sample: list) -> np.ndarray:
    """Invert the buffered documents into a run folder at `path`; returns their lengths in terms."""
    n = len(buf.tokens)
    first_seen = np.frombuffer(buf.tokens, dtype=np.int64)
    words = list(buf.vocab)
    # word number -> term rank in the sorted term list of this run (-1: not indexed)
    word_terms = [analyzer.term(w) for w in words]
    terms = sorted(set(word_terms) - {None})
    rank = {t: i for i, t in enumerate(terms)}
    word_rank = np.fromiter((rank.get(t, -1) for t in word_terms), np.int32, len(words))
    # first-appearance index -> dense word number
    dense = np.empty(n, dtype=np.int32)
    dense[np.fromiter(buf.vocab.values(), np.int64, len(words))] = np.arange(len(words), dtype=np.int32)
    tok_term = word_rank[dense[first_seen]]
    doc_words = np.frombuffer(buf.doc_words, dtype=np.int64)
    ndocs = len(doc_words)
    tok_doc = np.repeat(np.arange(ndocs, dtype=np.int32), doc_words)
    tok_pos = None
    if positions:  # 0-based position in the document's word stream, unindexed words counted
        doc_start = np.concatenate(([0], np.cumsum(doc_words)[:-1]))
        tok_pos = np.arange(n, dtype=np.int64) - np.repeat(doc_start, doc_words)
    keep = tok_term >= 0
    doc_lengths = np.bincount(tok_doc[keep], minlength=ndocs).astype(np.uint32)
    if not keep.all():
        tok_term, tok_doc = tok_term[keep], tok_doc[keep]
        tok_pos = None if tok_pos is None else tok_pos[keep]
    order = np.argsort(tok_term, kind="stable")  # keeps doc, then position order within a term
    t, d = tok_term[order], tok_doc[order]
    new_posting = np.empty(len(t), dtype=bool)
    new_posting[:1] = True
    np.not_equal(t[1:], t[:-1], out=new_posting[1:])
    new_posting[1:] |= d[1:] != d[:-1]
    starts = np.flatnonzero(new_posting)
    tfs = np.diff(np.append(starts, len(t))).astype(np.uint32)
    post_term = t[starts]
    df = np.bincount(post_term, minlength=len(terms)).astype(np.int64)
    cf = np.bincount(post_term, weights=tfs, minlength=len(terms)).astype(np.int64)
    os.mkdir(path)
    term_bytes = [s.encode("utf-8") for s in terms]
    arrays = {
        "term_lengths": np.fromiter(map(len, term_bytes), np.int64, len(terms)),
        "terms": np.frombuffer(b"".join(term_bytes), dtype=np.uint8),
        "df": df,
        "cf": cf,
        "docs": (d[starts] + buf.first_doc).astype(np.uint32),
        "tfs": tfs,
    }
    if tok_pos is not None:
        arrays["positions"] = tok_pos[order].astype(np.uint32)
    for name, values in arrays.items():
        np.save(os.path.join(path, name + ".npy"), values)
    runs.append(path)
    # sample points for planning term ranges: weight = postings + positions
    weight = df + cf
    cum = np.cumsum(weight)
    if len(cum):
        step = max(1, int(cum[-1]) // SAMPLE_POINTS)
        picks = np.unique(np.searchsorted(cum, np.arange(step, int(cum[-1]) + 1, step)))
        prev = 0
        for i in picks.tolist():
            i = min(i, len(terms) - 1)
            sample.append((terms[i], int(cum[i]) - prev))
            prev = int(cum[i])
    return doc_lengths
