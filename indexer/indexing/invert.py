"""The worker's job: one chunk -> sorted runs on disk -> a small summary for the parent.

A worker reads its own files, maps each token to a chunk-local word number as it goes (one C-level
dict lookup per token, no per-token Python objects kept), then inverts with numpy: a stable sort by
term gives postings ordered by term, doc and position. When the buffered tokens pass the memory
share, the buffer is flushed as a run (single-pass in-memory inversion), so memory stays bounded.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.analysis import WORD_RE, Analyzer, AnalyzerConfig
from indexer.corpus.discover import Chunk
from indexer.corpus.readers import FileStamp, ReadOptions, read_piece
from indexer.corpus.skips import SkipLog, SkipReason
from indexer.indexing.hashing import MAX_HASHED_WORD, span_hashes
from indexer.indexing.runs import write_doc_table, write_run

# How a worker spends its memory share: a quarter on the vocabulary it keeps across chunks, the
# rest on buffered tokens. The per-item costs are peaks measured on the synthetic corpus (RSS of a
# worker while inverting); they turn the share into a word limit and a flush threshold.
BYTES_PER_BUFFERED_TOKEN = 100
BYTES_PER_VOCABULARY_WORD = 250
SAMPLE_POINTS = 64  # term-range sample points per run, for planning the parallel merge

# per process: each analyzer's vocabulary, kept from chunk to chunk
_vocabularies: dict[AnalyzerConfig, _Vocabulary] = {}


@dataclass(frozen=True)
class InvertSettings:
    analyzer: AnalyzerConfig
    read: ReadOptions
    positions: bool
    memory_per_worker: int  # bytes


@dataclass(frozen=True)
class RunSummary:
    """What a worker sends back for one chunk: paths and counts, never postings."""

    chunk: int
    runs: list[str]
    documents: int
    tokens: int
    bytes_read: int
    docs_path: str
    skipped: dict[SkipReason, int] = field(default_factory=dict)
    skipped_examples: dict[SkipReason, list[str]] = field(default_factory=dict)
    stamps: dict[int, FileStamp] = field(default_factory=dict)  # file number -> reader, size, mtime
    sample: list[tuple[str, int]] = field(default_factory=list)  # (term, weight since previous point)


def _vocabulary(config: AnalyzerConfig, max_words: int) -> _Vocabulary:
    if config not in _vocabularies or _vocabularies[config].full or _vocabularies[config].max_words != max_words:
        _vocabularies.clear()  # one analyzer per build: drop the others' memory too
        _vocabularies[config] = _Vocabulary(Analyzer(config), max_words)
    return _vocabularies[config]


# ASCII documents skip the per-token Python work: a numpy pass finds word boundaries in the bytes
# and a hash (indexer.indexing.hashing) names each word; only distinct words become Python strings.
# Words longer than MAX_HASHED_WORD bytes go the `re` way.
ASCII_SLICE_BYTES = 1 << 20
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[np.frombuffer(b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)] = True


class _Vocabulary:
    """The words one worker process has seen, across chunks: word number -> term number, and the
    hashes of ASCII words. Words it knows cost no Python work in later chunks."""

    def __init__(self, analyzer: Analyzer, max_words: int):
        self.analyzer = analyzer
        self.max_words = max_words  # start afresh past this, so a worker's memory stays bounded
        self.words: dict[str, int] = {}
        self.word_terms = np.zeros(0, dtype=np.int32)  # word number -> term number (-1: not indexed)
        self.terms: list[bytes] = []  # UTF-8, as runs store them (byte order = code point order)
        self._term_numbers: dict[str, int] = {}
        self.hash_keys = np.zeros(0, dtype=np.uint64)  # sorted hashes of the ASCII words seen
        self.hash_words = np.zeros(0, dtype=np.int32)  # their word numbers

    @property
    def full(self) -> bool:
        return len(self.words) > self.max_words

    def add(self, new_words: list[str]) -> None:
        """Number words not seen before (all of `new_words` are new) and analyze them in one batch."""
        first = len(self.words)
        self.words.update(zip(new_words, range(first, first + len(new_words))))
        numbers = self._term_numbers
        terms = self.analyzer.term_list(new_words)
        for term in terms:
            if term and term not in numbers:
                numbers[term] = len(self.terms)
                self.terms.append(term.encode("utf-8"))
        numbers[""] = -1
        mapped = np.fromiter(map(numbers.__getitem__, terms), np.int32, len(terms))
        self.word_terms = np.concatenate((self.word_terms, mapped))

    def numbers_of(self, words: list[str]) -> np.ndarray:
        """Word numbers of the tokens of one document (the `re` path)."""
        known = self.words
        new = [w for w in dict.fromkeys(words) if w not in known]
        if new:
            self.add(new)
        return np.fromiter(map(known.__getitem__, words), np.int32, len(words))

    def numbers_of_hashed(self, hashes: np.ndarray, data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Word numbers of hashed tokens: distinct hashes are looked up among the words seen
        before, and only the new ones become Python strings."""
        unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        keys = self.hash_keys
        numbers = np.empty(len(unique), dtype=np.int32)
        if len(keys):
            at = np.minimum(np.searchsorted(keys, unique), len(keys) - 1)
            known = keys[at] == unique
            numbers[known] = self.hash_words[at[known]]
            new = np.flatnonzero(~known)
        else:
            new = np.arange(len(unique))
        if len(new):
            spans = zip(starts[first[new]].tolist(), ends[first[new]].tolist())
            strings = [data[s:e].decode("ascii") for s, e in spans]
            unseen = [w for w in strings if w not in self.words]  # seen before through the `re` path?
            if unseen:
                self.add(unseen)
            numbers[new] = np.fromiter(map(self.words.__getitem__, strings), np.int32, len(strings))
            at = np.searchsorted(keys, unique[new])
            self.hash_keys = np.insert(keys, at, unique[new])
            self.hash_words = np.insert(self.hash_words, at, numbers[new])
        return numbers[inverse.ravel()]


class _Buffer:
    """Tokens of consecutive documents of one chunk, as the process vocabulary's word numbers."""

    def __init__(self, vocabulary: _Vocabulary, first_doc: int):
        self.vocabulary = vocabulary
        self.first_doc = first_doc
        self.word_ids: list[np.ndarray] = []  # int32 word numbers, in token order
        self.doc_words = array("q")  # words per document
        self.tokens = 0
        self._pending: list[bytes] = []  # lower-cased ASCII documents not yet tokenized
        self._pending_bytes = 0

    def add(self, text: str) -> None:
        if text.isascii():
            raw = text.encode("ascii").lower()
            self._pending.append(raw)
            self._pending_bytes += len(raw)
            self.tokens += len(raw) // 6  # an estimate until tokenized, for the flush threshold
            if self._pending_bytes >= ASCII_SLICE_BYTES:
                self._tokenize_pending()
        else:
            self._tokenize_pending()
            self._add_words([self.vocabulary.analyzer.words(text)])

    @property
    def empty(self) -> bool:
        return not self.doc_words and not self._pending

    def finish(self) -> None:
        self._tokenize_pending()
        self.tokens = sum(map(len, self.word_ids))

    def _add_words(self, docs: list[list[str]]) -> None:
        for words in docs:
            self.word_ids.append(self.vocabulary.numbers_of(words))
            self.doc_words.append(len(words))
            self.tokens += len(words)

    def _tokenize_pending(self) -> None:
        if not self._pending:
            return
        docs, self._pending, self._pending_bytes = self._pending, [], 0
        data = b" ".join(docs)  # the space keeps neighbouring documents' words apart
        a = np.frombuffer(data, dtype=np.uint8)
        edges = np.flatnonzero(np.diff(_WORD_BYTE[a].view(np.int8), prepend=0, append=0))
        starts, ends = edges[0::2], edges[1::2]
        lengths = ends - starts
        if len(lengths) and lengths.max() > MAX_HASHED_WORD:
            self._add_words([WORD_RE.findall(d.decode("ascii")) for d in docs])
            self.tokens = sum(map(len, self.word_ids))
            return
        hashes = span_hashes(a, starts, lengths)
        self.word_ids.append(self.vocabulary.numbers_of_hashed(hashes, data, starts, ends))
        doc_bounds = np.cumsum([len(d) + 1 for d in docs]) - 1  # byte after each document
        counts = np.diff(np.concatenate(([0], np.searchsorted(starts, doc_bounds))))
        self.doc_words.extend(counts.tolist())
        self.tokens = sum(map(len, self.word_ids))  # exact again, replacing the estimates


def invert_chunk(chunk: Chunk, settings: InvertSettings, run_dir: str) -> RunSummary:
    """Read, analyze and invert one chunk; write its runs and document table under `run_dir`.

    Bad documents are skipped and counted in the summary. OSError from `run_dir` propagates.
    """
    vocabulary = _vocabulary(settings.analyzer, max(1000, settings.memory_per_worker // 4 // BYTES_PER_VOCABULARY_WORD))
    log = SkipLog()
    stamps: dict[int, FileStamp] = {}
    base = Path(run_dir, f"chunk-{chunk.number:06d}")
    names: list[str] = []
    sources = array("q")
    lengths = array("I")
    runs: list[str] = []
    sample: list[tuple[str, int]] = []
    max_tokens = max(1000, settings.memory_per_worker * 3 // 4 // BYTES_PER_BUFFERED_TOKEN)
    buf = _Buffer(vocabulary, 0)
    bytes_read = 0
    for piece in chunk.pieces:
        for doc in read_piece(piece, settings.read, log, stamps):
            bytes_read += doc.length
            buf.add(doc.text)
            names.append(doc.name)
            sources.extend((doc.file_no, doc.offset, doc.length, doc.crc))
            if buf.tokens >= max_tokens:
                lengths.extend(_flush(buf, settings.positions, f"{base}-{len(runs):03d}", runs, sample))
                buf = _Buffer(vocabulary, len(names))
    if not buf.empty:
        lengths.extend(_flush(buf, settings.positions, f"{base}-{len(runs):03d}", runs, sample))
    docs_path = f"{base}-docs.npz"
    write_doc_table(docs_path, np.frombuffer(lengths, dtype=np.uint32), names, np.frombuffer(sources, dtype=np.int64))
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
        stamps=stamps,
    )


def _flush(buf: _Buffer, positions: bool, path: str, runs: list, sample: list) -> np.ndarray:
    """Invert the buffered documents into a run folder at `path`; returns their lengths in terms."""
    buf.finish()
    n = buf.tokens
    vocabulary = buf.vocabulary
    tok_word = np.concatenate(buf.word_ids) if buf.word_ids else np.zeros(0, np.int32)
    tok_term = vocabulary.word_terms[tok_word]  # process term numbers, -1: not indexed
    # this run's terms in sorted order, and each process term number's rank among them
    used = np.flatnonzero(np.bincount(tok_term + 1, minlength=len(vocabulary.terms) + 1)[1:])
    all_terms = vocabulary.terms
    used_terms = [all_terms[i] for i in used.tolist()]
    order = sorted(range(len(used_terms)), key=used_terms.__getitem__)
    term_bytes = [used_terms[i] for i in order]
    rank = np.full(len(all_terms) + 1, -1, dtype=np.int32)  # the last slot serves -1
    rank[used[order]] = np.arange(len(term_bytes), dtype=np.int32)
    tok_term = rank[tok_term]
    doc_words = np.frombuffer(buf.doc_words, dtype=np.int64)
    ndocs = len(doc_words)
    tok_doc = np.repeat(np.arange(ndocs, dtype=np.int32), doc_words)
    tok_pos = None
    if positions:  # 0-based position in the document's word stream, unindexed words counted
        doc_start = np.concatenate(([0], np.cumsum(doc_words)[:-1]))
        tok_pos = np.arange(n, dtype=np.int64) - np.repeat(doc_start, doc_words)
    keep = tok_term >= 0
    if not keep.all():  # drop stopwords and over-long words (their positions stay counted)
        tok_term, tok_doc = tok_term[keep], tok_doc[keep]
        tok_pos = None if tok_pos is None else tok_pos[keep]
    doc_lengths = np.bincount(tok_doc, minlength=ndocs).astype(np.uint32)
    # stable sort by term (doc, then position order kept within a term): sorting (term << 32 | index)
    # keys was faster here than a stable argsort
    order = np.sort((tok_term.astype(np.int64) << 32) | np.arange(len(tok_term), dtype=np.int64)) & 0xFFFFFFFF
    t, d = tok_term[order], tok_doc[order]
    new_posting = np.empty(len(t), dtype=bool)
    new_posting[:1] = True
    np.not_equal(t[1:], t[:-1], out=new_posting[1:])
    new_posting[1:] |= d[1:] != d[:-1]
    starts = np.flatnonzero(new_posting)
    tfs = np.diff(np.append(starts, len(t))).astype(np.uint32)
    post_term = t[starts]
    df = np.bincount(post_term, minlength=len(term_bytes)).astype(np.int64)
    cf = np.bincount(post_term, weights=tfs, minlength=len(term_bytes)).astype(np.int64)
    positions = None if tok_pos is None else tok_pos[order].astype(np.uint32)
    write_run(path, term_bytes, df, cf, (d[starts] + buf.first_doc).astype(np.uint32), tfs, positions)
    runs.append(path)
    # sample points for planning term ranges: weight = postings + positions
    weight = df + cf
    cum = np.cumsum(weight)
    if len(cum):
        step = max(1, int(cum[-1]) // SAMPLE_POINTS)
        picks = np.unique(np.searchsorted(cum, np.arange(step, int(cum[-1]) + 1, step)))
        prev = 0
        for i in picks.tolist():
            i = min(i, len(term_bytes) - 1)
            sample.append((term_bytes[i].decode("utf-8"), int(cum[i]) - prev))
            prev = int(cum[i])
    return doc_lengths
