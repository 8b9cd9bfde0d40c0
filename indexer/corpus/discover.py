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
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from indexer.corpus.readers import (
    FORMATS,
    SNIFF_BYTES,
    Piece,
    ReadOptions,
    display_path,
    is_gzip,
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
    files: list[str] = []
    pieces: list[tuple[Piece, int]] = []  # (piece, bytes)
    for path, absolute, rel, size in _find_files(paths, options, skipped, ignore):
        found = _pieces(path, rel, size, len(files), chunk_size, options, skipped)
        if found:
            files.append(absolute)
            pieces += found
    if options.strict and skipped.counts:
        reason = next(iter(skipped.counts))
        raise CorpusError(strict_message(reason, skipped.examples[reason][0]))
    if not files:
        raise CorpusError(f"nothing to index: no files found in {', '.join(map(display_path, paths))}")
    return CorpusPlan(_chunks(pieces, chunk_size), files, sum(size for _, size in pieces), skipped)


def _check_options(options: ReadOptions) -> None:
    if options.format not in FORMATS:
        raise CorpusError(f"unknown format {options.format!r}; choose one of: {', '.join(FORMATS)}")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise CorpusError(
            f"unknown encoding {options.encoding!r}; give a Python codec name such as utf-8, latin-1 or cp1252"
        ) from None


def _find_files(
    paths: list[Path], options: ReadOptions, skipped: SkipLog, ignore: Path | None
) -> Iterator[tuple[str, str, str, int]]:
    """(path, absolute path, relative name, size) of each regular file to index, in a stable order."""
    ignored = os.path.abspath(ignore) if ignore is not None else None
    for root in map(Path, paths):
        if root.is_file():
            found: Iterator[tuple[str, str, str]] = iter([(os.fspath(root), os.path.abspath(root), root.name)])
        elif root.is_dir():
            found = _walk(root, options, skipped)
        elif not root.exists():
            raise CorpusError(f"{display_path(root)}: no such file or folder")
        else:
            raise CorpusError(f"{display_path(root)}: not a regular file or folder")
        for path, absolute, rel in found:
            if (options.include or options.exclude) and not _selected(rel, options):
                continue
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
            yield path, absolute, rel, st.st_size


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
                reader = sniff_reader(f.read(SNIFF_BYTES))
        except OSError as err:
            skipped.add(SkipReason.UNREADABLE, f"{display_path(path)} ({err.strerror or err})")
            return []
        fmt = reader.name
    name = display_path(rel)
    if reader is None or not reader.splittable or size <= chunk_size or is_gzip(path):
        return [(Piece(path, file_no, name, fmt), size)]
    ranges = [(start, min(size, start + chunk_size)) for start in range(0, size, chunk_size)]
    return [(Piece(path, file_no, name, fmt, start, end), end - start) for start, end in ranges]


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


def _walk(root: Path, options: ReadOptions, skipped: SkipLog) -> Iterator[tuple[str, str, str]]:
    """(path, absolute path, path relative to root in POSIX form) of the files below root, in a
    stable sorted order. Hidden files and folders are skipped, and so are folders matching an
    exclude pattern.

    Symlinked files are followed, symlinked folders are not (so a symlink loop cannot trap us);
    a folder that cannot be listed is recorded in `skipped` as unreadable."""
    folder_patterns = tuple(p.rstrip("/") for p in options.exclude)

    def unlistable(err: OSError) -> None:
        skipped.add(SkipReason.UNREADABLE, f"{display_path(err.filename or root)} ({err.strerror or err})")

    absolute_root = os.path.abspath(root)  # once: os.path.abspath per file was a tenth of planning
    for folder, dirs, files in os.walk(root, onerror=unlistable):
        prefix = Path(folder).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        absolute = os.path.join(absolute_root, prefix.replace("/", os.sep)) if prefix else absolute_root
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _matches(prefix + d, folder_patterns))
        for name in sorted(files):
            if not name.startswith("."):  # str paths: a Path per file cost more than the rest
                yield os.path.join(folder, name), os.path.join(absolute, name), prefix + name
