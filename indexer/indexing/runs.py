"""Runs: a worker's sorted partial index on disk, the one format between inverting and merging.

A run is a folder of .npy arrays: the run's sorted terms (one UTF-8 blob and `term_offsets`), per
term the offsets of its postings and positions (`post_offsets`, `pos_offsets`: cumulative, so a
merge slices a term range without reading the rest), and the postings themselves: `docs`, `tfs`
and, when positions are kept, `positions`, grouped by term in term order, docs ascending within a
term, each in the narrowest unsigned type its values fit (uint8, uint16 or uint32). Doc ids in a
run are chunk-local; the merge adds each run's offset.

`write_run` writes a run from arrays, `RunWriter` one that arrives batch by batch (combining runs),
`as_one_document` folds the combined runs of one large document into one posting per term,
`RunSlice` reads the part of a run in a term range, and `run_term_count` sizes a run. Beside its
runs, a chunk leaves its document table (`write_doc_table`, `read_doc_table`): the documents'
lengths, names and sources in doc id order, which the writer copies into the index.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

STREAMS = ("docs", "tfs", "positions")


def write_run(
    path: str,
    term_bytes: list[bytes],
    df: np.ndarray,
    cf: np.ndarray,
    docs: np.ndarray,
    tfs: np.ndarray,
    positions: np.ndarray | None,
) -> None:
    """Write a run folder at `path`: sorted UTF-8 terms with their df and cf, and their postings.
    Each stream is stored in the narrowest unsigned type that holds its values (readers take
    the type from the .npy header), which halves what most runs write and read back."""
    os.makedirs(path, exist_ok=True)  # a task rerun after its worker died overwrites the dead attempt's files
    _write_terms(path, term_bytes, df, cf)
    for name, values in zip(STREAMS, (docs, tfs, positions)):
        if values is not None:
            np.save(os.path.join(path, name + ".npy"), _narrow(values))


def _narrow(values: np.ndarray) -> np.ndarray:
    top = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype, copy=False)
    raise AssertionError("run values are uint32")


def as_one_document(path: str) -> None:
    """Give a run whose postings all belong to one document (the runs of a document too large for
    memory, combined) one posting per term, whose tf is the term's count of positions (cf): its
    positions are already in order, run after run."""
    counts = np.diff(np.load(os.path.join(path, "pos_offsets.npy")))
    docs = _Array(os.path.join(path, "docs.npy"))
    doc = docs[0] if docs.length else 0
    np.save(os.path.join(path, "docs.npy"), np.full(len(counts), doc, dtype=np.uint32))
    np.save(os.path.join(path, "tfs.npy"), counts.astype(np.uint32))
    np.save(os.path.join(path, "post_offsets.npy"), np.arange(len(counts) + 1, dtype=np.int64))


@dataclass(frozen=True)
class DocTable:
    """The documents of one chunk, in doc id order: lengths, UTF-8 names (lengths and one blob),
    and where each was read: file number, byte offset, byte length and CRC-32 of the record."""

    lengths: np.ndarray
    name_lengths: np.ndarray
    names: np.ndarray
    file_nos: np.ndarray
    offsets: np.ndarray
    record_lengths: np.ndarray
    crcs: np.ndarray


def write_doc_table(path: str, lengths: np.ndarray, names: list[str], sources: np.ndarray) -> None:
    """Write a chunk's document table: u32 lengths, names (UTF-8, undecodable bytes escaped) and
    (file number, byte offset, byte length, CRC-32) rows of int64."""
    name_bytes = [n.encode("utf-8", "backslashreplace") for n in names]
    sources = sources.reshape(-1, 4)
    np.savez(
        path,
        lengths=lengths,
        name_lengths=np.fromiter(map(len, name_bytes), np.int64, len(name_bytes)),
        names=np.frombuffer(b"".join(name_bytes), dtype=np.uint8),
        file_nos=sources[:, 0],
        offsets=sources[:, 1],
        record_lengths=sources[:, 2],
        crcs=sources[:, 3],
    )


def read_doc_table(path: str) -> DocTable:
    with np.load(path) as data:
        return DocTable(**{name: data[name] for name in DocTable.__dataclass_fields__})


class RunWriter:
    """A run written batch by batch: each stream's .npy header first (the totals are known), then
    the postings of consecutive terms appended in term order, then the terms. A context manager:
    the streams are closed on the way out."""

    def __init__(self, path: str, postings: int, positions: int | None):
        os.makedirs(path, exist_ok=True)  # a rerun after a dead attempt overwrites its files
        self.path = path
        sizes = {"docs": postings, "tfs": postings} | ({"positions": positions} if positions is not None else {})
        self._files = {}
        for name, size in sizes.items():
            self._files[name] = open(os.path.join(path, name + ".npy"), "wb")
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint32)),
                "fortran_order": False,
                "shape": (size,),
            }
            np.lib.format.write_array_header_1_0(self._files[name], header)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        for f in self._files.values():
            f.close()

    def append(self, docs: np.ndarray, tfs: np.ndarray, positions: np.ndarray | None) -> None:
        for name, values in zip(STREAMS, (docs, tfs, positions)):
            if name in self._files:
                values.astype(np.uint32, copy=False).tofile(self._files[name])

    def terms(self, term_bytes: list[bytes], df: np.ndarray, cf: np.ndarray) -> None:
        """The run's sorted terms with their df and cf, which complete it."""
        _write_terms(self.path, term_bytes, df, cf)


def _write_terms(path: str, term_bytes: list[bytes], df: np.ndarray, cf: np.ndarray) -> None:
    lengths = np.fromiter(map(len, term_bytes), np.int64, len(term_bytes))
    np.save(os.path.join(path, "term_offsets.npy"), np.concatenate(([0], np.cumsum(lengths))))
    np.save(os.path.join(path, "terms.npy"), np.frombuffer(b"".join(term_bytes), dtype=np.uint8))
    np.save(os.path.join(path, "post_offsets.npy"), np.concatenate(([0], np.cumsum(df))))
    np.save(os.path.join(path, "pos_offsets.npy"), np.concatenate(([0], np.cumsum(cf))))


class _Array:
    """A .npy file read by slices with plain reads: nothing stays mapped, so memory a merge has
    read is given back as soon as it drops the slice."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, self.dtype = read_header(f)
            self.offset = f.tell()
        self.length = shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.fromfile(
            self.path, dtype=self.dtype, count=stop - start, offset=self.offset + start * self.dtype.itemsize
        )

    def __getitem__(self, i: int) -> int:
        return int(self.read(i, i + 1)[0])


def run_term_count(path: str) -> int:
    """The number of terms in a run folder (from an array header; reads no data)."""
    return _Array(os.path.join(path, "term_offsets.npy")).length - 1


class _MappedTerms:
    """A run's terms as UTF-8 bytes by number (byte order is code point order), read through
    memory maps that live as long as this object."""

    def __init__(self, path: str):
        self._offsets = np.load(os.path.join(path, "term_offsets.npy"), mmap_mode="r")
        self._blob = np.load(os.path.join(path, "terms.npy"), mmap_mode="r")

    def __getitem__(self, i: int) -> bytes:
        start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._blob[start:stop].tobytes()


class RunSlice:
    """The part of one run that falls in a term range: its terms, df and cf are read once;
    postings and positions are read in slices as batches need them. Indexes are range-local."""

    def __init__(self, path: str, lo: str | None, hi: str | None):
        arrays = {name: _Array(os.path.join(path, name + ".npy")) for name in ("term_offsets", "terms", "docs", "tfs")}
        self._offsets_file, self._blob_file = arrays["term_offsets"], arrays["terms"]
        self.docs, self.tfs = arrays["docs"], arrays["tfs"]
        positions = os.path.join(path, "positions.npy")
        self.positions = _Array(positions) if os.path.exists(positions) else None
        count = self._offsets_file.length - 1
        a, b = 0, count
        if count and (lo is not None or hi is not None):
            terms = _MappedTerms(path)  # the bisection touches a few pages, not a file read per probe
            a = 0 if lo is None else bisect_left(terms, lo.encode("utf-8"), 0, count)
            b = count if hi is None else bisect_left(terms, hi.encode("utf-8"), a, count)
            del terms
        offsets = self._offsets_file.read(a, b + 1)
        self.blob = self._blob_file.read(int(offsets[0]), int(offsets[-1])) if b > a else np.zeros(0, np.uint8)
        self.term_offsets = offsets - offsets[0]
        self.post_start = _Array(os.path.join(path, "post_offsets.npy")).read(a, b + 1)
        self.pos_start = _Array(os.path.join(path, "pos_offsets.npy")).read(a, b + 1)

    def __len__(self) -> int:  # terms in the range
        return len(self.term_offsets) - 1

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Items start..stop-1 of the docs, tfs or positions array."""
        return getattr(self, name).read(start, stop)

    def counts(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """df and cf of range-local terms a..b-1."""
        return np.diff(self.post_start[a : b + 1]), np.diff(self.pos_start[a : b + 1])

    def terms(self) -> list[str]:
        raw = self.blob.tobytes()
        cuts = self.term_offsets.tolist()
        return [raw[x:y].decode("utf-8") for x, y in zip(cuts[:-1], cuts[1:])]
