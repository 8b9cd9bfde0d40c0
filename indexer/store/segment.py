"""Segments: an immutable index over a set of documents, one blob of sections (docs/FORMAT.md).

A segment's offsets count from its own first byte, so a segment is copied into a new index file
byte for byte. Its tables are fixed-width arrays read straight from the mapped file. Every page of
PAGE bytes has a CRC-32: the reader checks the pages it touches on first use and remembers them,
so damage in what a query reads is found, and opening or answering a query reads only what it needs.

`write_segment` writes one from columns and encoded term data; `SegmentReader` reads one.
"""

from __future__ import annotations

import json
import struct
import zlib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from indexer.errors import IndexFormatError
from indexer.store.codec import TermHeader, read_header, word_view

PAGE = 4096
TERM_SAMPLE = 128  # terms per run of the dictionary's in-memory sample (see SegmentReader._term_samples)
ALIGN = 8
SEGMENT_MAGIC = b"IDXSEG\r\n"
SECTION_ENTRY = struct.Struct("<IIQQ")  # kind, crc32 (the page table's own; 0 for the others), offset, length
SEGMENT_TRAILER = struct.Struct("<IIQ8s")  # section count, crc32 of the section table, segment length, magic

(
    SEGMENT_META,
    DOC_LENGTHS,
    DOC_NAME_OFFSETS,
    DOC_NAMES,
    DOC_SOURCES,
    FILES,
    FILE_NAME_OFFSETS,
    FILE_NAMES,
    TERM_OFFSETS,
    TERMS,
    TERM_DATA,
    POSTINGS,
    PAGES,
) = range(1, 14)
SECTION_NAMES = {
    SEGMENT_META: "segment meta",
    DOC_LENGTHS: "doc lengths",
    DOC_NAME_OFFSETS: "doc name offsets",
    DOC_NAMES: "doc names",
    DOC_SOURCES: "doc sources",
    FILES: "files",
    FILE_NAME_OFFSETS: "file name offsets",
    FILE_NAMES: "file names",
    TERM_OFFSETS: "term offsets",
    TERMS: "terms",
    TERM_DATA: "term data offsets",
    POSTINGS: "postings",
    PAGES: "page checksums",
}

# where each document came from: byte offset and length of its record in its file, and the
# CRC-32 of those bytes, which tells a snippet or an update that the record changed (the offset
# takes 4 bytes unless the segment is wide)
SOURCE = np.dtype([("offset", "<u8"), ("length", "<u4"), ("crc", "<u4")])
SOURCE_NARROW = np.dtype([("offset", "<u4"), ("length", "<u4"), ("crc", "<u4")])  # every offset below 4 GiB
# the files a segment's documents came from, in doc order: the first doc of each, the reader that
# read it (an index into the meta's `readers`), and the size and mtime it had when it was read
FILE = np.dtype([("first_doc", "<u4"), ("reader", "<u4"), ("size", "<u8"), ("mtime_ns", "<i8")])


@dataclass(frozen=True)
class SegmentMeta:
    documents: int
    terms: int
    postings: int
    tokens: int  # the sum of the document lengths
    positions: bool
    files: int
    readers: tuple[str, ...] = ()  # reader names, indexed by FILE.reader
    wide: bool = False  # offsets are u64 (a section over 4 GiB), else u32
    skipped: dict[str, int] = field(default_factory=dict)  # skip reason code -> inputs, when it was built
    positions_bytes: int = 0  # of the postings section, the bytes that are positions

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> SegmentMeta:
        raw = json.loads(data)
        raw["readers"] = tuple(raw.get("readers", ()))
        raw["skipped"] = {str(k): int(v) for k, v in raw.get("skipped", {}).items()}
        return cls(**raw)

    @property
    def offset_dtype(self) -> np.dtype:
        return np.dtype("<u8" if self.wide else "<u4")

    @property
    def source_dtype(self) -> np.dtype:
        return SOURCE if self.wide else SOURCE_NARROW


# ---------------------------------------------------------------------------------------------
# Writing


class _PageSink:
    """Writes to a file object and keeps the CRC-32 of every PAGE bytes written since it started."""

    def __init__(self, file):
        self.file = file
        self.written = 0
        self.pages: list[int] = []
        self._crc = 0
        self._fill = 0

    def write(self, data) -> None:
        view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")
        self.file.write(view)
        self.written += len(view)
        at = 0
        while at < len(view):
            take = min(PAGE - self._fill, len(view) - at)
            self._crc = zlib.crc32(view[at : at + take], self._crc)
            self._fill += take
            at += take
            if self._fill == PAGE:
                self.pages.append(self._crc)
                self._crc, self._fill = 0, 0

    def close_pages(self) -> np.ndarray:
        if self._fill:
            self.pages.append(self._crc)
            self._crc, self._fill = 0, 0
        return np.array(self.pages, dtype="<u4")


@dataclass
class TermPart:
    """Consecutive terms and their encoded data: UTF-8 term bytes as (lengths, blob), each term's
    data length, and the data itself as chunks to copy (arrays, or paths of files to copy whole)."""

    term_lengths: np.ndarray
    terms: np.ndarray
    data_lengths: np.ndarray
    data: list


@dataclass
class SegmentColumns:
    """What a new segment holds, in doc id and term order."""

    meta: SegmentMeta
    doc_lengths: list[np.ndarray]
    name_lengths: list[np.ndarray]
    names: list[np.ndarray]
    sources: list[np.ndarray]  # SOURCE records
    files: np.ndarray  # FILE records
    file_names: list[bytes]
    terms: list[TermPart]


def write_segment(file, columns: SegmentColumns) -> int:
    """Write a segment at the file's current position (8-aligned); returns its length."""
    sink = _PageSink(file)
    table: list[tuple[int, int, int, int]] = []
    offsets = columns.meta.offset_dtype

    def section(kind: int, chunks: Iterable) -> None:
        sink.write(b"\0" * (-sink.written % ALIGN))
        start = sink.written
        for chunk in chunks:
            if isinstance(chunk, str):  # a file of encoded data, copied whole
                with open(chunk, "rb") as f:
                    while block := f.read(8 << 20):
                        sink.write(block)
            else:
                sink.write(chunk)
        table.append((kind, 0, start, sink.written - start))

    def cumulative(lengths: list[np.ndarray]) -> np.ndarray:
        all_lengths = np.concatenate([np.asarray(x, dtype=np.int64) for x in lengths]) if lengths else np.zeros(0)
        return np.concatenate(([0], np.cumsum(all_lengths))).astype(offsets)

    names = [n.encode("utf-8", "surrogateescape") if isinstance(n, str) else n for n in columns.file_names]
    section(SEGMENT_META, [columns.meta.to_json()])
    section(DOC_LENGTHS, [np.asarray(x, dtype="<u4") for x in columns.doc_lengths])
    section(DOC_NAME_OFFSETS, [cumulative(columns.name_lengths)])
    section(DOC_NAMES, columns.names)
    section(DOC_SOURCES, [np.asarray(rows).astype(columns.meta.source_dtype) for rows in columns.sources])
    section(FILES, [columns.files])
    section(FILE_NAME_OFFSETS, [cumulative([np.fromiter(map(len, names), np.int64, len(names))])])
    section(FILE_NAMES, names)
    section(TERM_OFFSETS, [cumulative([p.term_lengths for p in columns.terms])])
    section(TERMS, [p.terms for p in columns.terms])
    section(TERM_DATA, [cumulative([p.data_lengths for p in columns.terms])])
    section(POSTINGS, [chunk for p in columns.terms for chunk in p.data])
    sink.write(b"\0" * (-sink.written % ALIGN))
    pages = sink.close_pages()
    start = sink.written
    sink.write(pages)
    table.append((PAGES, zlib.crc32(pages.tobytes()), start, sink.written - start))
    raw = b"".join(SECTION_ENTRY.pack(*entry) for entry in table)
    sink.write(raw)
    length = sink.written + SEGMENT_TRAILER.size
    sink.write(SEGMENT_TRAILER.pack(len(table), zlib.crc32(raw), length, SEGMENT_MAGIC))
    return length


# ---------------------------------------------------------------------------------------------
# Reading


class SegmentReader:
    """One segment of a mapped index file: `buf` is the whole file as uint8, the segment lies at
    [base, base + length). Raises IndexFormatError, naming `where`, for damage it finds."""

    def __init__(self, buf: np.ndarray, base: int, length: int, where: str, raw=None):
        self.where = where
        self._raw = raw if raw is not None else buf.tobytes()  # sliced to bytes for term comparisons
        self._base = base
        if length < SEGMENT_TRAILER.size or base + length > len(buf):
            raise self._error("lies outside the file")
        self.buf = buf[base : base + length]
        count, table_crc, recorded, magic = SEGMENT_TRAILER.unpack_from(self.buf, length - SEGMENT_TRAILER.size)
        table_at = length - SEGMENT_TRAILER.size - count * SECTION_ENTRY.size
        if magic != SEGMENT_MAGIC or recorded != length or table_at < 0:
            raise self._error("segment trailer damaged")
        raw = self.buf[table_at : length - SEGMENT_TRAILER.size].tobytes()
        if zlib.crc32(raw) != table_crc:
            raise self._error("segment section table checksum mismatch")
        self.sections: dict[int, tuple[int, int, int]] = {}
        for i in range(count):
            kind, crc, offset, size = SECTION_ENTRY.unpack_from(raw, i * SECTION_ENTRY.size)
            if offset + size > table_at:
                raise self._error(f"{SECTION_NAMES.get(kind, kind)} section lies outside the segment")
            self.sections[kind] = (offset, size, crc)
        missing = [name for kind, name in SECTION_NAMES.items() if kind not in self.sections]
        if missing:
            raise self._error(f"missing sections: {', '.join(missing)}")
        offset, size, crc = self.sections[PAGES]
        pages = self.buf[offset : offset + size]
        if zlib.crc32(pages) != crc or size != 4 * ((offset + PAGE - 1) // PAGE):
            raise self._error("page checksum table damaged")
        self._pages = pages.view("<u4")
        self._checked = bytearray(len(self._pages))  # 1: the page's checksum was verified
        self._checked_view = np.frombuffer(self._checked, dtype=bool)  # the same bytes, for many pages at once
        self._paged_end = self.paged_end = offset  # the pages cover every byte before the page table
        try:
            self.meta = SegmentMeta.from_json(self.section(SEGMENT_META).tobytes())
        except (ValueError, TypeError, KeyError):
            raise self._error("segment meta is not readable") from None
        self.doc_count = self.meta.documents
        self.term_count = self.meta.terms
        self._offsets = self.meta.offset_dtype
        # the postings and everything after them: a packed value near the section's end is read as
        # an 8-byte word, and the page table and trailer follow, so the word never leaves the map
        self._postings_at = self.sections[POSTINGS][0]
        self._postings_size = self.sections[POSTINGS][1]
        self._postings = self.buf[self._postings_at :]
        self.words = word_view(self._postings)
        self.postings_at = self._postings_at
        self.checked_terms: set[int] = set()  # terms whose whole data has been checked

    def _error(self, what: str) -> IndexFormatError:
        return IndexFormatError(f"{self.where}: {what} (damaged file); run 'indexer verify', then rebuild it")

    # -- pages --------------------------------------------------------------------------------

    def check(self, start: int, stop: int) -> None:
        """Verify the pages holding segment bytes [start, stop), once each."""
        first, last = start // PAGE, (max(stop, start + 1) - 1) // PAGE
        if stop <= start or (self._checked[first] and (first == last or self._checked_view[first : last + 1].all())):
            return
        for page in range(first, min(last + 1, len(self._pages))):
            if not self._checked[page]:
                if self._page_crc(page) != int(self._pages[page]):
                    names = self.sections_in_page(page)
                    what = (
                        f"the {names[0]} section" if len(names) == 1 else f"a page of the {', '.join(names)} sections"
                    )
                    raise self._error(f"checksum mismatch in {what}")
                self._checked[page] = 1

    def check_pages(self, pages: np.ndarray) -> None:
        """Verify these pages (segment page numbers), each once."""
        for page in pages[~self._checked_view[pages]].tolist() if len(pages) else ():
            self.check(page * PAGE, page * PAGE + 1)

    def _page_crc(self, page: int) -> int:
        return zlib.crc32(self.buf[page * PAGE : min((page + 1) * PAGE, self._paged_end)])

    def sections_in_page(self, page: int) -> list[str]:
        """The names of the sections with bytes in a page (padding belongs to the section before)."""
        spans = sorted((start, kind) for kind, (start, _, _) in self.sections.items() if kind != PAGES)
        ends = [start for start, _ in spans[1:]] + [self._paged_end]
        lo, hi = page * PAGE, (page + 1) * PAGE
        return [SECTION_NAMES[kind] for (start, kind), end in zip(spans, ends) if start < hi and end > lo]

    def damaged_sections(self) -> list[str]:
        """Every page's checksum tested: the names of the sections holding a damaged page."""
        damaged: list[str] = []
        for page in range(len(self._pages)):
            if self._page_crc(page) != int(self._pages[page]):
                damaged += [name for name in self.sections_in_page(page) if name not in damaged]
        return damaged

    def section(self, kind: int, check: bool = True) -> np.ndarray:
        offset, size, _ = self.sections[kind]
        if check:
            self.check(offset, offset + size)
        return self.buf[offset : offset + size]

    def _array(self, kind: int, dtype, count: int) -> np.ndarray:
        data = self.section(kind)
        if len(data) != count * np.dtype(dtype).itemsize:
            raise self._error(f"{SECTION_NAMES[kind]} section has the wrong size")
        return data.view(dtype)

    # -- documents ------------------------------------------------------------------------------

    @cached_property
    def doc_lengths(self) -> np.ndarray:
        return self._array(DOC_LENGTHS, "<u4", self.doc_count)

    @cached_property
    def _name_offsets(self) -> np.ndarray:
        offsets = self._array(DOC_NAME_OFFSETS, self._offsets, self.doc_count + 1)
        if self.doc_count and (offsets[-1] != self.sections[DOC_NAMES][1] or offsets[0] != 0):
            raise self._error("doc name offsets do not match the names")
        return offsets

    def doc_name(self, doc: int) -> str:
        a, b = self._name_offsets[doc : doc + 2].tolist()
        names = self.sections[DOC_NAMES][0]
        if not 0 <= a <= b:
            raise self._error("doc name offsets out of order")
        self.check(names + a, names + b)
        return self._raw[self._base + names + a : self._base + names + b].decode("utf-8", "replace")

    def names_of(self, docs: list[int]) -> list[str]:
        """The names of these documents, in order (a page of hits at once)."""
        if not docs:
            return []
        picked = np.asarray(docs, dtype=np.int64)
        starts, ends = self._name_offsets[picked].tolist(), self._name_offsets[picked + 1].tolist()
        names, at = self.sections[DOC_NAMES][0], self._base + self.sections[DOC_NAMES][0]
        out = []
        for a, b in zip(starts, ends):
            if not 0 <= a <= b:
                raise self._error("doc name offsets out of order")
            self.check(names + a, names + b)
            out.append(self._raw[at + a : at + b].decode("utf-8", "replace"))
        return out

    def doc_names(self) -> list[str]:
        raw = self.section(DOC_NAMES).tobytes()
        cuts = self._name_offsets.tolist()
        return [raw[a:b].decode("utf-8", "replace") for a, b in zip(cuts[:-1], cuts[1:])]

    @cached_property
    def sources(self) -> np.ndarray:
        return self._array(DOC_SOURCES, self.meta.source_dtype, self.doc_count)

    @cached_property
    def files(self) -> np.ndarray:
        return self._array(FILES, FILE, self.meta.files)

    @cached_property
    def file_names(self) -> list[str]:
        import os

        offsets = self._array(FILE_NAME_OFFSETS, "<u8" if self.meta.wide else "<u4", self.meta.files + 1)
        raw = self.section(FILE_NAMES).tobytes()
        cuts = offsets.tolist()
        return [os.fsdecode(raw[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]

    def doc_source(self, doc: int) -> tuple[str, int, int, int, str]:
        """(file path, byte offset, byte length, CRC-32 of the bytes, reader name) of a document."""
        file_no = int(np.searchsorted(self.files["first_doc"], doc, side="right")) - 1
        record = self.sources[doc]
        reader = self.meta.readers[int(self.files["reader"][file_no])]
        return self.file_names[file_no], int(record["offset"]), int(record["length"]), int(record["crc"]), reader

    # -- terms --------------------------------------------------------------------------------

    # The dictionary is checked page by page as lookups read it, never whole: open + first query
    # then reads a few pages, not megabytes. A lookup bisects an in-memory sample of every
    # TERM_SAMPLE-th term, built unchecked, then checks the pages of the one run it searches and
    # that the run's bounds (checked) do enclose the key, so a damaged sample can only fail loudly.

    def _offsets_array(self, kind: int, end: int, what: str) -> np.ndarray:
        offset, size, _ = self.sections[kind]
        if size != (self.term_count + 1) * np.dtype(self._offsets).itemsize:
            raise self._error(f"{SECTION_NAMES[kind]} section has the wrong size")
        self.check(offset + size - 16, offset + size)
        offsets = self.buf[offset : offset + size].view(self._offsets)
        if self.term_count and offsets[-1] != end:
            raise self._error(f"{what} do not match")
        return offsets

    @cached_property
    def _term_offsets(self) -> np.ndarray:
        return self._offsets_array(TERM_OFFSETS, self.sections[TERMS][1], "term offsets and terms")

    @cached_property
    def _term_data(self) -> np.ndarray:
        return self._offsets_array(TERM_DATA, self.sections[POSTINGS][1], "term data offsets and postings")

    def _term_cuts(self, lo: int, hi: int) -> list[int]:
        """Term offsets lo..hi (inclusive), their pages and the terms' bytes' pages checked."""
        size = np.dtype(self._offsets).itemsize
        at = self.sections[TERM_OFFSETS][0]
        self.check(at + lo * size, at + (hi + 1) * size)
        cuts = self._term_offsets[lo : hi + 1].tolist()
        if cuts != sorted(cuts) or cuts[0] < 0 or cuts[-1] > self.sections[TERMS][1]:
            raise self._error("term offsets out of order")
        terms = self.sections[TERMS][0]
        self.check(terms + cuts[0], terms + cuts[-1])
        return cuts

    @cached_property
    def term_offsets(self) -> np.ndarray:
        """Every term's start in the terms section (and the end), the whole table checked."""
        self.section(TERM_OFFSETS)
        return self._term_offsets

    @cached_property
    def term_data(self) -> np.ndarray:
        """Every term's data start in the postings section (and the end), the whole table checked."""
        self.section(TERM_DATA)
        return self._term_data

    @property
    def name_offsets(self) -> np.ndarray:
        """Every doc name's start in the names section (and the end), checked."""
        return self._name_offsets

    @cached_property
    def _term_samples(self) -> list[bytes]:
        offsets = self._term_offsets
        starts = offsets[:-1:TERM_SAMPLE].tolist()
        ends = offsets[1::TERM_SAMPLE].tolist()
        at, raw = self._base + self.sections[TERMS][0], self._raw
        return [raw[at + a : at + b] for a, b in zip(starts, ends)]

    def _first_at_least(self, key: bytes) -> tuple[int, bytes | None]:
        """(i, term i): the number of terms below `key` (byte order is code-point order) and the
        first term not below it (None past the last)."""
        run = max(0, bisect_left(self._term_samples, key) - 1)  # samples[run] < key <= samples[run + 1]
        lo = run * TERM_SAMPLE
        hi = min(lo + TERM_SAMPLE, self.term_count)  # the next run's first term, or the end
        cuts = self._term_cuts(lo, min(hi + 1, self.term_count))
        first = cuts[0]
        at = self._base + self.sections[TERMS][0]
        data = self._raw[at + first : at + cuts[-1]]  # the run's terms and the next run's first

        def term(i: int) -> bytes:
            return data[cuts[i] - first : cuts[i + 1] - first]

        if (lo > 0 and not term(0) < key) or (hi < self.term_count and term(hi - lo) < key):
            raise self._error("the term dictionary is out of order")
        a, b = 0, hi - lo
        while a < b:
            mid = (a + b) // 2
            if term(mid) < key:
                a = mid + 1
            else:
                b = mid
        return lo + a, term(a) if lo + a < self.term_count else None

    def term_id(self, term: bytes) -> int | None:
        """The number of `term` (UTF-8) in the sorted dictionary, or None."""
        i, found = self._first_at_least(term)
        return i if found == term else None

    def term_bytes(self, i: int) -> bytes:
        a, b = self._term_cuts(i, i + 1)
        at = self._base + self.sections[TERMS][0]
        return self._raw[at + a : at + b]

    def term(self, i: int) -> str:
        return self.term_bytes(i).decode("utf-8")

    def terms(self) -> list[str]:
        raw = self.section(TERMS).tobytes()
        cuts = self.term_offsets.tolist()
        return [raw[a:b].decode("utf-8") for a, b in zip(cuts[:-1], cuts[1:])]

    def term_range(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """Term numbers [a, b) of the terms t with lo <= t < hi (hi None: no upper end)."""
        return self._first_at_least(lo)[0], self.term_count if hi is None else self._first_at_least(hi)[0]

    def header(self, i: int) -> TermHeader:
        """Term i's header and skip table, its pages checked."""
        size = np.dtype(self._offsets).itemsize
        at = self.sections[TERM_DATA][0]
        self.check(at + i * size, at + (i + 2) * size)
        start, stop = self._term_data[i : i + 2].tolist()
        if not 0 <= start < stop <= self._postings_size:
            raise self._error(f"term data of {self.term(i)!r} out of range")
        self.check(self._postings_at + start, self._postings_at + min(stop, start + 16))
        header = read_header(self._postings, start)
        self.check(self._postings_at + start, self._postings_at + header.blocks_at)
        return header

    def term_end(self, i: int) -> int:
        return int(self._term_data[i + 1])  # checked by header(i), which comes first

    @property
    def postings_buffer(self) -> np.ndarray:
        """The postings section (and the bytes after it, see __init__); term data offsets count from its start."""
        return self._postings

    def check_postings(self, start: int, stop: int) -> None:
        self.check(self._postings_at + start, self._postings_at + stop)
