"""The index file (spec: docs/FORMAT.md): its sections, the writer and the mapped reader.

`write_index` decides what goes into each section and streams them through `IndexWriter`, which
writes a temporary file and renames it over the target when complete; `IndexReader` maps a file,
checks header and footer on open, and decodes only the postings a query touches. Integers are
little-endian; integer lists use the varints of indexer.store.codec.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.errors import IndexFormatError, IndexNotFoundError, UnsupportedVersionError
from indexer.store.codec import decode_varints, encode_varints, varint_sizes
from indexer.store.files import make_temp_file
from indexer.store.meta import IndexMeta

MAGIC = b"\x89IDX\r\n\x1a\n"  # high bit and CR/LF catch text-mode and 7-bit mangling, as in PNG
FORMAT_VERSION = 1
OLDEST_READABLE_VERSION = 1

# Section kinds, in file order. The footer lists (kind, crc32, offset, length) for each.
META, DOC_LENGTHS, DOC_NAMES, DOC_SOURCES, SOURCE_FILES, TERMS, TERM_INFO, DOCS, FREQS, POSITIONS = range(1, 11)
SECTION_NAMES = {
    META: "meta",
    DOC_LENGTHS: "doc lengths",
    DOC_NAMES: "doc names",
    DOC_SOURCES: "doc sources",
    SOURCE_FILES: "source files",
    TERMS: "terms",
    TERM_INFO: "term info",
    DOCS: "docs",
    FREQS: "freqs",
    POSITIONS: "positions",
}
HEADER = struct.Struct("<8sII")  # magic, format version, flags (0)
SECTION_ENTRY = struct.Struct("<IIQQ")  # kind, crc32, offset, length
TRAILER = struct.Struct("<IIQ8s")  # section count, crc32 of the section table, file length, magic
ALIGN = 8


# ---------------------------------------------------------------------------------------------
# Writing


class IndexWriter:
    """Writes sections in order to a temporary file beside `path`; `commit()` renames it over `path`.

    Use as a context manager: on any exception the temporary file is removed and `path` untouched.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        fd, tmp = make_temp_file(self.path.parent or Path("."), self.path.name)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._file.write(HEADER.pack(MAGIC, FORMAT_VERSION, 0))
        self._sections: list[tuple[int, int, int, int]] = []
        self._kind: int | None = None

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._file.closed:
            self._file.close()
        if exc_type is not None or self._kind is not None:
            self._tmp.unlink(missing_ok=True)

    def begin(self, kind: int) -> None:
        pad = -self._file.tell() % ALIGN
        self._file.write(b"\0" * pad)
        self._kind, self._start, self._crc = kind, self._file.tell(), 0

    def write(self, data) -> None:
        view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")
        self._crc = zlib.crc32(view, self._crc)
        self._file.write(view)

    def end(self) -> None:
        self._sections.append((self._kind, self._crc, self._start, self._file.tell() - self._start))
        self._kind = None

    def section(self, kind: int, *parts) -> None:
        self.begin(kind)
        for part in parts:
            self.write(part)
        self.end()

    def commit(self) -> None:
        table = b"".join(SECTION_ENTRY.pack(*s) for s in self._sections)
        self._file.write(table)
        length = self._file.tell() + TRAILER.size
        self._file.write(TRAILER.pack(len(self._sections), zlib.crc32(table), length, MAGIC))
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


@dataclass(frozen=True)
class DocTable:
    """The documents of one chunk, in doc id order: lengths (u32), UTF-8 names (varint lengths and a
    blob) and sources (file number, byte offset, byte length per document)."""

    lengths: np.ndarray
    name_lengths: np.ndarray
    names: np.ndarray
    sources: np.ndarray


@dataclass(frozen=True)
class TermTable:
    """The terms of one term range, in term order: varint name lengths, the UTF-8 blob, and the
    varint-encoded info (df and the byte lengths in the docs, freqs and positions streams)."""

    term_lengths: np.ndarray
    terms: np.ndarray
    info: np.ndarray


def write_index(
    path: Path,
    meta: IndexMeta,
    docs: list[DocTable],
    source_files: list[str],
    terms: list[TermTable],
    streams: dict[str, list[str]],
) -> None:
    """Write an index file at `path` (atomically): the doc tables in chunk order, the source files by
    number, the term tables in term order, and the encoded postings streams ("docs", "freqs",
    "positions") copied from the files listed for each, in the same term order."""
    with IndexWriter(path) as w:
        w.section(META, meta.to_json())
        w.section(DOC_LENGTHS, *(d.lengths for d in docs))
        w.section(DOC_NAMES, *(encode_varints(d.name_lengths) for d in docs), *(d.names for d in docs))
        w.section(DOC_SOURCES, *(encode_varints(d.sources) for d in docs))
        paths = [os.fsencode(p) for p in source_files]
        w.section(SOURCE_FILES, encode_varints(np.fromiter(map(len, paths), np.int64, len(paths))), *paths)
        w.section(TERMS, *(t.term_lengths for t in terms), *(t.terms for t in terms))
        w.section(TERM_INFO, *(t.info for t in terms))
        for kind, name in ((DOCS, "docs"), (FREQS, "freqs"), (POSITIONS, "positions")):
            w.begin(kind)
            for stream in streams[name]:
                _copy_into(w, stream)
            w.end()
        w.commit()


def _copy_into(writer: IndexWriter, path: str, block: int = 8 << 20) -> None:
    with open(path, "rb") as f:
        while data := f.read(block):
            writer.write(data)


# ---------------------------------------------------------------------------------------------
# Reading


def is_index_file(path: Path) -> bool:
    """Whether `path` starts with this format's magic (any version): safe to replace with an index."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class Section:
    kind: int
    crc: int
    offset: int
    length: int

    @property
    def name(self) -> str:
        return SECTION_NAMES.get(self.kind, f"section {self.kind}")


class Postings:
    """One term's postings: `docs` (ascending doc ids) and `tfs`; positions decoded on demand."""

    def __init__(self, docs: np.ndarray, tfs: np.ndarray, positions_buf: np.ndarray | None):
        self.docs = docs
        self.tfs = tfs
        self._positions_buf = positions_buf

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, positions): positions of docs[i] are positions[offsets[i]:offsets[i+1]]."""
        if self._positions_buf is None:
            raise IndexFormatError(
                "this index was built with --no-positions; rebuild it with positions for phrase queries"
            )
        offsets = np.zeros(len(self.tfs) + 1, dtype=np.int64)
        np.cumsum(self.tfs, out=offsets[1:])
        gaps = decode_varints(self._positions_buf, int(offsets[-1]))
        absolute = np.cumsum(gaps)
        # gaps restart at each posting: subtract the running sum reached before the posting began
        base = np.concatenate(([0], absolute[offsets[1:-1] - 1]))
        return offsets, absolute - np.repeat(base, self.tfs)


class IndexReader:
    """A memory-mapped index file. Cheap to open: sections are decoded on first use.

    Raises IndexFormatError (or UnsupportedVersionError) when the file is not a readable index.
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
            raise self._error("not an index file (bad magic)")
        if not OLDEST_READABLE_VERSION <= version <= FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{self.path}: index format version {version} is not supported (this indexer reads versions "
                f"{OLDEST_READABLE_VERSION}-{FORMAT_VERSION}); rebuild it with this version or upgrade indexer"
            )
        self.format_version = version
        self._verified: set[int] = set()
        count, table_crc, length, tail_magic = TRAILER.unpack_from(self._map, size - TRAILER.size)
        if tail_magic != MAGIC or length != size:
            raise self._error(f"truncated or damaged file (footer missing; {size} bytes on disk)")
        table_start = size - TRAILER.size - count * SECTION_ENTRY.size
        table = self._map[table_start : size - TRAILER.size] if table_start >= HEADER.size else b""
        if table_start < HEADER.size or zlib.crc32(table) != table_crc:
            raise self._error("section table checksum mismatch (damaged file)")
        self.sections = {}
        for i in range(count):
            section = Section(*SECTION_ENTRY.unpack_from(table, i * SECTION_ENTRY.size))
            if section.offset + section.length > table_start:
                raise self._error(f"{section.name} section lies outside the file (damaged file)")
            self.sections[section.kind] = section
        missing = [SECTION_NAMES[k] for k in SECTION_NAMES if k not in self.sections]
        if missing:
            raise self._error(f"missing sections: {', '.join(missing)} (damaged file)")
        meta = self._bytes(META)
        if zlib.crc32(meta) != self.sections[META].crc:
            raise self._error("meta section checksum mismatch (damaged file)")
        try:
            self.meta = IndexMeta.from_json(bytes(meta))
        except (ValueError, KeyError, TypeError):
            raise self._error("meta section is not readable (damaged file)") from None
        self.doc_count: int = self.meta.documents
        self.term_count: int = self.meta.terms
        self.has_positions: bool = self.meta.positions

    def _error(self, what: str) -> IndexFormatError:
        return IndexFormatError(f"{self.path}: {what}; rebuild it with 'indexer build'")

    def close(self) -> None:
        self._buf = None
        self.__dict__.pop("doc_lengths", None)
        try:
            self._map.close()
        except BufferError:  # numpy views still alive: the map closes when they go
            pass

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bytes(self, kind: int) -> np.ndarray:
        s = self.sections[kind]
        return self._buf[s.offset : s.offset + s.length]

    def _checked(self, kind: int) -> np.ndarray:
        """A small section's bytes, its checksum verified on first use: damage in the dictionary or
        the document table is refused instead of giving wrong answers. (The big postings sections
        are bounds-checked as they are decoded; `verify` checks their checksums.)"""
        data = self._bytes(kind)
        if kind not in self._verified:
            if zlib.crc32(data) != self.sections[kind].crc:
                raise self._error(f"{SECTION_NAMES[kind]} section checksum mismatch (damaged file)")
            self._verified.add(kind)
        return data

    def _varints(self, kind: int, count: int) -> np.ndarray:
        try:
            return decode_varints(self._checked(kind), count)
        except IndexFormatError as err:
            raise self._error(f"{SECTION_NAMES[kind]} section: {err} (damaged file)") from None

    def _string_table(self, kind: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, blob) for a section of `count` varint lengths followed by a UTF-8 blob."""
        raw = self._checked(kind)
        lengths = self._varints(kind, count)
        head = int(varint_sizes(lengths).sum())
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if head + offsets[-1] > len(raw):
            raise self._error(f"{SECTION_NAMES[kind]} section is shorter than its lengths say (damaged file)")
        return offsets, raw[head:]

    # -- documents ------------------------------------------------------------------------------

    @cached_property
    def doc_lengths(self) -> np.ndarray:
        lengths = self._checked(DOC_LENGTHS).view(np.uint32)
        if len(lengths) != self.doc_count:
            raise self._error("doc lengths section has the wrong size (damaged file)")
        return lengths

    @cached_property
    def _doc_names(self) -> tuple[np.ndarray, np.ndarray]:
        return self._string_table(DOC_NAMES, self.doc_count)

    def doc_name(self, doc: int) -> str:
        """The external id of doc `doc` (its path or the id field of its record)."""
        offsets, blob = self._doc_names
        return bytes(blob[offsets[doc] : offsets[doc + 1]]).decode("utf-8", "replace")

    def first_doc_name_with_whitespace(self) -> str | None:
        """The first doc id that holds whitespace (it cannot be a TREC run column), or None."""
        offsets, blob = self._doc_names
        if (blob < 0x80).all():  # ASCII: one vectorized scan of the names' bytes
            found = np.flatnonzero(np.isin(blob, np.frombuffer(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f", np.uint8)))
            at = int(found[0]) if len(found) else None
        else:
            text = bytes(blob).decode("utf-8", "replace")
            match = re.search(r"\s", text)
            at = len(text[: match.start()].encode("utf-8")) if match else None
        return None if at is None else self.doc_name(int(np.searchsorted(offsets, at, side="right")) - 1)

    def doc_names(self) -> list[str]:
        offsets, blob = self._doc_names
        raw = bytes(blob)
        return [raw[a:b].decode("utf-8", "replace") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    @cached_property
    def _sources(self) -> tuple[np.ndarray, list[str]]:
        triples = self._varints(DOC_SOURCES, 3 * self.doc_count).reshape(-1, 3)
        count = self.meta.source_files
        offsets, blob = self._string_table(SOURCE_FILES, count)
        raw = bytes(blob)
        paths = [os.fsdecode(raw[a:b]) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        return triples, paths

    def doc_source(self, doc: int) -> tuple[str, int, int]:
        """(file path, byte offset, byte length) where doc `doc` was read from."""
        triples, paths = self._sources
        file_no, offset, length = (int(x) for x in triples[doc])
        return paths[file_no], offset, length

    # -- terms ----------------------------------------------------------------------------------

    @cached_property
    def _terms(self) -> tuple[np.ndarray, bytes]:
        offsets, blob = self._string_table(TERMS, self.term_count)
        return offsets, blob

    @cached_property
    def _term_info(self) -> dict[str, np.ndarray]:
        """Per term: df and start offsets into the docs, freqs and positions streams (T+1 each)."""
        info = self._varints(TERM_INFO, 4 * self.term_count).reshape(-1, 4)
        starts = np.zeros((self.term_count + 1, 3), dtype=np.int64)
        np.cumsum(info[:, 1:], axis=0, out=starts[1:])
        for col, kind in enumerate((DOCS, FREQS, POSITIONS)):
            if starts[-1, col] != self.sections[kind].length:
                raise self._error("term info does not match the postings sections (damaged file)")
        return {"df": info[:, 0], "docs": starts[:, 0], "freqs": starts[:, 1], "positions": starts[:, 2]}

    def term(self, i: int) -> str:
        offsets, blob = self._terms
        return bytes(blob[offsets[i] : offsets[i + 1]]).decode("utf-8")

    def terms(self) -> list[str]:
        offsets, blob = self._terms
        raw = bytes(blob)
        return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    @cached_property
    def _term_file_offsets(self) -> list[int]:
        """Where each term's bytes start in the file (T+1 entries), for the binary search."""
        offsets, _ = self._terms
        start = self.sections[TERMS].offset + int(varint_sizes(np.diff(offsets)).sum())
        return (offsets + start).tolist()

    def term_id(self, term: str) -> int | None:
        """The index of `term` in the sorted dictionary, or None: a binary search comparing the
        UTF-8 bytes in the mapped file (byte order is code-point order), ~20 probes."""
        key = term.encode("utf-8")
        at, data = self._term_file_offsets, self._map
        lo, hi = 0, self.term_count
        while lo < hi:
            mid = (lo + hi) // 2
            if data[at[mid] : at[mid + 1]] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < self.term_count and data[at[lo] : at[lo + 1]] == key else None

    def postings(self, term: str) -> Postings | None:
        """The postings of an (analyzed) term, or None when the index does not hold it."""
        i = self.term_id(term)
        return None if i is None else self.postings_at(i)

    def postings_at(self, i: int) -> Postings:
        info = self._term_info
        df = int(info["df"][i])
        docs_buf = self._bytes(DOCS)[info["docs"][i] : info["docs"][i + 1]]
        freqs_buf = self._bytes(FREQS)[info["freqs"][i] : info["freqs"][i + 1]]
        positions_buf = (
            self._bytes(POSITIONS)[info["positions"][i] : info["positions"][i + 1]] if self.has_positions else None
        )
        try:
            flagged = decode_varints(docs_buf, df)
            docs = np.cumsum(flagged >> 1)
            tfs = np.ones(df, dtype=np.int64)
            several = np.flatnonzero((flagged & 1) == 0)
            tfs[several] = decode_varints(freqs_buf, len(several))
        except IndexFormatError as err:
            raise self._error(f"postings of term {self.term(i)!r}: {err} (damaged file)") from None
        if df and (docs[-1] >= self.doc_count or tfs.min() < 1):
            raise self._error(f"postings of term {self.term(i)!r} are out of range (damaged file)")
        return Postings(docs, tfs, positions_buf)

    # -- checking -------------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Check every section's checksum; returns the names of the damaged sections (empty: all good)."""
        return [s.name for s in self.sections.values() if zlib.crc32(self._bytes(s.kind)) != s.crc]
