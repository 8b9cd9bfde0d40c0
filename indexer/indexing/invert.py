"""The worker's job: one chunk -> sorted runs on disk -> a small summary for the parent.

A worker reads its own files and prepares each document's text (indexer.analysis) in pieces of
at most PIECE_CHARS characters. Pieces are gathered into batches of about BATCH_BYTES of UTF-8,
in which numpy finds the words (indexing/tokens.py) and the process vocabulary numbers them
(indexing/vocabulary.py): no Python runs per token. When the buffered tokens pass the memory
share, they are inverted with one numpy sort and written as a run (single-pass in-memory
inversion). A document too large for the share is flushed piece by piece into runs of its own,
which are then joined into one, so every run holds at most one posting per term and document.
"""

from __future__ import annotations

import shutil
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.corpus.readers import FileStamp, ReadOptions, read_piece
from indexer.corpus.skips import SkipLog, SkipReason
from indexer.indexing.allocator import trim_heap
from indexer.indexing.hashing import PAD
from indexer.indexing.runs import as_one_document, run_term_count, write_doc_table, write_run
from indexer.indexing.tokens import word_spans
from indexer.indexing.vocabulary import Vocabulary

if TYPE_CHECKING:
    from indexer.corpus.discover import Chunk

# How a worker spends its memory share: a quarter on the vocabulary it keeps across chunks, the
# rest on buffered tokens. The per-item costs are measured (RSS of a worker while inverting the
# synthetic corpus; the vocabulary's own arrays, bytes and tables under tracemalloc: 131-143 bytes
# per word held); they turn the share into a word limit and a flush threshold.
BYTES_PER_BUFFERED_TOKEN = 100
BYTES_PER_VOCABULARY_WORD = 160
BYTES_PER_MERGED_POSTING = 120  # as the pipeline's: for joining the runs of a large document
BYTES_PER_RUN_TERM = 80  # as the pipeline's: a combine's memory per run and term it reads
SAMPLE_POINTS = 64  # term-range sample points per run, for planning the parallel merge
BATCH_BYTES = 1 << 20  # text tokenized at once: large enough for numpy, small beside the share
PIECE_CHARS = 1 << 20  # a document longer than this is prepared and tokenized in pieces
MIN_PIECE_CHARS = 1 << 10  # (pieces shrink with the memory share, down to this)

# per process: each analyzer's vocabulary, kept from chunk to chunk
_vocabularies: dict[AnalyzerConfig, Vocabulary] = {}


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


def _vocabulary(config: AnalyzerConfig, max_words: int, fresh: bool = False) -> Vocabulary:
    known = _vocabularies.get(config)
    if fresh or known is None or known.full or known.max_words != max_words:
        _vocabularies.clear()  # one analyzer per build: drop the others' memory too
        _vocabularies[config] = Vocabulary(Analyzer(config), max_words)
    return _vocabularies[config]


class _Buffer:
    """Tokens of consecutive documents of one chunk, as term numbers of the process vocabulary.
    Its first document may have begun in an earlier buffer (`first_position` words ago)."""

    def __init__(self, vocabulary: Vocabulary, first_doc: int, first_position: int = 0):
        self.vocabulary = vocabulary
        self.first_doc = first_doc
        self.first_position = first_position
        self.batches: list[np.ndarray] = []  # int32 term numbers (-1: not indexed), in token order
        self.doc_words = array("q")  # words of each finished document
        self.open_words = 0  # words so far of the document being read
        self.tokens = 0  # exact for tokenized text, estimated for pending text
        self._pending: list[bytes] = []  # prepared UTF-8 text not yet tokenized
        self._pending_ends: list[bool] = []  # does the piece end its document?
        self._pending_bytes = 0
        self._pending_ascii = True

    def add(self, text: str) -> None:
        """Add a prepared piece of the document being read."""
        raw = text.encode("utf-8", "surrogatepass")  # json may give lone surrogates; they are no word
        self._pending.append(raw)
        self._pending_ends.append(False)
        self._pending_ascii = self._pending_ascii and text.isascii()
        self._pending_bytes += len(raw)
        self.tokens += len(raw) // 6  # an estimate until tokenized, for the flush threshold
        if self._pending_bytes >= BATCH_BYTES:
            self.tokenize()

    def end_document(self) -> None:
        if self._pending and not self._pending_ends[-1]:  # its last piece is pending
            self._pending_ends[-1] = True
        elif self._pending:  # no piece of it is pending (a document without text): an empty one
            self._pending.append(b"")
            self._pending_ends.append(True)
        else:
            self.doc_words.append(self.open_words)
            self.open_words = 0

    @property
    def empty(self) -> bool:
        return not self.doc_words and not self._pending and not self.open_words

    def tokenize(self) -> None:
        """Find and number the words of the pending text (the tokens count is exact after)."""
        if not self._pending:
            return
        pieces, ends = self._pending, self._pending_ends
        data = b" ".join([b"", *pieces, bytes(PAD)])  # spaces keep pieces apart; zeros pad the hashing
        n = len(data) - PAD
        a = np.frombuffer(data, dtype=np.uint8)
        starts, stops = word_spans(a, n, self._pending_ascii)
        self.batches.append(self.vocabulary.term_numbers(data, a, starts, stops))
        piece_ends = np.cumsum(np.fromiter(map(len, pieces), np.int64, len(pieces)) + 1)
        counts = np.diff(np.searchsorted(starts, piece_ends), prepend=0).tolist()
        words = self.open_words
        for count, ends_doc in zip(counts, ends):
            words += count
            if ends_doc:
                self.doc_words.append(words)
                words = 0
        self.open_words = words
        self._pending, self._pending_ends, self._pending_bytes, self._pending_ascii = [], [], 0, True
        self.tokens = sum(map(len, self.batches))

    def tokens_array(self) -> np.ndarray:
        self.tokenize()
        return np.concatenate(self.batches) if self.batches else np.zeros(0, np.int32)

    def split_open(self) -> _Buffer:
        """Move the finished documents to a new buffer (returned) and keep only the words of the
        document being read."""
        tokens = self.tokens_array()
        done = _Buffer(self.vocabulary, self.first_doc, self.first_position)
        finished = int(np.frombuffer(self.doc_words, dtype=np.int64).sum())
        done.batches, done.doc_words, done.tokens = [tokens[:finished]], self.doc_words, finished
        self.batches, self.doc_words, self.tokens = [tokens[finished:]], array("q"), len(tokens) - finished
        self.first_doc += len(done.doc_words)
        self.first_position = 0 if len(done.doc_words) else self.first_position
        return done


class _Chunk:
    """What one chunk leaves: its runs, their sample points and its documents' lengths."""

    def __init__(self, chunk: Chunk, settings: InvertSettings, run_dir: str):
        self.base = str(Path(run_dir, f"chunk-{chunk.number:06d}"))
        self.settings = settings
        self.runs: list[str] = []
        self.sample: list[tuple[str, int]] = []
        self.lengths = array("I")  # terms per document, in doc id order

    def flush(self, buf: _Buffer) -> None:
        """Write `buf` as the next run; a document it continues gets its lengths added."""
        lengths = _flush(buf, self.settings.positions, f"{self.base}-{len(self.runs):03d}", self.runs, self.sample)
        trim_heap()  # the flush's temporaries leave holes in the heap: give their pages back
        if buf.first_position and len(lengths):
            self.lengths[-1] += int(lengths[0])
            lengths = lengths[1:]
        self.lengths.extend(lengths.tolist())

    def join(self, first: int) -> None:
        """Join runs[first:], the pieces of one document, into one run in their place: combined
        in groups small enough for the memory share, then one posting per term (tf = cf)."""
        from indexer.indexing.merge import combine_runs  # only for documents larger than the share

        share, positions = self.settings.memory_per_worker, self.settings.positions
        batch_weight = max(1000, share // BYTES_PER_MERGED_POSTING)
        pieces, level = self.runs[first:], 0
        while True:
            terms = max(1, max(run_term_count(p) for p in pieces))
            fan_in = max(2, share // 2 // (BYTES_PER_RUN_TERM * terms))
            groups = [pieces[i : i + fan_in] for i in range(0, len(pieces), fan_in)]
            joined = []
            for group in groups:
                path = f"{self.base}-{len(self.runs):03d}-joined-{level}-{len(joined)}"
                joined.append(combine_runs([(p, 0) for p in group], path, positions, batch_weight))
                for p in group:
                    shutil.rmtree(p)
            pieces, level = joined, level + 1
            if len(pieces) == 1:
                break
        as_one_document(pieces[0])
        self.runs[first:] = pieces


def invert_chunk(chunk: Chunk, settings: InvertSettings, run_dir: str) -> RunSummary:
    """Read, analyze and invert one chunk; write its runs and document table under `run_dir`.

    Bad documents are skipped and counted in the summary. OSError from `run_dir` propagates.
    """
    max_words = max(1000, settings.memory_per_worker // 4 // BYTES_PER_VOCABULARY_WORD)
    max_tokens = max(1000, settings.memory_per_worker * 3 // 4 // BYTES_PER_BUFFERED_TOKEN)
    vocabulary = _vocabulary(settings.analyzer, max_words)
    analyzer = vocabulary.analyzer
    piece_chars = min(PIECE_CHARS, max(MIN_PIECE_CHARS, max_tokens * 2))  # a piece: a fraction of the buffer
    log = SkipLog()
    stamps: dict[int, FileStamp] = {}
    out = _Chunk(chunk, settings, run_dir)
    names: list[str] = []
    sources = array("q")
    buf = _Buffer(vocabulary, 0)
    bytes_read = 0
    for piece in chunk.pieces:
        for doc in read_piece(piece, settings.read, log, stamps):
            bytes_read += doc.length
            names.append(doc.name)
            sources.extend((doc.file_no, doc.offset, doc.length, doc.crc))
            split_from = None  # index of this document's first run, once it is flushed in pieces
            for text in analyzer.pieces(doc.blocks(), piece_chars):
                buf.add(text)
                if buf.tokens >= max_tokens:
                    buf.tokenize()
                    if buf.tokens < max_tokens:
                        continue
                    if split_from is None:  # what came before this document goes to a run of its own
                        before = buf.split_open()
                        if not before.empty:
                            out.flush(before)
                        if not buf.open_words:
                            continue
                        split_from = len(out.runs)
                    out.flush(buf)
                    position = buf.first_position + buf.open_words
                    vocabulary = _vocabulary(settings.analyzer, max_words)
                    buf = _Buffer(vocabulary, len(names) - 1, position)
            buf.end_document()
            if split_from is not None:
                out.flush(buf)
                out.join(split_from)
                buf = _Buffer(_vocabulary(settings.analyzer, max_words), len(names))
            elif buf.tokens >= max_tokens:
                out.flush(buf)
                buf = _Buffer(_vocabulary(settings.analyzer, max_words), len(names))
    if not buf.empty:
        out.flush(buf)
    docs_path = f"{out.base}-docs.npz"
    lengths = np.frombuffer(out.lengths, dtype=np.uint32)
    write_doc_table(docs_path, lengths, names, np.frombuffer(sources, dtype=np.int64))
    return RunSummary(
        chunk=chunk.number,
        runs=out.runs,
        documents=len(names),
        tokens=int(lengths.sum(dtype=np.int64)),
        bytes_read=bytes_read,
        docs_path=docs_path,
        skipped=dict(log.counts),
        skipped_examples=dict(log.examples),
        sample=out.sample,
        stamps=stamps,
    )


def _flush(buf: _Buffer, positions: bool, path: str, runs: list, sample: list) -> np.ndarray:
    """Invert the buffered documents into a run folder at `path`; returns their lengths in terms
    (the document being read, if any, last: its length so far in this buffer)."""
    tok = buf.tokens_array()
    vocabulary = buf.vocabulary
    doc_words = np.frombuffer(buf.doc_words, dtype=np.int64)
    if buf.open_words:
        doc_words = np.append(doc_words, buf.open_words)
    ndocs = len(doc_words)
    # this run's terms in byte order, and each process term number's rank among them
    present = np.zeros(len(vocabulary.terms) + 1, dtype=bool)  # the last slot serves -1
    present[tok] = True
    in_order, term_list = vocabulary.in_byte_order(np.flatnonzero(present[:-1]))
    rank = np.full(len(vocabulary.terms) + 1, -1, dtype=np.int64)
    rank[in_order] = np.arange(len(in_order))
    # sorting (rank << 32 | token index) keys orders the tokens by term, then doc and position
    # (an AVX-512 sort of int64 beat a stable argsort of the ranks); unindexed words (rank -1)
    # sort first and are cut off, or are dropped before when they are many, and keep their
    # place in the position count either way
    unindexed = np.count_nonzero(tok < 0)
    if unindexed * 8 > len(tok):
        kept = np.flatnonzero(tok >= 0)
        keys = rank[tok[kept]]
        keys <<= 32
        keys |= kept
    else:
        keys = rank[tok]
        keys <<= 32
        keys |= np.arange(len(tok), dtype=np.int64)
    keys.sort()
    keys = keys[np.searchsorted(keys, 0) :]
    halves = keys.view(np.int32)  # (rank, index) halves, read without copying
    t, index = (halves[1::2], halves[0::2]) if sys.byteorder == "little" else (halves[0::2], halves[1::2])
    token_doc = np.repeat(np.arange(ndocs, dtype=np.int32), doc_words)
    d = token_doc[index]
    del token_doc
    doc_lengths = np.bincount(d, minlength=ndocs).astype(np.uint32)
    new_posting = np.empty(len(t), dtype=bool)
    new_posting[:1] = True
    np.not_equal(t[1:], t[:-1], out=new_posting[1:])
    new_posting[1:] |= d[1:] != d[:-1]
    starts = np.flatnonzero(new_posting)
    del new_posting
    tfs = np.diff(starts, append=len(t))
    df = np.bincount(t[starts], minlength=len(in_order))
    cf = np.bincount(t, minlength=len(in_order))
    pos = None
    if positions:  # 0-based place in the document's word stream, unindexed words counted
        doc_start = np.cumsum(doc_words) - doc_words
        doc_start[:1] -= buf.first_position
        pos = index - doc_start[d]
    write_run(path, term_list, df, cf, d[starts] + buf.first_doc, tfs, pos)
    runs.append(path)
    _sample(term_list, df + cf, sample)
    return doc_lengths


def _sample(term_list: list[bytes], weight: np.ndarray, sample: list) -> None:
    """Sample points for planning term ranges: (term, weight since the previous point), weight =
    postings + positions."""
    cum = np.cumsum(weight)
    if not len(cum):
        return
    step = max(1, int(cum[-1]) // SAMPLE_POINTS)
    picks = np.unique(np.searchsorted(cum, np.arange(step, int(cum[-1]) + 1, step)))
    prev = 0
    for i in picks.tolist():
        i = min(i, len(term_list) - 1)
        sample.append((term_list[i].decode("utf-8"), int(cum[i]) - prev))
        prev = int(cum[i])
