"""Corpus: find the documents and plan chunks of work; read the documents of one chunk.

Planning runs in the parent and only stats files: a chunk is a list of pieces (a file, or a byte
range of a large JSONL file) of about `chunk_size` bytes. Reading runs in the workers, which open
their own pieces, so document text never crosses a process boundary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import CorpusError

FORMATS = ("auto", "text", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ID_FIELDS = ("id", "_id", "docid")
TEXT_FIELDS = ("title", "text", "contents")


@dataclass(frozen=True)
class ReadOptions:
    """How workers turn bytes into documents (picklable plain data)."""

    format: str = "auto"
    id_fields: tuple[str, ...] = ID_FIELDS
    text_fields: tuple[str, ...] = TEXT_FIELDS
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Piece:
    """A whole file, or the records of a file whose first byte lies in [start, end)."""

    path: str  # as given or found; os.fsdecode'd
    file_no: int  # index into the plan's file list
    name: str  # document id for a text file, the file's display name for a record file
    format: str  # "text" or "jsonl" (resolved)
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
    offset: int
    length: int


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


def _detect_format(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "text"


def _walk(root: Path) -> Iterator[Path]:
    """Regular files below root in a stable sorted order, hidden files and folders skipped.

    Symlinked files are followed, symlinked folders are not (so a symlink loop cannot trap us)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name)


def plan_corpus(paths: list[Path], chunk_size: int, options: ReadOptions = ReadOptions()) -> CorpusPlan:
    """Find every document file under `paths` and group them into chunks of about `chunk_size` bytes.

    Raises CorpusError when a path does not exist or no file is found at all.
    """
    pieces: list[tuple[Piece, int]] = []  # (piece, bytes)
    files: list[str] = []
    skipped: dict[str, list[str]] = {}
    for root in paths:
        if not root.exists():
            raise CorpusError(f"{root}: no such file or folder")
        found = [root] if root.is_file() else list(_walk(root))
        if not root.is_file() and not root.is_dir():
            raise CorpusError(f"{root}: not a regular file or folder")
        for path in found:
            try:
                size = path.stat().st_size
                if not path.is_file():
                    continue
            except OSError:
                skipped.setdefault("unreadable", []).append(str(path))
                continue
            rel = path.name if path is root else path.relative_to(root).as_posix()
            fmt = _detect_format(path, options.format)
            file_no = len(files)
            files.append(os.path.abspath(path))
            if fmt == "text" or size <= chunk_size:
                pieces.append((Piece(str(path), file_no, rel, fmt), size))
            else:
                for start in range(0, size, chunk_size):
                    end = min(size, start + chunk_size)
                    pieces.append((Piece(str(path), file_no, rel, fmt, start, end), end - start))
    if not files:
        raise CorpusError(f"nothing to index: no files found in {', '.join(map(str, paths))}")
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


# ---------------------------------------------------------------------------------------------
# Reading (in the workers)


class SkipLog:
    """Counts skipped or repaired input by reason and keeps the first few examples of each."""

    EXAMPLES = 3

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.EXAMPLES:
            examples.append(where)


def read_piece(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    """The documents of one piece. Bad input is logged in `log` and skipped, never raised."""
    try:
        if piece.format == "jsonl":
            yield from _read_jsonl(piece, options, log)
        else:
            yield from _read_text(piece, options, log)
    except OSError as err:
        log.add("unreadable", f"{piece.path} ({err.strerror or err})")


def _decode(data: bytes, options: ReadOptions, log: SkipLog, where: str) -> str:
    try:
        return data.decode(options.encoding)
    except UnicodeDecodeError:
        log.add(f"invalid {options.encoding} (decoded with replacement)", where)
        return data.decode(options.encoding, "replace")


def _read_text(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    with open(piece.path, "rb") as f:
        data = f.read()
    if b"\0" in data:
        log.add("binary (NUL bytes)", piece.path)
        return
    text = _decode(data, options, log, piece.path)
    if not text.strip():
        log.add("empty", piece.path)
        return
    yield Document(piece.name, text, piece.file_no, 0, len(data))


def _line_number(path: str, offset: int) -> int:
    """1-based line of a byte offset; only called when reporting a bad record."""
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def _read_jsonl(piece: Piece, options: ReadOptions, log: SkipLog) -> Iterator[Document]:
    with open(piece.path, "rb") as f:
        offset = piece.start
        if offset > 0:  # the record that straddles `start` belongs to the previous range
            f.seek(offset - 1)
            offset += len(f.readline()) - 1
        end = piece.end if piece.end >= 0 else float("inf")
        while offset < end:
            line = f.readline()
            if not line:
                break
            doc = _parse_record(line, piece, offset, options, log)
            if doc is not None:
                yield doc
            offset += len(line)


def _parse_record(line: bytes, piece: Piece, offset: int, options: ReadOptions, log: SkipLog) -> Document | None:
    if not line.strip():
        return None
    where = lambda: f"{piece.path}:{_line_number(piece.path, offset)}"
    try:
        record = json.loads(_decode(line, options, log, piece.path))
    except ValueError:
        log.add("not valid JSON", where())
        return None
    if not isinstance(record, dict):
        log.add("not a JSON object", where())
        return None
    doc_id = next((record[k] for k in options.id_fields if record.get(k) not in (None, "")), None)
    if doc_id is None:
        log.add("no id field", where())
        return None
    parts = [record[k] for k in options.text_fields if isinstance(record.get(k), str) and record[k]]
    text = " ".join(parts)
    if not text.strip():
        log.add("empty", where())
        return None
    return Document(str(doc_id), text, piece.file_no, offset, len(line.rstrip(b"\r\n")))
