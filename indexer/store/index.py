"""The index file (spec: docs/FORMAT.md): a header, immutable segments, and a commit record.

The commit record at the end lists the segments, the documents deleted from each (and how many
postings of each term those documents held, so that df excludes them exactly), and the index-wide
settings. An index is never changed in place: `IndexWriter` writes a new file beside it (new
segments written, kept ones copied byte for byte) and renames it over the old one, so a reader
that has the old file open keeps a consistent view, and a crash leaves the old file or the new.
`IndexReader` maps a file and reads it as one index over all its segments.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import zlib
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.errors import IndexFormatError, IndexNotFoundError, QueryError, UnsupportedVersionError
from indexer.store.codec import block_lengths, decode_blocks, decode_positions
from indexer.store.meta import IndexMeta, SegmentEntry
from indexer.store.segment import ALIGN, SegmentColumns, SegmentReader, write_segment

MAGIC = b"\x89IDX\r\n\x1a\n"  # high bit and CR/LF catch text-mode and 7-bit mangling, as in PNG
FORMAT_VERSION = 2
OLDEST_READABLE_VERSION = 2
HEADER = struct.Struct("<8sII")  # magic, format version, flags (0)
ENTRY = struct.Struct("<IIIIQQ")  # kind, segment number, crc32, 0, offset, length
TRAILER = struct.Struct("<IIQ8s")  # entry count, crc32 of the entry table, file length, magic
COMMIT_META, SEGMENT, DELETED, DELETED_DF, DELETED_FILES = 1, 2, 3, 4, 5
RECORD_NAMES = {
    COMMIT_META: "commit",
    SEGMENT: "segment",
    DELETED: "deleted documents",
    DELETED_DF: "deleted df",
    DELETED_FILES: "deleted files",
}


@dataclass(frozen=True)
class Deletions:
    """What of one segment is deleted: documents (sorted local ids); for each term they held, how
    many of its postings are theirs (sorted term numbers and counts); and files (sorted file
    numbers) whose record is out of date (the file changed or went; its documents are deleted)."""

    docs: np.ndarray
    terms: np.ndarray
    counts: np.ndarray
    files: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<u4"))

    @classmethod
    def none(cls) -> Deletions:
        empty = np.zeros(0, dtype="<u4")
        return cls(empty, empty, empty, empty)


# ---------------------------------------------------------------------------------------------
# Writing


class IndexWriter:
    """Writes a new index file beside `path`: `add_segment` or `copy_segment` for each segment in
    order, then `commit`, which renames it over `path`. A context manager: on any exception the
    temporary file is removed and `path` is untouched."""

    def __init__(self, path: Path):
        self.path = Path(path)
        from indexer.store.files import make_temp_file  # writing only: searches need not import it

        fd, tmp = make_temp_file(self.path.parent or Path("."), self.path.name)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._file.write(HEADER.pack(MAGIC, FORMAT_VERSION, 0))
        self._segments: list[tuple[int, int]] = []
        self._done = False

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._file.closed:
            self._file.close()
        if not self._done:
            self._tmp.unlink(missing_ok=True)

    def _align(self) -> int:
        self._file.write(b"\0" * (-self._file.tell() % ALIGN))
        return self._file.tell()

    def add_segment(self, columns: SegmentColumns) -> tuple[int, int]:
        """Write a new segment; returns (offset, length)."""
        offset = self._align()
        length = write_segment(self._file, columns)
        self._segments.append((offset, length))
        return offset, length

    def copy_segment(self, segment: SegmentReader) -> tuple[int, int]:
        """Copy a segment of an open index, byte for byte; returns (offset, length)."""
        offset = self._align()
        data = segment.buf
        for start in range(0, len(data), 8 << 20):
            self._file.write(data[start : start + (8 << 20)])
        self._segments.append((offset, len(data)))
        return offset, len(data)

    def commit(self, meta: IndexMeta, deletions: list[Deletions]) -> None:
        """Write the commit record (meta's segments are placed where they were written) and move the
        file over `path`, keeping the permission bits of the file it replaces."""
        if len(meta.segments) != len(self._segments) or len(deletions) != len(self._segments):
            raise ValueError("one segment entry and one Deletions per written segment")
        segments = tuple(
            replace(entry, offset=offset, length=length, bytes=length)
            for entry, (offset, length) in zip(meta.segments, self._segments)
        )
        entries = [(SEGMENT, n, 0, offset, length) for n, (offset, length) in enumerate(self._segments)]
        entries.append(self._record(COMMIT_META, 0, replace(meta, segments=segments).to_json()))
        for n, gone in enumerate(deletions):
            if len(gone.docs):
                entries.append(self._record(DELETED, n, np.asarray(gone.docs, "<u4").tobytes()))
                pairs = np.stack([np.asarray(gone.terms, "<u4"), np.asarray(gone.counts, "<u4")], axis=1)
                entries.append(self._record(DELETED_DF, n, pairs.tobytes()))
            if len(gone.files):
                entries.append(self._record(DELETED_FILES, n, np.asarray(gone.files, "<u4").tobytes()))
        table = b"".join(ENTRY.pack(kind, seg, crc, 0, offset, length) for kind, seg, crc, offset, length in entries)
        self._file.write(table)
        length = self._file.tell() + TRAILER.size
        self._file.write(TRAILER.pack(len(entries), zlib.crc32(table), length, MAGIC))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        try:  # the file it replaces keeps its permission bits
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:  # a new index is as readable as any new file (mkstemp made it 0600)
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(self._tmp, mode)
        os.replace(self._tmp, self.path)
        self._done = True

    def _record(self, kind: int, segment: int, data: bytes) -> tuple[int, int, int, int, int]:
        offset = self._align()
        self._file.write(data)
        return kind, segment, zlib.crc32(data), offset, len(data)


def is_index_file(path: Path) -> bool:
    """Whether `path` starts with this format's magic (any version): safe to replace with an index."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Reading


class Postings:
    """One term's postings in the whole index: `docs` (ascending global doc ids, deleted documents
    left out) and `tfs`; positions decoded on demand."""

    def __init__(self, docs: np.ndarray, tfs: np.ndarray, positions):
        self.docs = docs
        self.tfs = tfs
        self._positions = positions

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, positions): positions of docs[i] are positions[offsets[i]:offsets[i+1]]."""
        return self._positions()


class IndexReader:
    """A memory-mapped index file. Cheap to open: the commit record and each segment's table are
    read; everything else is read, and checked, when first used.

    Global doc ids number the documents of all segments in order, deleted ones included (they are
    never returned). Raises IndexFormatError (UnsupportedVersionError, IndexNotFoundError) when the
    file is not a readable index.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < HEADER.size + TRAILER.size:
                    raise self._error("too small to be an index (not an index, or truncated)")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except IsADirectoryError:
            raise IndexFormatError(f"{self.path}: is a folder, not an index file") from None
        except FileNotFoundError:
            raise IndexNotFoundError(f"{self.path}: no such index file; build one with 'indexer build'") from None
        except OSError as err:
            raise IndexFormatError(f"{self.path}: cannot read the index ({err.strerror or err})") from None
        self._buf = np.frombuffer(self._map, dtype=np.uint8)
        magic, version, _flags = HEADER.unpack_from(self._map, 0)
        if magic != MAGIC:
            raise IndexFormatError(
                f"{self.path}: not an index file (it does not start as one); give an index 'indexer build' wrote"
            )
        if not OLDEST_READABLE_VERSION <= version <= FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{self.path}: index format version {version} is not supported (this indexer reads versions "
                f"{OLDEST_READABLE_VERSION}-{FORMAT_VERSION}); rebuild it with 'indexer build'"
            )
        self.format_version = version
        self._read_commit(size)

    def _read_commit(self, size: int) -> None:
        count, table_crc, length, tail_magic = TRAILER.unpack_from(self._map, size - TRAILER.size)
        if tail_magic != MAGIC or length != size:
            raise self._error(f"truncated or damaged file (footer missing; {size} bytes on disk)")
        table_at = size - TRAILER.size - count * ENTRY.size
        table = self._map[table_at : size - TRAILER.size] if table_at >= HEADER.size else b""
        if table_at < HEADER.size or zlib.crc32(table) != table_crc:
            raise self._error("commit table checksum mismatch")
        records: dict[tuple[int, int], tuple[int, int]] = {}
        for i in range(count):
            kind, segment, crc, _, offset, length = ENTRY.unpack_from(table, i * ENTRY.size)
            if offset + length > table_at:
                raise self._error(f"{RECORD_NAMES.get(kind, kind)} record lies outside the file")
            if kind != SEGMENT and zlib.crc32(self._map[offset : offset + length]) != crc:
                raise self._error(f"{RECORD_NAMES.get(kind, kind)} record checksum mismatch")
            records[(kind, segment)] = (offset, length)
        if (COMMIT_META, 0) not in records:
            raise self._error("commit record missing")
        offset, length = records[(COMMIT_META, 0)]
        try:
            self.meta = IndexMeta.from_json(self._map[offset : offset + length])
        except (ValueError, KeyError, TypeError):
            raise self._error("commit record is not readable") from None
        self.segments: list[SegmentReader] = []
        self.deletions: list[Deletions] = []
        for n, entry in enumerate(self.meta.segments):
            if records.get((SEGMENT, n)) != (entry.offset, entry.length):
                raise self._error(f"segment {n} is not where the commit record says")
            where = f"{self.path} segment {n}"
            self.segments.append(SegmentReader(self._buf, entry.offset, entry.length, where, self._map))
            self.deletions.append(self._deletions(records, n, entry))
        self.bases = np.concatenate(([0], np.cumsum([s.doc_count for s in self.segments]))).astype(np.int64)
        self._bases = self.bases.tolist()
        self.doc_count: int = self.meta.documents
        self.has_positions: bool = self.meta.positions

    def _deletions(self, records, n: int, entry: SegmentEntry) -> Deletions:
        def array(kind: int) -> np.ndarray:
            offset, length = records.get((kind, n), (0, 0))
            return self._buf[offset : offset + length].view("<u4")

        docs, pairs, files = array(DELETED), array(DELETED_DF).reshape(-1, 2), array(DELETED_FILES)
        if len(docs) != entry.deleted or (len(docs) and docs.max() >= self.segments[n].doc_count):
            raise self._error(f"deleted documents of segment {n} do not match the commit record")
        if len(files) and files.max() >= self.segments[n].meta.files:
            raise self._error(f"deleted files of segment {n} do not match its files")
        return Deletions(docs, pairs[:, 0], pairs[:, 1], files)

    def _error(self, what: str) -> IndexFormatError:
        return IndexFormatError(f"{self.path}: {what} (damaged file); run 'indexer verify', then rebuild it")

    def close(self) -> None:
        self._buf = None
        self.segments = []
        for name in ("doc_lengths",):
            self.__dict__.pop(name, None)
        try:
            self._map.close()
        except BufferError:  # numpy views still alive: the map closes when they go
            pass

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- documents ------------------------------------------------------------------------------

    def locate(self, doc: int) -> tuple[int, int]:
        """(segment number, local doc id) of a global doc id."""
        if len(self.segments) == 1:
            return 0, doc
        segment = bisect_right(self._bases, doc) - 1
        return segment, doc - self._bases[segment]

    def is_deleted(self, doc: int) -> bool:
        segment, local = self.locate(doc)
        gone = self.deletions[segment].docs
        at = int(np.searchsorted(gone, local))
        return at < len(gone) and int(gone[at]) == local

    def live_docs(self) -> np.ndarray:
        """Global ids of every live document, ascending."""
        parts = []
        for n, segment in enumerate(self.segments):
            local = np.arange(segment.doc_count, dtype=np.int64)
            if len(self.deletions[n].docs):
                local = np.setdiff1d(local, self.deletions[n].docs.astype(np.int64), assume_unique=True)
            parts.append(local + self.bases[n])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    @cached_property
    def doc_lengths(self) -> np.ndarray:
        """Lengths of all documents by global id (deleted ones included)."""
        return np.concatenate([s.doc_lengths for s in self.segments]) if self.segments else np.zeros(0, "<u4")

    def doc_name(self, doc: int) -> str:
        """The external id of a document (its path or the id field of its record)."""
        segment, local = self.locate(doc)
        return self.segments[segment].doc_name(local)

    def names_of(self, docs: list[int]) -> list[str]:
        """The external ids of these documents (global ids), in order."""
        if len(self.segments) == 1:
            return self.segments[0].names_of(docs)
        return [self.doc_name(d) for d in docs]

    def doc_names(self) -> list[str]:
        """The external ids of the live documents, in global doc id order."""
        return [self.doc_name(d) for d in self.live_docs().tolist()] if self.meta.segments else []

    def doc_source(self, doc: int) -> tuple[str, int, int, int, str]:
        """(file path, byte offset, byte length, CRC-32, reader name) where a document was read."""
        segment, local = self.locate(doc)
        return self.segments[segment].doc_source(local)

    def first_doc_name_with_whitespace(self) -> str | None:
        """The first live doc id that holds whitespace (it cannot be a TREC run column), or None."""
        for name in self.doc_names():
            if any(c.isspace() for c in name):
                return name
        return None

    # -- terms ----------------------------------------------------------------------------------

    @cached_property
    def _all_terms(self) -> list[str]:
        if len(self.segments) == 1:
            return self.segments[0].terms()
        return sorted(set().union(*(s.terms() for s in self.segments)), key=lambda t: t.encode("utf-8"))

    @property
    def term_count(self) -> int:
        """Distinct terms in all segments (deleted documents' terms included until an optimize)."""
        return self.segments[0].term_count if len(self.segments) == 1 else len(self._all_terms)

    def terms(self) -> list[str]:
        return list(self._all_terms)

    def term(self, i: int) -> str:
        return self._all_terms[i]

    def postings(self, term: str) -> Postings | None:
        """A term's postings over every segment, deleted documents left out; None when no live
        document holds it. Decodes the whole list (for inspection and export, not for ranking)."""
        key = term.encode("utf-8")
        found = []
        for n, segment in enumerate(self.segments):
            i = segment.term_id(key)
            if i is not None:
                found.append((n, segment, i))
        if not found:
            return None
        docs, tfs, blocks = [], [], []
        for n, segment, i in found:
            d, t, where = _decode_all(segment, i)
            keep = _live_mask(d, self.deletions[n].docs)
            docs.append(d[keep] + self.bases[n])
            tfs.append(t[keep])
            blocks.append((segment, where, t, keep))
        docs_all, tfs_all = np.concatenate(docs), np.concatenate(tfs)
        if not len(docs_all):
            return None
        if not self.has_positions:
            return Postings(docs_all, tfs_all, self._no_positions)

        def positions() -> tuple[np.ndarray, np.ndarray]:
            flat = []
            for segment, (at, counts), t, keep in blocks:
                starts, pos = decode_positions(segment.postings_buffer, segment.words, at, counts, t)
                flat += [pos[starts[j] : starts[j + 1]] for j in np.flatnonzero(keep).tolist()]
            lengths = np.array([len(p) for p in flat], dtype=np.int64)
            offsets = np.concatenate(([0], np.cumsum(lengths)))
            return offsets, np.concatenate(flat) if flat else np.zeros(0, np.int64)

        return Postings(docs_all, tfs_all, positions)

    def _no_positions(self):
        raise QueryError(
            f"{self.path.name} was built with --no-positions, so it cannot match phrases; "
            "search the words without quotes, or rebuild the index with positions"
        )

    def deleted_df(self, segment: int, term_id: int) -> int:
        """Postings of term `term_id` of `segment` that belong to deleted documents."""
        gone = self.deletions[segment]
        at = int(np.searchsorted(gone.terms, term_id))
        return int(gone.counts[at]) if at < len(gone.terms) and int(gone.terms[at]) == term_id else 0

    # -- checking -------------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Check every page of every segment; the names of the damaged sections (empty: all good)."""
        damaged = []
        for n, segment in enumerate(self.segments):
            damaged += [f"segment {n} {name}" for name in segment.damaged_sections()]
        return damaged


def _decode_all(segment: SegmentReader, i: int):
    """Every posting of term i of a segment: (docs, tfs, (positions offsets, block counts))."""
    header = segment.header(i)
    offsets, counts = header.block_offsets(), header.block_counts()
    buf = segment.postings_buffer
    segment.check_postings(header.start, segment.term_end(i))
    docs, tfs = decode_blocks(buf, segment.words, offsets, counts, header.block_previous())
    if header.skips is None:
        at = offsets + block_lengths(buf, offsets, counts)
    else:
        at = header.positions_offsets()
    return docs, tfs, (at, counts)


def _live_mask(docs: np.ndarray, deleted: np.ndarray) -> np.ndarray:
    if not len(deleted):
        return np.ones(len(docs), dtype=bool)
    return ~np.isin(docs, deleted.astype(np.int64))
