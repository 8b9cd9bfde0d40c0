"""Readers: bytes of a corpus file -> documents, one reader per input format, in a registry.

A reader knows its format's file suffixes, whether its files can be cut into byte ranges that are
read independently (a range [start, end) owns the records whose first byte lies in it), how to
recognise its content from the first bytes, how to turn a file or range into Documents, and how to
turn one record read back by its offset into the indexed text again (snippets). Formats: text (one
document per file), JSONL (one JSON object per line) and TREC SGML (`<DOC><DOCNO>id</DOCNO>...`),
each optionally gzip-compressed (`.gz`, read as one piece: it cannot be seeked cheaply).

Reading runs in the workers, which open their own pieces, so document text never crosses a
process boundary. Bad input is logged in a SkipLog and skipped, never raised.
"""

from __future__ import annotations

import codecs
import gzip
import html
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from indexer.corpus.skips import SkipLog, SkipReason, StrictLog, Where

ID_FIELDS = ("id", "_id", "docid")
TEXT_FIELDS = ("title", "text", "contents")
GZIP_SUFFIX = ".gz"
BOM = codecs.BOM_UTF8
SNIFF_BYTES = 4096  # bytes peeked at to tell a TREC file from a text file
READ_BLOCK = 1 << 20  # bytes read at a time when scanning for a record boundary or streaming a file
STREAM_BYTES = 4 << 20  # a text file larger than this is read block by block
STDIN = "-"  # the corpus path that means standard input; its documents' file is recorded as "-"
STDIN_NAME = "stdin"  # the file name in document ids of lines read from standard input: stdin:<line>


@dataclass(frozen=True)
class ReadOptions:
    """How files are chosen and turned into documents (picklable plain data, sent to workers).

    format: a reader's name, or "auto" (by suffix, else by content). include/exclude: fnmatch
    patterns (`*` also matches `/`) tried against the path relative to the corpus argument and
    against the bare file name. strict: any skipped or repaired input is an error.
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
    format: str  # a reader's name, or "auto": text unless the content starts like another format
    start: int = 0
    end: int = -1  # -1: to the end of the file
    first_line: int = 1  # the number of the first line that starts at or after `start` (lines format)
    label: str = ""  # what messages call the file, when not its path (a copy of standard input: "stdin")

    @property
    def shown(self) -> str:
        return self.label or display_path(self.path)


@dataclass
class Document:
    name: str
    text: str  # the whole text; "" when `stream` gives it block by block
    file_no: int
    offset: int  # of the record in the file (uncompressed stream for .gz)
    length: int  # bytes of the record (a JSONL line without its line break)
    crc: int  # CRC-32 of those bytes: tells a snippet or an update that the record changed
    stream: Callable[[], Iterator[str]] | None = None

    def blocks(self) -> Iterator[str]:
        """The text: whole for most documents, in blocks for a file too large to hold at once
        (read from the open file: iterate before asking for the next document)."""
        return self.stream() if self.stream is not None else iter((self.text,))


@dataclass(frozen=True)
class FileStamp:
    """A file as a reader found it: which reader read it, and its size and mtime then."""

    reader: str
    size: int
    mtime_ns: int


def display_path(path: str | os.PathLike) -> str:
    """A path for messages and document ids: bytes that are not UTF-8 shown as `\\xff` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_gzip(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(GZIP_SUFFIX)


def open_source(path: str | os.PathLike) -> BinaryIO:
    """Open a corpus file for reading bytes, decompressing a `.gz` file on the fly."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_source(path: str | os.PathLike, offset: int, length: int) -> bytes:
    """The `length` bytes at `offset` of a corpus file: a document's record as the index's
    `doc_source` gives it. For a `.gz` file the offset counts uncompressed bytes (reading there
    decompresses everything before it). Raises OSError (and EOFError, zlib.error for damaged gzip)."""
    with open_source(path) as f:
        f.seek(offset)
        return f.read(length)


# ---------------------------------------------------------------------------------------------
# The readers


class Reader:
    """One input format. Subclasses set `name` and `suffixes` and read records."""

    name = ""
    suffixes: tuple[str, ...] = ()
    splittable = False  # byte ranges of a large file can be read independently

    def sniff(self, head: bytes) -> bool:
        """Whether a file of unknown suffix that starts with `head` is in this format."""
        return False

    def documents(self, f: BinaryIO, piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
        raise NotImplementedError

    def text_of(self, record: bytes, name: str, options: ReadOptions) -> str | None:
        """The indexed text of a record read back from its offset, or None when it is no longer
        the document `name` (the file changed)."""
        raise NotImplementedError

    def ends_record(self, following: bytes) -> bool:
        """Whether a record's bytes, read back, are still all of it, given the byte after them."""
        return True


def _decode(data: bytes, options: ReadOptions, log: SkipLog, where: Where) -> str:
    try:
        return data.decode(options.encoding)
    except UnicodeDecodeError:
        log.add(SkipReason.UNDECODABLE, where)
        return data.decode(options.encoding, "replace")


class TextReader(Reader):
    """A whole file is one document, named by its path. A file larger than STREAM_BYTES is checked
    block by block first (binary, empty, undecodable), then given as a stream of decoded blocks,
    so that its size never shows in memory."""

    name = "text"

    def documents(self, f, piece, options, log):
        data = f.read(STREAM_BYTES + 1)
        where = piece.shown
        if len(data) > STREAM_BYTES:
            size, problem, undecodable, crc = _check_text(f, data, options.encoding)
            if problem is not None:
                log.add(problem, where)
                return
            if undecodable:
                log.add(SkipReason.UNDECODABLE, where)
            yield Document(piece.name, "", piece.file_no, 0, size, crc, lambda: _text_blocks(f, options.encoding))
            return
        if b"\0" in data:
            log.add(SkipReason.BINARY, where)
            return
        text = _decode(data, options, log, where)
        if not text or text.isspace():  # (strip() would copy the text)
            log.add(SkipReason.EMPTY, where)
            return
        yield Document(piece.name, text, piece.file_no, 0, len(data), zlib.crc32(data))

    def text_of(self, record, name, options):
        return record.decode(options.encoding, "replace")

    def ends_record(self, following):
        return following == b""  # the whole file, so nothing after it


def _check_text(f: BinaryIO, head: bytes, encoding: str) -> tuple[int, SkipReason | None, bool, int]:
    """Read the rest of a large text file after `head`: (its size, BINARY or EMPTY when it is
    not indexed, whether some bytes are not in the encoding, its CRC-32), with one block in
    memory at once."""
    strict = codecs.getincrementaldecoder(encoding)("strict")
    loose = codecs.getincrementaldecoder(encoding)("replace")
    size, blank, undecodable, crc = 0, True, False, 0
    block, final = head, False
    while not final:
        final = not block
        size += len(block)
        crc = zlib.crc32(block, crc)
        if b"\0" in block:
            return size, SkipReason.BINARY, undecodable, crc
        if not undecodable:
            try:
                strict.decode(block, final)
            except UnicodeDecodeError:
                undecodable = True
        if blank:  # decoded only until the first character that is not a space
            text = loose.decode(block, final)
            blank = not text or text.isspace()
        block = f.read(READ_BLOCK)
    return size, SkipReason.EMPTY if blank else None, undecodable, crc


def _text_blocks(f: BinaryIO, encoding: str) -> Iterator[str]:
    """The text of a file, decoded block by block (bytes not in the encoding replaced)."""
    f.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    while block := f.read(READ_BLOCK):
        text = decoder.decode(block)
        if text:
            yield text
    tail = decoder.decode(b"", True)
    if tail:
        yield tail


class JsonlReader(Reader):
    """One JSON object per line; the id is the first non-empty id field, the text the text fields
    joined. A line straddling a range's start belongs to the range before."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")  # .json: by content (see sniff_reader), as it is often one document
    splittable = True

    def documents(self, f, piece, options, log):
        for offset, _, line in _lines(f, piece, log):
            length = len(line) - (line.endswith(b"\n") + line.endswith(b"\r\n"))  # without the line break
            crc = zlib.crc32(memoryview(line)[:length])
            where = _where(piece, offset)
            text = _decode(line, options, log, where)
            del line  # a record of many megabytes is held as bytes or as text, not both while parsed
            doc = self._record(text, piece, offset, length, crc, where, options, log)
            del text
            if doc is not None:
                yield doc

    def _record(
        self, line: str, piece: Piece, offset: int, length: int, crc: int, where: Where, options, log: SkipLog
    ) -> Document | None:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            log.add(SkipReason.INVALID_JSON, where)
            return None
        if not isinstance(record, dict):
            log.add(SkipReason.NOT_JSON_OBJECT, where)
            return None
        doc_id, text = record_id_and_text(record, options)
        if doc_id is None:
            log.add(SkipReason.NO_ID, where)
            return None
        if not text or text.isspace():
            has_text = any(isinstance(record.get(k), str) for k in options.text_fields)
            log.add(SkipReason.EMPTY if has_text else SkipReason.NO_TEXT, where)
            return None
        return Document(doc_id, text, piece.file_no, offset, length, crc)

    def text_of(self, record, name, options):
        try:
            parsed = json.loads(record.decode(options.encoding, "replace"))
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        doc_id, text = record_id_and_text(parsed, options)
        return text if doc_id == name else None

    def ends_record(self, following):
        return following in (b"", b"\n", b"\r")  # a whole line


def record_id_and_text(record: dict, options: ReadOptions = ReadOptions()) -> tuple[str | None, str]:
    """A JSON record's document id (None when no id field has a value) and its indexed text: the
    text fields present, in `options.text_fields` order, joined by spaces.

    An id is the first of `options.id_fields` holding a non-empty string or an integer."""
    doc_id = None
    for value in map(record.get, options.id_fields):
        if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
            doc_id = str(value)
            break
    parts = [value for value in map(record.get, options.text_fields) if isinstance(value, str) and value]
    return doc_id, parts[0] if len(parts) == 1 else " ".join(parts)


class LinesReader(Reader):
    """Every line is a document, named `<file>:<line number>` (1-based, as grep -n counts);
    blank lines are skipped but counted. Chosen by --format lines, or for text on standard input."""

    name = "lines"
    splittable = True

    def documents(self, f, piece, options, log):
        for offset, number, line in _lines(f, piece, log):
            length = len(line) - (line.endswith(b"\n") + line.endswith(b"\r\n"))
            record = line[:length]
            if b"\0" in record:
                log.add(SkipReason.BINARY, f"{piece.shown}:{number}")
                continue
            text = _decode(record, options, log, lambda n=number: f"{piece.shown}:{n}")
            yield Document(f"{piece.name}:{number}", text, piece.file_no, offset, length, zlib.crc32(record))


def _lines(f: BinaryIO, piece: Piece, log: SkipLog) -> Iterator[tuple[int, int, bytes]]:
    """(offset, line number, line) of each non-blank line that starts in the piece's range; a line
    straddling the range's start belongs to the range before. A whole file without one is logged
    as empty. A byte-order mark is no part of the first line."""
    whole = piece.start == 0 and piece.end < 0
    blank = True
    offset = _seek_line_start(f, piece.start)
    end = piece.end if piece.end >= 0 else math.inf
    if offset == 0 and f.read(len(BOM)) == BOM:
        offset = len(BOM)
    f.seek(offset)
    number = piece.first_line
    while offset < end:
        line = f.readline()
        if not line:
            break
        if not line.isspace():
            blank = False
            yield offset, number, line
        offset += len(line)
        number += 1
    if whole and blank:
        log.add(SkipReason.EMPTY, piece.shown)

    def text_of(self, record, name, options):
        return record.decode(options.encoding, "replace")

    def ends_record(self, following):
        return following in (b"", b"\n", b"\r")  # a whole line


def line_numbers(path: str, starts: list[int]) -> list[int]:
    """For each byte offset of `starts` (ascending), the number of the first line that starts at
    or after it, as LinesReader counts: one pass over the file, counting line breaks."""
    numbers = []
    newlines = 0
    pos = 0
    with open(path, "rb") as f:
        for start in starts:
            if start == 0:
                numbers.append(1)
                continue
            while pos < start - 1:  # the line breaks before the byte at start - 1
                block = f.read(min(READ_BLOCK, start - 1 - pos))
                if not block:
                    break
                newlines += block.count(b"\n")
                pos += len(block)
            numbers.append(newlines + 2)  # the line that straddles start - 1 belongs to the range before
    return numbers


_TREC_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<DOC>", re.IGNORECASE)  # optional UTF-8 BOM
_DOC_OPEN = re.compile(rb"<DOC>", re.IGNORECASE)
_DOC_CLOSE = re.compile(rb"</DOC>", re.IGNORECASE)
_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_OPEN_TAIL = len(b"<DOC>") - 1  # bytes kept between blocks so that a tag split by a read is found
_CLOSE_TAIL = len(b"</DOC>")


class TrecReader(Reader):
    """TREC SGML: `<DOC><DOCNO> id </DOCNO> ... </DOC>` records; the text is the record without its
    DOCNO, tags removed and entities decoded."""

    name = "trec"
    suffixes = (".trec", ".sgml")
    splittable = True

    def sniff(self, head):
        return _TREC_START.match(head) is not None

    def documents(self, f, piece, options, log):
        whole = piece.start == 0 and piece.end < 0
        found = False
        end = piece.end if piece.end >= 0 else math.inf
        for offset, record, length in _trec_records(f, piece.start, end):
            found = True
            where = _where(piece, offset)
            if record is None:
                log.add(SkipReason.UNCLOSED_TREC_RECORD, where)
                continue
            doc_id, text = trec_id_and_text(_decode(record, options, log, where))
            if doc_id is None:
                log.add(SkipReason.NO_DOCNO, where)
                continue
            if not text.strip():
                log.add(SkipReason.EMPTY, where)
                continue
            yield Document(doc_id, text, piece.file_no, offset, length, zlib.crc32(record))
        if whole and not found:
            f.seek(0)
            blank = all(block.isspace() for block in iter(lambda: f.read(READ_BLOCK), b""))
            log.add(SkipReason.EMPTY if blank else SkipReason.NO_TREC_RECORDS, piece.shown)

    def text_of(self, record, name, options):
        doc_id, text = trec_id_and_text(record.decode(options.encoding, "replace"))
        return text if doc_id == name else None


def trec_id_and_text(record: str) -> tuple[str | None, str]:
    """A TREC record's DOCNO (None when missing or empty) and its indexed text: the rest of the
    record, tags removed and entities decoded."""
    docno = _DOCNO.search(record)
    if docno is None or not docno[1]:
        return None, ""
    text = _TAG.sub(" ", record[: docno.start()] + " " + record[docno.end() :])
    return docno[1], html.unescape(text) if "&" in text else text


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


READERS: dict[str, Reader] = {
    reader.name: reader for reader in (TextReader(), JsonlReader(), TrecReader(), LinesReader())
}
FORMATS = ("auto", *READERS)


def reader_by_suffix(file_name: str, requested: str = "auto") -> Reader | None:
    """The reader for a file: the one requested, else the one its suffix names (`.gz` looked
    through), else None: decided from the first bytes by whoever reads them first."""
    if requested != "auto":
        return READERS[requested]
    name = file_name.lower().removesuffix(GZIP_SUFFIX)
    for reader in READERS.values():
        if reader.suffixes and name.endswith(reader.suffixes):
            return reader
    return None


def sniff_reader(head: bytes, name: str = "") -> Reader:
    """The reader for a file of unknown suffix that starts with `head`: text unless another fits.
    A `.json` file is JSONL when its first line holds a JSON object, and one text document when
    it is one pretty-printed JSON value ("{" or "[" alone on its first line)."""
    if name.lower().removesuffix(GZIP_SUFFIX).endswith(".json") and looks_like_jsonl(head):
        return READERS["jsonl"]
    return next((r for r in READERS.values() if r.sniff(head)), READERS["text"])


def looks_like_jsonl(head: bytes) -> bool:
    """Whether the first non-blank line of `head` is (or, cut by the end of `head`, starts) a
    JSON object on one line."""
    line = head.removeprefix(BOM).lstrip().split(b"\n", 1)
    first = line[0].strip()
    if not first.startswith(b"{") or first == b"{":
        return False
    if len(line) == 1:  # longer than the head: an object that goes on past it
        return True
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Reading one piece


def read_piece(
    piece: Piece, options: ReadOptions, log: SkipLog, stamps: dict[int, FileStamp] | None = None
) -> Iterator[Document]:
    """The documents of one piece. Bad input is logged in `log` and skipped, never raised; with
    options.strict the first problem raises CorpusError instead. `stamps`, when given, receives
    the reader and the size and mtime of the piece's file, by file number."""
    if options.strict:
        log = StrictLog()
    try:
        with open_source(piece.path) as f:
            reader = READERS.get(piece.format)
            if reader is None:  # "auto": the first bytes decide
                if isinstance(f, io.BufferedReader):  # a plain file: its buffer holds them already
                    reader = sniff_reader(f.peek(SNIFF_BYTES)[:SNIFF_BYTES], piece.path)
                else:
                    reader = sniff_reader(f.read(SNIFF_BYTES), piece.path)
                    f.seek(0)
            if stamps is not None:
                st = os.fstat(f.fileno())
                stamps[piece.file_no] = FileStamp(reader.name, st.st_size, st.st_mtime_ns)
            yield from reader.documents(f, piece, options, log)
    except (OSError, EOFError, zlib.error) as err:  # vanished, no permission, damaged gzip
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        log.add(SkipReason.UNREADABLE, f"{piece.shown} ({why})")


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
            return f"{piece.shown}:{_line_number(piece.path, offset)}"
        except (OSError, EOFError, zlib.error):  # gone or damaged since: the byte offset still helps
            return f"{piece.shown} at byte {offset}"

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
