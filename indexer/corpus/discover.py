"""Discovery: corpus paths -> the files to index -> chunks of work (paths and byte ranges, no text).

Planning runs in the parent and only stats files (and peeks at the first bytes of a large file of
unknown format): a chunk is a list of pieces (a file, or a byte range of a large file whose reader
can split it) of about `chunk_size` bytes. Doc ids follow chunk order, so the plan alone fixes them.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path

from indexer.corpus.readers import (
    FORMATS,
    SNIFF_BYTES,
    STDIN,
    STDIN_NAME,
    Piece,
    ReadOptions,
    display_path,
    is_gzip,
    line_numbers,
    looks_like_jsonl,
    reader_by_suffix,
    sniff_reader,
)
from indexer.corpus.skips import SkipLog, SkipReason, strict_message
from indexer.errors import CorpusError


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
    skipped: SkipLog = field(default_factory=SkipLog)  # found while planning
    roots: tuple[str, ...] = ()  # the corpus paths, absolute


def plan_corpus(
    paths: list[Path], chunk_size: int, options: ReadOptions = ReadOptions(), ignore: Path | None = None
) -> CorpusPlan:
    """Find every document file under `paths` and group them into chunks of about `chunk_size` bytes.

    `ignore` (an absolute path) is left out: the index being written, when it lies in the corpus.
    A file whose reader can split it (JSONL, TREC; not gzip-compressed) and that is larger than
    `chunk_size` is cut into byte ranges. Raises CorpusError when a path does not exist, the format
    or encoding is unknown, no file is found at all, or (with options.strict) a file is skipped.
    """
    _check_options(options)
    skipped = SkipLog()
    found = list(find_files(paths, options, skipped, ignore))
    plan = plan_files(found, paths, chunk_size, options, skipped)
    if not plan.files:
        chosen = " (--include and --exclude let none through)" if options.include or options.exclude else ""
        raise CorpusError(f"nothing to index: no files found in {', '.join(map(display_path, paths))}{chosen}")
    return plan


def plan_stream(spool: str, chunk_size: int, options: ReadOptions = ReadOptions()) -> CorpusPlan:
    """Chunks of a copy of standard input in `spool`. Its format is the one asked for, where
    `text` means a document per line (`lines`); `auto` takes JSONL when it starts with `{`, TREC
    when it starts with <DOC>, else lines; the pieces carry that format. Its file is "-"."""
    _check_options(options)
    fmt = {"text": "lines"}.get(options.format, options.format)
    st = os.stat(spool)
    if fmt == "auto":
        with open(spool, "rb") as f:
            head = f.read(SNIFF_BYTES)
        fmt = "jsonl" if looks_like_jsonl(head) else sniff_reader(head).name
        fmt = "lines" if fmt == "text" else fmt
    if not st.st_size:
        raise CorpusError("nothing to index: standard input is empty")
    found = [FoundFile(spool, STDIN, STDIN_NAME, st.st_size, st.st_mtime_ns)]
    plan = plan_files(found, [], chunk_size, replace(options, format=fmt), SkipLog())
    chunks = [replace(c, pieces=tuple(replace(p, label=STDIN_NAME) for p in c.pieces)) for c in plan.chunks]
    return replace(plan, chunks=chunks)


def plan_files(
    found: list[FoundFile], paths: list[Path], chunk_size: int, options: ReadOptions, skipped: SkipLog
) -> CorpusPlan:
    """Chunks of about `chunk_size` bytes of these files (found under the corpus `paths`, in order);
    an update plans its new and changed files this way. No file at all gives an empty plan."""
    files: list[str] = []
    pieces: list[tuple[Piece, int]] = []  # (piece, bytes)
    for f in found:
        got = _pieces(f.path, f.rel, f.size, len(files), chunk_size, options, skipped)
        if got:
            files.append(f.absolute)
            pieces += got
    if options.strict and skipped.counts:
        reason = next(iter(skipped.counts))
        raise CorpusError(strict_message(reason, skipped.examples[reason][0]))
    roots = tuple(os.path.abspath(p) for p in paths)
    return CorpusPlan(_chunks(pieces, chunk_size), files, sum(size for _, size in pieces), skipped, roots)


def _check_options(options: ReadOptions) -> None:
    if options.format not in FORMATS:
        raise CorpusError(f"unknown format {options.format!r}; choose one of: {', '.join(FORMATS)}")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise CorpusError(
            f"unknown encoding {options.encoding!r}; give a Python codec name such as utf-8, latin-1 or cp1252"
        ) from None


@dataclass(frozen=True)
class FoundFile:
    path: str  # as found under its corpus argument
    absolute: str
    rel: str  # the name relative to its corpus argument (a text file's document id)
    size: int
    mtime_ns: int


def find_files(
    paths: list[Path],
    options: ReadOptions,
    skipped: SkipLog,
    ignore: Path | None = None,
    missing_ok: bool = False,
) -> Iterator[FoundFile]:
    """Each regular file to index under `paths`, in a stable order. `ignore` (an absolute path)
    is left out. A path that does not exist is an error unless `missing_ok` (it holds no files)."""
    ignored = os.path.abspath(ignore) if ignore is not None else None
    for root in map(Path, paths):
        single = root.is_file()
        if single:
            found: Iterator[tuple[str, str]] = iter([(str(root), root.name)])
        elif root.is_dir():
            found = _walk(root, options, skipped)
        elif not root.exists():
            if missing_ok:
                continue
            raise CorpusError(f"{display_path(root)}: no such file or folder")
        else:
            raise CorpusError(f"{display_path(root)}: not a regular file or folder")
        base = os.path.abspath(root)
        for path, rel in found:
            if (options.include or options.exclude) and not _selected(rel, options):
                continue
            absolute = base if single else os.path.join(base, *rel.split("/"))
            if absolute == ignored:
                continue
            try:
                st = os.stat(path)
            except OSError as err:  # a dangling link, a link loop, no permission on a parent
                skipped.add(SkipReason.UNREADABLE, f"{display_path(path)} ({err.strerror or err})")
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: reading it could block or never end
                skipped.add(SkipReason.NOT_REGULAR_FILE, display_path(path))
                continue
            yield FoundFile(path, absolute, rel, st.st_size, st.st_mtime_ns)


def _pieces(
    path: str, rel: str, size: int, file_no: int, chunk_size: int, options: ReadOptions, skipped: SkipLog
) -> list[tuple[Piece, int]]:
    """The file as one piece, or as byte ranges of about chunk_size when its reader can split it.
    A large file of unknown suffix is sniffed here, so that a TREC file is split too."""
    reader = reader_by_suffix(os.path.basename(path), options.format)
    fmt = reader.name if reader is not None else "auto"
    if size > chunk_size and not is_gzip(path) and reader is None:
        try:
            with open(path, "rb") as f:
                reader = sniff_reader(f.read(SNIFF_BYTES), path)
        except OSError as err:
            skipped.add(SkipReason.UNREADABLE, f"{display_path(path)} ({err.strerror or err})")
            return []
        fmt = reader.name
    name = display_path(rel)
    if reader is None or not reader.splittable or size <= chunk_size or is_gzip(path):
        return [(Piece(str(path), file_no, name, fmt), size)]
    ranges = [(start, min(size, start + chunk_size)) for start in range(0, size, chunk_size)]
    lines = line_numbers(path, [start for start, _ in ranges]) if fmt == "lines" else [1] * len(ranges)
    return [
        (Piece(str(path), file_no, name, fmt, start, end, line), end - start)
        for (start, end), line in zip(ranges, lines, strict=True)
    ]


def _chunks(pieces: list[tuple[Piece, int]], chunk_size: int) -> list[Chunk]:
    """Consecutive pieces grouped until each group holds about chunk_size bytes."""
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
    return chunks


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatchcase(rel, p) or fnmatchcase(name, p) for p in patterns)


def _selected(rel: str, options: ReadOptions) -> bool:
    if options.include and not _matches(rel, options.include):
        return False
    return not _matches(rel, options.exclude)


def _walk(root: Path, options: ReadOptions, skipped: SkipLog) -> Iterator[tuple[str, str]]:
    """(path, path relative to root in POSIX form) of the files below root, in a stable sorted
    order. Hidden files and folders are skipped, and so are folders matching an exclude pattern.

    Symlinked files are followed, symlinked folders are not (so a symlink loop cannot trap us);
    a folder that cannot be listed is recorded in `skipped` as unreadable."""
    folder_patterns = tuple(p.rstrip("/") for p in options.exclude)

    def unlistable(err: OSError) -> None:
        skipped.add(SkipReason.UNREADABLE, f"{display_path(err.filename or root)} ({err.strerror or err})")

    top = str(root)
    for folder, dirs, files in os.walk(top, onerror=unlistable):
        below = os.path.relpath(folder, top) if folder != top else ""
        prefix = below.replace(os.sep, "/") + "/" if below else ""
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _matches(prefix + d, folder_patterns))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name), prefix + name
