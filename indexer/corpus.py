"""Corpus: find the documents and plan chunks of work; read the documents of one chunk.

Planning runs in the parent and only stats files (and peeks at the first bytes of a large file of
unknown format): a chunk is a list of pieces (a file, or a byte range of a large JSONL or TREC file)
of about `chunk_size` bytes. Reading runs in the workers, which open their own pieces, so document
text never crosses a process boundary.

Formats: text (one document per file), JSONL (one JSON object per line) and TREC SGML
(`<DOC><DOCNO>id</DOCNO>...</DOC>` records), each optionally gzip-compressed (`.gz`). A byte range
[start, end) owns the records whose first byte (a JSONL line, a TREC `<DOC>` tag) lies in it, so
ranges can be cut anywhere. Gzip files cannot be seeked cheaply and are read as one piece.

Every document keeps its source: file, byte offset and byte length of the record (a text file:
0 and its size). For a `.gz` file both count bytes of the *uncompressed* stream; `read_source`
reads them back either way.
"""

from __future__ import annotations

import codecs
import gzip
import html
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO

from indexer.errors import CorpusError

FORMATS = ("auto", "text", "jsonl", "trec")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TREC_SUFFIXES = (".trec", ".sgml")
GZIP_SUFFIX = ".gz"
ID_FIELDS = ("id", "_id", "docid")
TEXT_FIELDS = ("title", "text", "contents")
BOM = codecs.BOM_UTF8
SNIFF_BYTES = 4096  # bytes peeked at to tell a TREC file from a text file
READ_BLOCK = 1 << 20  # bytes read at a time when scanning for a record boundary
EXAMPLES_PER_REASON = 3

_TREC_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<DOC>", re.IGNORECASE)  # optional UTF-8 BOM
_DOC_OPEN = re.compile(rb"<DOC>", re.IGNORECASE)
_DOC_CLOSE = re.compile(rb"</DOC>", re.IGNORECASE)
_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_OPEN_TAIL = len(b"<DOC>") - 1  # bytes kept between blocks so that a tag split by a read is found
_CLOSE_TAIL = len(b"</DOC>")


@dataclass(frozen=True)
class ReadOptions:
    """How files are chosen and turned into documents (picklable plain data, sent to workers).

    include/exclude: fnmatch patterns (`*` also matches `/`) tried against the path relative to
    the corpus argument and against the bare file name. strict: any skipped or repaired input is
    an error instead of a warning.
    """

    format: str = "auto"
    id_fields: tuple[str, ...] = ID_FIELDS
    text_fields: tuple[str, ...] = TEXT_FIELDS
    encoding: str = "utf-8"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    strict: bool = False


@dataclass(frozen=True)
class Piece:
    """A whole file, or the records of a file whose first byte lies in [start, end)."""

    path: str  # as given or found; os.fsdecode'd (undecodable bytes as surrogates)
    file_no: int  # index into the plan's file list
    name: str  # document id for a text file, the file's display name for a record file
    format: str  # "text", "jsonl", "trec", or "auto": text unless the content starts with <DOC>
    start: int = 0
    end: int = -1  # -1: to the end of the file


@dataclass(frozen=True)
class Chunk:
    """A unit of work: a few pieces of about chunk_size bytes together. Doc ids follow chunk order."""

    number: int
    pieces: tuple[Piece, ...]
    size: int


@dataclass(frozen=True)
class CorpusPlan:
    chunks: list[Chunk]
    files: list[str]  # absolute paths by file_no, for re-reading documents later
    total_bytes: int
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> paths, found while planning


@dataclass
class Document:
    name: str
    text: str
    file_no: int
    offset: int  # of the record in the file (uncompressed stream for .gz)
    length: int  # bytes of the record (a JSONL line without its line break)


def parse_size(text: str) -> int:
    """`4MB`, `512KB`, `1.5GB`, `1000` -> bytes (powers of 1024). Raises ValueError."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    for unit, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if s.endswith(unit):
            s, scale = s[:-1], factor
            break
    value = float(s)
    if value <= 0:
        raise ValueError(text)
    return max(1, int(value * scale))


def display_path(path: str | os.PathLike) -> str:
    """A path for messages and document ids: bytes that are not UTF-8 shown as `\\xff` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# Planning (in the parent)


def _is_gzip(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(GZIP_SUFFIX)


def _detect_format(name: str, requested: str) -> str:
    """The format of a file named `name`: as requested, else by extension (`.gz` looked through),
    else "auto" (decided from the first bytes by whoever reads them first)."""
    if requested != "auto":
        return requested
    name = name.lower().removesuffix(GZIP_SUFFIX)
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(TREC_SUFFIXES):
        return "trec"
    return "auto"


def _looks_trec(head: bytes) -> bool:
    return _TREC_START.match(head) is not None


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatchcase(rel, p) or fnmatchcase(name, p) for p in patterns)


def _selected(rel: str, options: ReadOptions) -> bool:
    if options.include and not _matches(rel, options.include):
        return False
    return not _matches(rel, options.exclude)


def _walk(root: Path, options: ReadOptions, skipped: dict[str, list[str]]) -> Iterator[tuple[Path, str]]:
    """(path, path relative to root in POSIX form) of the files below root, in a stable sorted
    order. Hidden files and folders are skipped, and so are folders matching an exclude pattern.

    Symlinked files are followed, symlinked folders are not (so a symlink loop cannot trap us);
    a folder that cannot be listed is recorded in `skipped` as unreadable."""
    folder_patterns = tuple(p.rstrip("/") for p in options.exclude)

    def unlistable(err: OSError) -> None:
        where = display_path(err.filename or root)
        skipped.setdefault("unreadable", []).append(f"{where} ({err.strerror or err})")

    for folder, dirs, files in os.walk(root, onerror=unlistable):
        prefix = Path(folder).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _matches(prefix + d, folder_patterns))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name), prefix + name


def plan_corpus(
    paths: list[Path], chunk_size: int, options: ReadOptions = ReadOptions(), ignore: Path | None = None
) -> CorpusPlan:
    """Find every document file under `paths` and group them into chunks of about `chunk_size` bytes.

    `ignore` (an absolute path) is left out: the index being written, when it lies in the corpus.
    A JSONL or TREC file larger than `chunk_size` (not gzip-compressed) is cut into byte ranges.
    Raises CorpusError when a path does not exist, the format or encoding is unknown, no file is
    found at all, or (with options.strict) a file cannot be read.
    """
    if options.format not in FORMATS:
        raise CorpusError(f"unknown format {options.format!r}; choose one of: {', '.join(FORMATS)}")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise CorpusError(
            f"unknown encoding {options.encoding!r}; give a Python codec name such as utf-8, latin-1 or cp1252"
        ) from None
    pieces: list[tuple[Piece, int]] = []  # (piece, bytes)
    files: list[str] = []
    skipped: dict[str, list[str]] = {}
    for root in map(Path, paths):
        if root.is_file():
            found: Iterator[tuple[Path, str]] = iter([(root, root.name)])
        elif root.is_dir():
            found = _walk(root, options, skipped)
        elif not root.exists():
            raise CorpusError(f"{display_path(root)}: no such file or folder")
        else:
            raise CorpusError(f"{display_path(root)}: not a regular file or folder")
        for path, rel in found:
            if not _selected(rel, options) or (ignore is not None and os.path.abspath(path) == os.path.abspath(ignore)):
                continue
            try:
                st = os.stat(path)
            except OSError as err:  # a dangling link, a link loop, no permission on a parent
                skipped.setdefault("unreadable", []).append(f"{display_path(path)} ({err.strerror or err})")
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: reading it could block or never end
                skipped.setdefault("not a regular file", []).append(display_path(path))
                continue
            fmt = _detect_format(path.name, options.format)
            split = fmt in ("jsonl", "trec", "auto") and st.st_size > chunk_size and not _is_gzip(path)
            if split and fmt == "auto":
                try:
                    with open(path, "rb") as f:
                        fmt = "trec" if _looks_trec(f.read(SNIFF_BYTES)) else "text"
                except OSError as err:
                    skipped.setdefault("unreadable", []).append(f"{display_path(path)} ({err.strerror or err})")
                    continue
                split = fmt == "trec"
            file_no = len(files)
            files.append(os.path.abspath(path))
            name = display_path(rel)
            if not split:
                pieces.append((Piece(str(path), file_no, name, fmt), st.st_size))
                continue
            for start in range(0, st.st_size, chunk_size):
                end = min(st.st_size, start + chunk_size)
                pieces.append((Piece(str(path), file_no, name, fmt, start, end), end - start))
    if options.strict and skipped:
        reason, where = next(iter(skipped.items()))
        raise CorpusError(_strict_message(reason, where[0]))
    if not files:
        raise CorpusError(f"nothing to index: no files found in {', '.join(map(display_path, paths))}")
    chunks: list[Chunk] = []
    batch: list[Piece] = []
    batch_bytes = 0
    for piece, size in pieces:
        batch.append(piece)
        batch_bytes += size
        if batch_bytes >= chunk_size:
            chunks.append(Chunk(len(chunks), tuple(batch), batch_bytes))
            batch, batch_bytes = [], 0
    if batch:
        chunks.append(Chunk(len(chunks), tuple(batch), batch_bytes))
    return CorpusPlan(chunks, files, sum(size for _, size in pieces), skipped)


def _strict_message(reason: str, where: str) -> str:
    return f"{where}: {reason}; --strict stops at any skipped or repaired input: fix it or build without --strict"


# ---------------------------------------------------------------------------------------------
# Reading (in the workers)

Where = str | Callable[[], str]  # a location, or a function computing it only when it is shown


class SkipLog:
    """Counts skipped or repaired input by reason and keeps the first few examples of each."""

    EXAMPLES = EXAMPLES_PER_REASON

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, where: Where) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.EXAMPLES:
            examples.append(where() if callable(where) else where)


class _StrictLog(SkipLog):
    """A SkipLog stand-in for --strict: the first problem is an error."""

    def add(self, reason: str, where: Where) -> None:
        raise CorpusError(_strict_message(reason, where() if callable(where) else where))


def open_source(path: str | os.PathLike) -> BinaryIO:
    """Open a corpus file for reading bytes, decompressing a `.gz` file on the fly."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def read_source(path: str | os.PathLike, offset: int, length: int) -> bytes:
    """The `length` bytes at `offset` of a corpus file: a document's record as the index's
    `doc_source` gives it. For a `.gz` file the offset counts uncompressed bytes (reading there
    decompresses everything before it). Raises OSError (and EOFError, zlib.error for damaged gzip)."""
    with open_source(path) as f:
        f.seek(offset)
        return f.read(length)


def read_piece(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    """The documents of one piece. Bad input is logged in `log` and skipped, never raised; with
    options.strict the first problem raises CorpusError instead."""
    if options.strict:
        log = _StrictLog()
    try:
        if piece.format == "jsonl":
            yield from _read_jsonl(piece, options, log)
        elif piece.format == "trec":
            with open_source(piece.path) as f:
                yield from _read_trec(f, piece, options, log)
        else:
            yield from _read_whole(piece, options, log)
    except (OSError, EOFError, zlib.error) as err:  # vanished, no permission, damaged gzip
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        log.add("unreadable", f"{display_path(piece.path)} ({why})")


def _decode(data: bytes, options: ReadOptions, log: SkipLog, where: Where) -> str:
    try:
        return data.decode(options.encoding)
    except UnicodeDecodeError:
        log.add(f"invalid {options.encoding} (decoded with replacement)", where)
        return data.decode(options.encoding, "replace")


def _read_whole(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    """A text file as one document; a file of format "auto" whose first bytes are <DOC> as TREC."""
    with open_source(piece.path) as f:
        head = f.read(SNIFF_BYTES)
        if piece.format == "auto" and _looks_trec(head):
            f.seek(0)
            yield from _read_trec(f, piece, options, log)
            return
        data = head + f.read()
    where = display_path(piece.path)
    if b"\0" in data:
        log.add("binary (NUL bytes)", where)
        return
    text = _decode(data, options, log, where)
    if not text.strip():
        log.add("empty", where)
        return
    yield Document(piece.name, text, piece.file_no, 0, len(data))


_line_marks: dict[tuple[str, int, int], tuple[int, int]] = {}  # per process, see _line_number


def _line_number(path: str, offset: int) -> int:
    """1-based line of a byte offset; only called when a bad record is reported.

    Remembers the last (offset, lines before it) per file, so that reporting records in the
    ranges of one large file, which a worker meets in file order, scans the file about once."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    start, lines = _line_marks.get(key, (0, 0))
    if offset < start:
        start, lines = 0, 0
    with open_source(path) as f:
        f.seek(start)
        while start < offset:
            block = f.read(min(READ_BLOCK, offset - start))
            if not block:
                break
            lines += block.count(b"\n")
            start += len(block)
    if len(_line_marks) > 64:
        _line_marks.clear()
    _line_marks[key] = (start, lines)
    return lines + 1


def _where(piece: Piece, offset: int) -> Callable[[], str]:
    def where() -> str:
        try:
            return f"{display_path(piece.path)}:{_line_number(piece.path, offset)}"
        except (OSError, EOFError, zlib.error):  # gone or damaged since: the byte offset still helps
            return f"{display_path(piece.path)} at byte {offset}"

    return where


def _seek_line_start(f: BinaryIO, start: int) -> int:
    """Move `f` to the first line that starts at or after `start`; returns its offset (the file's
    size when there is none). A line straddling `start` belongs to the previous range. Scans in
    blocks, so a line of many megabytes costs no more memory than a block."""
    if start == 0:
        return 0
    pos = start - 1
    f.seek(pos)
    while True:
        block = f.read(READ_BLOCK)
        if not block:
            return pos
        newline = block.find(b"\n")
        if newline >= 0:
            pos += newline + 1
            f.seek(pos)
            return pos
        pos += len(block)


def _read_jsonl(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    whole = piece.start == 0 and piece.end < 0
    blank = True
    with open_source(piece.path) as f:
        offset = _seek_line_start(f, piece.start)
        end = piece.end if piece.end >= 0 else math.inf
        if offset == 0 and f.read(len(BOM)) == BOM:  # a byte-order mark is no part of the first record
            offset = len(BOM)
        f.seek(offset)
        while offset < end:
            line = f.readline()
            if not line:
                break
            if not line.isspace():
                blank = False
                doc = _parse_record(line, piece, offset, options, log)
                if doc is not None:
                    yield doc
            offset += len(line)
    if whole and blank:
        log.add("empty", display_path(piece.path))


def _parse_record(line: bytes, piece: Piece, offset: int, options: ReadOptions, log: SkipLog) -> Document | None:
    where = _where(piece, offset)
    try:
        record = json.loads(_decode(line, options, log, where))
    except (ValueError, RecursionError):
        log.add("not valid JSON", where)
        return None
    if not isinstance(record, dict):
        log.add("not a JSON object", where)
        return None
    doc_id, text = record_id_and_text(record, options)
    if doc_id is None:
        log.add("no id field", where)
        return None
    if not text or text.isspace():
        has_text = any(isinstance(record.get(k), str) for k in options.text_fields)
        log.add("empty" if has_text else "no text field", where)
        return None
    length = len(line) - (line.endswith(b"\n") + line.endswith(b"\r\n"))  # without the line break
    return Document(doc_id, text, piece.file_no, offset, length)


def record_id_and_text(record: dict, options: ReadOptions = ReadOptions()) -> tuple[str | None, str]:
    """A JSON record's document id (None when no id field has a value) and its indexed text: the
    text fields present, in `options.text_fields` order, joined by spaces. Snippets reuse it.

    An id is the first of `options.id_fields` holding a non-empty string or an integer."""
    doc_id = None
    for value in map(record.get, options.id_fields):
        if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
            doc_id = str(value)
            break
    parts = [value for value in map(record.get, options.text_fields) if isinstance(value, str) and value]
    return doc_id, parts[0] if len(parts) == 1 else " ".join(parts)


def _trec_records(f: BinaryIO, start: int, end: float) -> Iterator[tuple[int, bytes | None, int]]:
    """(offset, record, length) of each TREC record whose `<DOC>` starts in [start, end); the
    record is None when it has no `</DOC>` before the next `<DOC>` or the end of the file.

    Reads blocks into a buffer that holds at most the record being read plus one block; bytes
    before that record are dropped only when a block is added, so each byte is moved about once."""
    if start:
        f.seek(start)
    buf = bytearray()
    base = start  # file offset of buf[0]
    pos = 0  # where to look for the next <DOC>
    eof = False
    while True:
        opening = _DOC_OPEN.search(buf, pos)
        if opening is None:
            if eof:
                return
            keep = max(pos, len(buf) - _OPEN_TAIL)  # a tag cut by the block end starts at or after keep
            if base + keep >= end:
                return
            del buf[:keep]
            base, pos = base + keep, 0
            eof = not _fill(f, buf)
            continue
        s = opening.start()
        if base + s >= end:
            return
        scan = opening.end()
        while True:  # find this record's end: </DOC>, or the next <DOC> when it has none
            closing = _DOC_CLOSE.search(buf, scan)
            following = _DOC_OPEN.search(buf, scan)
            if closing is not None and (following is None or closing.start() < following.start()):
                stop, whole = closing.end(), True
                break
            if following is not None:
                stop, whole = following.start(), False
                break
            if eof:
                stop, whole = len(buf), False
                break
            scan = max(scan, len(buf) - _CLOSE_TAIL)
            del buf[:s]
            base, scan, s = base + s, scan - s, 0
            eof = not _fill(f, buf)
        yield base + s, (bytes(buf[s:stop]) if whole else None), stop - s
        pos = stop


def _fill(f: BinaryIO, buf: bytearray) -> bool:
    """Append the next block of `f` to `buf`; False at the end of the file."""
    data = f.read(READ_BLOCK)
    buf += data
    return bool(data)


def trec_id_and_text(record: str) -> tuple[str | None, str]:
    """A TREC record's DOCNO (None when missing or empty) and its indexed text: the rest of the
    record, tags removed and entities decoded. Snippets reuse it."""
    docno = _DOCNO.search(record)
    if docno is None or not docno[1]:
        return None, ""
    text = _TAG.sub(" ", record[: docno.start()] + " " + record[docno.end() :])
    return docno[1], html.unescape(text) if "&" in text else text


def _read_trec(f: BinaryIO, piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    whole = piece.start == 0 and piece.end < 0
    found = False
    end = piece.end if piece.end >= 0 else math.inf
    for offset, record, length in _trec_records(f, piece.start, end):
        found = True
        where = _where(piece, offset)
        if record is None:
            log.add("TREC record without </DOC>", where)
            continue
        doc_id, text = trec_id_and_text(_decode(record, options, log, where))
        if doc_id is None:
            log.add("no DOCNO", where)
            continue
        if not text.strip():
            log.add("empty", where)
            continue
        yield Document(doc_id, text, piece.file_no, offset, length)
    if whole and not found:
        f.seek(0)
        blank = all(block.isspace() for block in iter(lambda: f.read(READ_BLOCK), b""))
        log.add("empty" if blank else "no <DOC> records", display_path(piece.path))
