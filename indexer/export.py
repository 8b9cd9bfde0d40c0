"""Export: an index's postings in formats other tools read, streamed one batch of terms at a time.

Reads the store only. `export_index` writes CIFF or JSONL (below). The terms are walked in byte
order in batches of about BATCH_POSTINGS postings: the blocks of a batch's terms are decoded in one
numpy pass per segment, as compaction does, and the batch's output (protobuf messages or JSON
lines) is built with numpy too, so memory holds one batch (or one very common term), never the
whole index.

CIFF, the Common Index File Format (Lin et al., "Supporting Interoperability Between Open-Source
Search Engines with the Common Index File Format", SIGIR 2020, arXiv:2003.08276; read by PISA,
Anserini, Terrier).
Message definitions from osirrc/ciff, src/main/protobuf/CommonIndexFileFormat.proto, version 1
(field 3 of Header is `num_docs` there, `num_doc_records` in a later revision; same number, same
type). The file is a sequence of protobuf messages, each prefixed by its size as a varint (as
protobuf's writeDelimitedTo writes them): one Header, one PostingsList per term, one DocRecord
per document.
    Header        1 version int32 (1), 2 num_postings_lists int32, 3 num_docs int32,
                  4 total_postings_lists int32, 5 total_docs int32,
                  6 total_terms_in_collection int64, 7 average_doclength double,
                  8 description string
    PostingsList  1 term string, 2 df int64, 3 cf int64, 4 postings repeated Posting
    Posting       1 docid int32: the gap to the doc before (the first posting: its doc id), 2 tf int32
    DocRecord     1 docid int32, 2 collection_docid string, 3 doclength int32
Doc ids are dense, 0..N-1 over the live documents in index order: deleted documents are left out
and the others renumbered, and several segments share one id space. CIFF has no positions. A
field holding its default (0, "") is left out, as protobuf's own writers leave it out.

JSONL: one line per term, in byte order, nothing else:
    {"term": "merge", "df": 2, "cf": 3, "postings": [["notes/a.txt", 2, [4, 17]], ["b.txt", 1, [0]]]}
a posting being [doc, tf, positions] ([doc, tf] for an index built without positions), doc the
document's external id (its path or record id, as `indexer postings` shows it; two documents
with the same id cannot be told apart here, they can in CIFF). Each line is the UTF-8 of what
json.dumps(line, ensure_ascii=False) gives.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from indexer.errors import IndexerError
from indexer.store.codec import decode_blocks, decode_positions, encode_varint, encode_varints, varint_lengths
from indexer.store.compact import term_blocks, term_headers
from indexer.store.files import disk_full, make_temp_file
from indexer.store.index import IndexReader
from indexer.store.segment import DOC_NAMES, TERMS, SegmentReader

FORMATS = ("ciff", "jsonl")
CIFF_VERSION = 1
BATCH_POSTINGS = 1 << 19  # postings decoded at once (a heavier term is decoded alone)
DOC_BATCH = 1 << 16  # doc records encoded at once
INT32_MAX = (1 << 31) - 1

# protobuf wire types (protobuf.dev/programming-guides/encoding): a field's key is number << 3 | type
VARINT, FIXED64, LENGTH = 0, 1, 2


@dataclass(frozen=True)
class ExportStats:
    """What an export wrote: terms (posting lists), live documents, postings, bytes."""

    format: str
    terms: int
    documents: int
    postings: int
    bytes: int


def export_index(
    index: Path,
    output: Path | BinaryIO,
    fmt: str,
    description: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportStats:
    """Write the postings of the index at `index` to `output` in `fmt` ("ciff" or "jsonl").

    `output` is a path (written to a temporary file beside it, then renamed over it: a failed
    export leaves no half file) or a binary stream. `description` is CIFF's header text (by
    default the indexer version and the analyzer settings). `on_progress(terms done, terms)` is
    called after each batch. Raises IndexerError (IndexFormatError for a damaged index, or a
    collection too large for CIFF's 32-bit fields) and OSError when the output cannot be written.
    """
    if fmt not in FORMATS:
        raise IndexerError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    index = Path(index)
    with IndexReader(index) as reader:
        if isinstance(output, (str, os.PathLike)):
            return _export_to_file(reader, Path(output), fmt, description, on_progress)
        return _export(reader, output, fmt, description, on_progress)


def _export_to_file(reader: IndexReader, output: Path, fmt, description, on_progress) -> ExportStats:
    """Write to a temporary file beside `output` (the file a symbolic link points to), then rename
    it over `output`, keeping the permission bits of a file it replaces."""
    target = Path(os.path.realpath(output))
    if target.exists() and os.path.samefile(target, reader.path):
        raise IndexerError(f"{output}: is the index being exported; choose another output file")
    try:
        fd, tmp = make_temp_file(target.parent, target.name)
    except OSError as err:
        raise IndexerError(f"{output}: cannot write here ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as sink:
            stats = _export(reader, sink, fmt, description, on_progress)
            sink.flush()
            os.fsync(sink.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:  # as readable as any new file (mkstemp made it 0600)
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if disk_full(err):
            raise IndexerError(f"no space left on device while writing {output}; free some space") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return stats


def _export(reader: IndexReader, sink: BinaryIO, fmt, description, on_progress) -> ExportStats:
    walk = _Walk(reader)
    if fmt == "ciff":
        writer = _CiffWriter(walk, sink, _default_description(reader) if description is None else description)
    else:
        writer = _JsonlWriter(walk, sink)
    writer.start()
    done = 0
    for batch in walk.batches(positions=writer.wants_positions):
        writer.write_terms(batch)
        done += len(batch.terms)
        if on_progress is not None:
            on_progress(done, walk.term_count)
    writer.finish()
    return ExportStats(fmt, walk.term_count, walk.doc_count, int(walk.live_df.sum()), writer.written)


def _default_description(reader: IndexReader) -> str:
    from indexer import __version__

    analyzer = json.dumps(reader.meta.analyzer, sort_keys=True)
    return f"indexer {__version__} export of {reader.path.name}; analyzer {analyzer}"


# ---------------------------------------------------------------------------------------------
# Walking the index: terms in byte order, postings with dense doc ids


@dataclass(frozen=True)
class _Batch:
    """Consecutive exported terms with their postings, grouped by term: the terms' UTF-8 bytes,
    concatenated, and each one's length; their numbers in the walk's vocabulary; df and cf per term;
    docs (dense ids, ascending within a term), tfs, and positions (sum(tfs) of them, or None)."""

    term_bytes: np.ndarray
    term_lengths: np.ndarray
    terms: np.ndarray
    df: np.ndarray
    cf: np.ndarray
    docs: np.ndarray
    tfs: np.ndarray
    positions: np.ndarray | None


class _Walk:
    """The vocabulary of all segments in byte order, each term's live df (from the segment headers
    less what the deletion records count), and the renumbering of live documents to 0..N-1."""

    def __init__(self, reader: IndexReader):
        self.reader = reader
        segments = reader.segments
        for segment in segments:
            segment.check(0, segment.paged_end)  # everything is read: check it all first
        self.doc_count = reader.doc_count
        self.dense: list[np.ndarray] = []  # per segment: local doc id -> dense id, -1 when deleted
        base = 0
        for segment, gone in zip(segments, reader.deletions):
            live = np.ones(segment.doc_count, dtype=bool)
            live[gone.docs.astype(np.int64)] = False
            dense = np.full(segment.doc_count, -1, dtype=np.int64)
            dense[live] = base + np.arange(int(live.sum()))
            base += int(live.sum())
            self.dense.append(dense)
        assert base == self.doc_count, "live documents disagree with the commit record"
        self._vocabulary(segments)
        raw_df = np.zeros(len(self.term_lengths), dtype=np.int64)  # postings decoded, deleted included
        raw_bytes = np.zeros(len(self.term_lengths), dtype=np.int64)  # term data read
        live_df = np.zeros(len(self.term_lengths), dtype=np.int64)
        for segment, gone, where in zip(segments, reader.deletions, self.where):
            df = _segment_df(segment)
            raw_df[where] += df
            raw_bytes[where] += np.diff(segment.term_data.astype(np.int64))
            df[gone.terms.astype(np.int64)] -= gone.counts.astype(np.int64)
            live_df[where] += df
        self.raw_df, self.raw_bytes = raw_df, raw_bytes
        self.live_df = live_df
        self.exported = np.flatnonzero(live_df > 0)  # a term only deleted documents held is left out
        self.term_count = len(self.exported)

    def _vocabulary(self, segments: list[SegmentReader]) -> None:
        """The terms of all segments, sorted and distinct, as UTF-8 bytes (`term_bytes` and
        `term_offsets`), and for each segment where its terms lie in them (`where`) and which term
        number each vocabulary term has in it, -1 for none (`ids`)."""
        if len(segments) == 1:  # the segment's own dictionary, already sorted: no copy
            segment = segments[0]
            self.term_bytes = segment.section(TERMS)
            self.term_offsets = segment.term_offsets.astype(np.int64)
            self.where = [np.arange(segment.term_count, dtype=np.int64)]
        else:
            lists = [_raw_terms(segment) for segment in segments]
            vocab = sorted(set().union(*lists))  # bytes sort in byte order
            number = {term: i for i, term in enumerate(vocab)}
            self.where = [np.fromiter((number[t] for t in terms), np.int64, len(terms)) for terms in lists]
            lengths = np.fromiter(map(len, vocab), np.int64, len(vocab))
            self.term_bytes = np.frombuffer(b"".join(vocab), dtype=np.uint8)
            self.term_offsets = np.concatenate(([0], np.cumsum(lengths)))
        self.term_lengths = np.diff(self.term_offsets)
        self.ids = []
        for where in self.where:
            ids = np.full(len(self.term_lengths), -1, dtype=np.int64)
            ids[where] = np.arange(len(where))
            self.ids.append(ids)

    def batches(self, positions: bool):
        """Yield a _Batch per run of exported terms of about BATCH_POSTINGS decoded values: postings,
        or with positions, four per byte of term data, as compaction counts them."""
        terms = self.exported
        weight = np.cumsum(4 * self.raw_bytes[terms] if positions else self.raw_df[terms])
        start = 0
        while start < len(terms):
            before = int(weight[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(weight, before + BATCH_POSTINGS, side="right")))
            yield self._batch(terms[start:stop], positions)
            start = stop

    def _batch(self, terms: np.ndarray, positions: bool) -> _Batch:
        parts = []  # per segment: (batch index of each posting, dense docs, tfs, positions)
        for segment, ids, dense in zip(self.reader.segments, self.ids, self.dense):
            here = ids[terms]
            present = np.flatnonzero(here >= 0)
            if not len(present):
                continue
            blocks = term_blocks(segment, term_headers(segment, here[present]))
            buf, words = segment.postings_buffer, segment.words
            docs, tfs = decode_blocks(buf, words, blocks["offset"], blocks["count"], blocks["previous"])
            pos = decode_positions(buf, words, blocks["positions"], blocks["count"], tfs)[1] if positions else None
            docs = dense[docs]
            live = docs >= 0
            which = np.repeat(present[blocks["term"]], blocks["count"])
            if not live.all():
                pos = None if pos is None else pos[np.repeat(live, tfs)]
                docs, tfs, which = docs[live], tfs[live], which[live]
            parts.append((which, docs, tfs, pos))
        which = np.concatenate([p[0] for p in parts])
        docs = np.concatenate([p[1] for p in parts])
        tfs = np.concatenate([p[2] for p in parts])
        pos = np.concatenate([p[3] for p in parts]) if positions else None
        if len(parts) > 1:  # term after term; segments (ascending doc ids) stay in order within a term
            order = np.argsort(which, kind="stable")
            if pos is not None:
                first = np.cumsum(tfs) - tfs
                within = np.arange(len(pos)) - np.repeat(np.cumsum(tfs[order]) - tfs[order], tfs[order])
                pos = pos[np.repeat(first[order], tfs[order]) + within]
            which, docs, tfs = which[order], docs[order], tfs[order]
        df = np.bincount(which, minlength=len(terms)).astype(np.int64)
        assert np.array_equal(df, self.live_df[terms]), "decoded postings disagree with the df of the headers"
        cf = np.bincount(which, weights=tfs, minlength=len(terms)).astype(np.int64)
        starts, stops = self.term_offsets[terms], self.term_offsets[terms + 1]
        return _Batch(_gather(self.term_bytes, starts, stops - starts), stops - starts, terms, df, cf, docs, tfs, pos)

    def doc_batches(self):
        """Yield (dense ids, UTF-8 names concatenated, name lengths, doc lengths) of the live
        documents, DOC_BATCH at a time, in dense id order."""
        for segment, dense in zip(self.reader.segments, self.dense):
            names = segment.section(DOC_NAMES)
            offsets = segment.name_offsets.astype(np.int64)
            lengths = np.asarray(segment.doc_lengths, dtype=np.int64)
            for first in range(0, segment.doc_count, DOC_BATCH):
                local = np.arange(first, min(first + DOC_BATCH, segment.doc_count))
                local = local[dense[local] >= 0]
                name_lengths = offsets[local + 1] - offsets[local]
                yield dense[local], _gather(names, offsets[local], name_lengths), name_lengths, lengths[local]


def _segment_df(segment: SegmentReader) -> np.ndarray:
    """Every term's df in a segment (deleted documents included), from the headers alone."""
    step = 1 << 16
    parts = [
        term_headers(segment, np.arange(a, min(a + step, segment.term_count))).df
        for a in range(0, segment.term_count, step)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _raw_terms(segment: SegmentReader) -> list[bytes]:
    raw = segment.section(TERMS).tobytes()
    cuts = segment.term_offsets.tolist()
    return [raw[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ---------------------------------------------------------------------------------------------
# Writers


class _CiffWriter:
    """CIFF: the header first (its counts come from the walk, known before any posting is read),
    then the posting lists batch by batch, then the doc records."""

    wants_positions = False

    def __init__(self, walk: _Walk, sink: BinaryIO, description: str):
        self.walk, self.sink, self.description, self.written = walk, sink, description, 0

    def _write(self, data) -> None:
        self.sink.write(data)
        self.written += len(data)

    def start(self) -> None:
        walk, reader = self.walk, self.walk.reader
        live = np.concatenate([d >= 0 for d in walk.dense]) if walk.dense else np.zeros(0, bool)
        lengths = np.asarray(reader.doc_lengths, dtype=np.int64)[live]
        tokens = int(lengths.sum())
        too_big = [
            what
            for what, value in (
                ("documents", walk.doc_count),
                ("terms", walk.term_count),
                ("a document's length", int(lengths.max(initial=0))),
            )
            if value > INT32_MAX
        ]
        if too_big:
            raise IndexerError(f"{reader.path}: too many {too_big[0]} for CIFF, whose fields are 32-bit")
        header = b"".join(
            [
                _pb_varint(1, CIFF_VERSION),
                _pb_varint(2, walk.term_count),  # num_postings_lists
                _pb_varint(3, walk.doc_count),  # num_docs: the doc records that follow
                _pb_varint(4, walk.term_count),  # total_postings_lists: all of them are exported
                _pb_varint(5, walk.doc_count),  # total_docs
                _pb_varint(6, tokens),  # total_terms_in_collection: the sum of the doc lengths
                _pb_double(7, tokens / walk.doc_count if walk.doc_count else 0.0),  # average_doclength
                _pb_string(8, self.description.encode("utf-8")),
            ]
        )
        self._write(encode_varint(len(header)) + header)

    def write_terms(self, batch: _Batch) -> None:
        first = np.cumsum(batch.df) - batch.df
        gaps = batch.docs.copy()
        gaps[1:] -= batch.docs[:-1]
        gaps[first] = batch.docs[first]  # a list's first doc id is its own gap
        records, widths = _posting_records(gaps, batch.tfs)
        term = np.repeat(np.arange(len(batch.df)), batch.df)
        postings = (records, np.bincount(term, weights=widths, minlength=len(batch.df)).astype(np.int64))
        data, _ = _messages(
            [
                _bytes_field(1, batch.term_bytes, batch.term_lengths),
                _uint_field(2, batch.df),
                _uint_field(3, batch.cf),
                postings,
            ]
        )
        self._write(data)

    def finish(self) -> None:
        for docs, names, name_lengths, lengths in self.walk.doc_batches():
            data, _ = _messages([_uint_field(1, docs), _bytes_field(2, names, name_lengths), _uint_field(3, lengths)])
            self._write(data)


class _JsonlWriter:
    """JSONL: a line per term, the bytes json.dumps(line, ensure_ascii=False) gives, built for a
    whole batch at once: numbers written as digits by numpy, the documents' names escaped once."""

    def __init__(self, walk: _Walk, sink: BinaryIO):
        self.walk, self.sink, self.written = walk, sink, 0
        self.wants_positions = walk.reader.has_positions
        # by dense id (the live documents in index order): each name as a JSON string
        names = [json.dumps(name, ensure_ascii=False).encode("utf-8") for name in walk.reader.doc_names()]
        self.name_lengths = np.fromiter(map(len, names), np.int64, len(names))
        self.name_starts = np.cumsum(self.name_lengths) - self.name_lengths
        self.names = np.frombuffer(b"".join(names), dtype=np.uint8)

    def start(self) -> None:
        pass

    def write_terms(self, batch: _Batch) -> None:
        n = len(batch.docs)
        first = np.cumsum(batch.df) - batch.df
        last_of_term = np.zeros(n, dtype=bool)
        last_of_term[first + batch.df - 1] = True
        names = (
            _gather(self.names, self.name_starts[batch.docs], self.name_lengths[batch.docs]),
            self.name_lengths[batch.docs],
        )
        if batch.positions is not None:
            tf_first = np.cumsum(batch.tfs) - batch.tfs
            last_of_posting = np.zeros(len(batch.positions), dtype=bool)
            last_of_posting[tf_first + batch.tfs - 1] = True
            positions, lengths = _join([_decimals(batch.positions), _repeat_unless(b", ", last_of_posting)])
            rest = [_repeat(b", [", n), (positions, np.add.reduceat(lengths, tf_first)), _repeat(b"]]", n)]
        else:
            rest = [_repeat(b"]", n)]
        postings, lengths = _join(
            [
                _repeat(b"[", n),
                names,
                _repeat(b", ", n),
                _decimals(batch.tfs),
                *rest,
                _repeat_unless(b", ", last_of_term),
            ]
        )
        raw = batch.term_bytes.tobytes()
        cuts = np.concatenate(([0], np.cumsum(batch.term_lengths))).tolist()
        terms = [
            json.dumps(raw[a:b].decode("utf-8"), ensure_ascii=False).encode("utf-8") for a, b in zip(cuts, cuts[1:])
        ]
        k = len(terms)
        data, _ = _join(
            [
                _repeat(b'{"term": ', k),
                (np.frombuffer(b"".join(terms), dtype=np.uint8), np.fromiter(map(len, terms), np.int64, k)),
                _repeat(b', "df": ', k),
                _decimals(batch.df),
                _repeat(b', "cf": ', k),
                _decimals(batch.cf),
                _repeat(b', "postings": [', k),
                (postings, np.add.reduceat(lengths, first)),
                _repeat(b"]}\n", k),
            ]
        )
        self.sink.write(data)
        self.written += len(data)

    def finish(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Columns of bytes
#
# A column is (bytes, lengths): row i's bytes are the lengths[i] bytes after those of rows < i.
# Messages and lines are built as columns joined row by row: one message or line per row.


def _join(columns: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One column whose row i is row i of each column, in order. The bytes of all columns but the
    biggest are placed by index; the biggest (the postings of a batch of terms) fills the bytes
    left over, in order, with one masked copy."""
    lengths = [np.asarray(c[1], dtype=np.int64) for c in columns]
    total = np.sum(lengths, axis=0)
    out = np.empty(int(total.sum()), dtype=np.uint8)
    filler = max(range(len(columns)), key=lambda c: len(columns[c][0]))
    placed = np.zeros(len(out), dtype=bool)
    at = np.cumsum(total) - total  # where each row's part of the next column goes
    for c, ((data, _), length) in enumerate(zip(columns, lengths)):
        if c != filler and len(data):
            within = np.arange(len(data), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
            where = np.repeat(at, length) + within
            out[where] = data
            placed[where] = True
        at = at + length
    out[~placed] = columns[filler][0]
    return out, total


def _gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte runs source[starts[i] : starts[i] + lengths[i]], concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.asarray(source)[np.repeat(np.asarray(starts, dtype=np.int64), lengths) + within]


def _repeat(text: bytes, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A column holding the same bytes in every row."""
    return np.tile(np.frombuffer(text, dtype=np.uint8), rows), np.full(rows, len(text), dtype=np.int64)


def _repeat_unless(text: bytes, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same bytes in every row but those where `skip` is set, which are empty."""
    return np.tile(np.frombuffer(text, dtype=np.uint8), int((~skip).sum())), np.where(skip, 0, len(text))


_POWERS_OF_TEN = 10 ** np.arange(1, 19, dtype=np.int64)


def _decimals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (>= 0) in decimal ASCII, a row each."""
    values = np.asarray(values, dtype=np.int64)
    digits = np.searchsorted(_POWERS_OF_TEN, values, side="right") + 1
    width = int(digits.max(initial=1))
    rows = np.empty((len(values), width), dtype=np.uint8)
    rest = values.copy()
    for j in range(width - 1, -1, -1):  # right-aligned: the last column holds the units
        rows[:, j] = rest % 10 + ord("0")
        rest //= 10
    return rows[np.arange(width) >= width - digits[:, None]], digits


# ---------------------------------------------------------------------------------------------
# Protobuf encoding (protobuf.dev/programming-guides/encoding), many messages at once


def _pb_varint(field: int, value: int) -> bytes:
    """A varint field (int32, int64 of a value >= 0); nothing for 0, its default."""
    return encode_varint(field << 3 | VARINT) + encode_varint(value) if value else b""


def _pb_double(field: int, value: float) -> bytes:
    return encode_varint(field << 3 | FIXED64) + struct.pack("<d", value) if value else b""


def _pb_string(field: int, data: bytes) -> bytes:
    return encode_varint(field << 3 | LENGTH) + encode_varint(len(data)) + data if data else b""


def _messages(fields: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Length-delimited messages: each row's fields, prefixed by their size as a varint."""
    size = np.sum([np.asarray(f[1], dtype=np.int64) for f in fields], axis=0)
    return _join([(encode_varints(size), varint_lengths(size)), *fields])


def _uint_field(field: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A varint field per row (values >= 0), left out where the value is 0."""
    values = np.asarray(values, dtype=np.int64)
    present = values > 0
    keys = np.full(int(present.sum()), field << 3 | VARINT, dtype=np.uint8)
    varints = (encode_varints(values[present]), np.where(present, varint_lengths(values), 0))
    return _join([(keys, present.astype(np.int64)), varints])


def _bytes_field(field: int, data: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A length-delimited field (string, bytes) per row, left out where it is empty."""
    lengths = np.asarray(lengths, dtype=np.int64)
    present = lengths > 0
    keys = np.full(int(present.sum()), field << 3 | LENGTH, dtype=np.uint8)
    sizes = (encode_varints(lengths[present]), np.where(present, varint_lengths(lengths), 0))
    return _join([(keys, present.astype(np.int64)), sizes, (data, lengths)])


POSTING_KEY = 4 << 3 | LENGTH  # PostingsList.postings
DOCID_KEY, TF_KEY = 1 << 3 | VARINT, 2 << 3 | VARINT  # Posting.docid, Posting.tf
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 5)], dtype=np.uint64)  # the smallest of 2..5 bytes
# the continuation bits of a varint of n bytes, as a little-endian integer: 0x80 in all bytes but the last
_CONTINUED = np.array([0] + [sum(0x80 << 8 * k for k in range(n - 1)) for n in range(1, 6)], dtype=np.uint64)
# which of a posting's 16 bytes are used, by (bytes used of the first word) * 9 + (of the second)
_USED = np.concatenate(
    [np.arange(8)[None, :] < np.arange(81)[:, None] // 9, np.arange(8)[None, :] < np.arange(81)[:, None] % 9], axis=1
)


def _posting_records(gaps: np.ndarray, tfs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each posting as a field of its PostingsList: key, size, the Posting message (its docid
    left out when the gap is 0: only a list's first posting, of doc 0). Values are below 2**31
    (checked with the header), so a varint takes at most 5 bytes. Each posting is built in two
    little-endian 64-bit words, [key, size, docid field][tf field], whose used bytes are then
    taken in order: (bytes, lengths)."""
    gap_varint, gap_len = _spread_varints(gaps)
    tf_varint, tf_len = _spread_varints(tfs)
    has_gap = np.asarray(gaps) > 0
    gap_field = np.where(has_gap, 1 + gap_len, 0)
    tf_field = 1 + tf_len
    size = gap_field + tf_field  # at most 12: a one-byte varint
    words = np.empty((len(size), 2), dtype="<u8")
    gap_bytes = np.where(has_gap, np.uint64(DOCID_KEY) | (gap_varint << np.uint64(8)), np.uint64(0))
    words[:, 0] = np.uint64(POSTING_KEY) | (size.astype(np.uint64) << np.uint64(8)) | (gap_bytes << np.uint64(16))
    words[:, 1] = np.uint64(TF_KEY) | (tf_varint << np.uint64(8))
    used = _USED[(2 + gap_field) * 9 + tf_field]
    return words.view(np.uint8).reshape(len(size), 16)[used], 2 + size


def _spread_varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of values below 2**35 as little-endian uint64s (7 bits a byte, continuation bits
    set), and their lengths in bytes."""
    v = np.asarray(values, dtype=np.uint64)
    length = np.searchsorted(_VARINT_LIMITS, v, side="right") + 1
    spread = v & np.uint64(0x7F)
    for k in range(1, 5):
        spread |= (v << np.uint64(k)) & np.uint64(0x7F << (8 * k))
    return spread | _CONTINUED[length], length
