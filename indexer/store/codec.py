"""Codec: integers and postings as bytes. Lists of integers are LEB128 varints, encoded and decoded
with numpy a whole array at a time; postings are doc-id gaps (the low bit flags tf == 1), tfs and
position gaps in three separate streams (docs/FORMAT.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.errors import IndexFormatError


def _as_uint(values) -> np.ndarray:
    """uint32 when every value fits (the fast path for gaps, tfs and positions), else uint64."""
    v = np.asarray(values)
    if v.dtype == np.uint32 or (v.dtype.kind in "iu" and v.dtype.itemsize <= 4 and (not len(v) or v.min() >= 0)):
        return v.astype(np.uint32, copy=False)
    return v.astype(np.uint64)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a LEB128 varint (values < 2**35), as uint8."""
    v = _as_uint(values)
    sizes = (v >= 1 << 7).view(np.uint8) + np.uint8(1)
    for bits in (14, 21, 28):
        sizes += (v >= 1 << bits).view(np.uint8)
    return sizes


def encode_varints(values: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """LEB128-encode non-negative integers (< 2**35) into one uint8 array."""
    v = _as_uint(values)
    if sizes is None:
        sizes = varint_sizes(v)
    ends = np.cumsum(sizes, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if total == len(v):  # every value fits in one byte: the common case for gaps and tfs
        return v.astype(np.uint8)
    starts = ends - sizes
    out = np.empty(total, dtype=np.uint8)
    low = (v & 0x7F).astype(np.uint8)
    low |= (sizes > 1).view(np.uint8) << 7
    out[starts] = low
    for k in range(1, 5):
        sel = np.flatnonzero(sizes > k)
        if not len(sel):
            break
        byte = ((v[sel] >> (7 * k)) & 0x7F).astype(np.uint8)
        byte |= (sizes[sel] > k + 1).view(np.uint8) << 7
        out[starts[sel] + k] = byte
    return out


def decode_varints(buf: np.ndarray, count: int) -> np.ndarray:
    """Decode the first `count` LEB128 varints of a uint8 array; raises IndexFormatError if short."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if len(buf) >= count and not (buf[:count] & 0x80).any():
        return buf[:count].astype(np.int64)
    ends = np.flatnonzero(buf < 0x80)[:count]
    if len(ends) < count:
        raise IndexFormatError("varint stream ends early")
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 5:
        raise IndexFormatError("varint longer than 5 bytes")
    values = (buf[starts] & 0x7F).astype(np.int64)
    for k in range(1, int(lengths.max())):
        sel = np.flatnonzero(lengths > k)
        values[sel] |= (buf[starts[sel] + k] & 0x7F).astype(np.int64) << (7 * k)
    return values


def _gaps(values: np.ndarray, group_starts: np.ndarray) -> np.ndarray:
    """Differences to the previous value, restarting (absolute) at each group start (uint32)."""
    gaps = values.copy()
    if len(gaps):
        gaps[1:] -= values[:-1]  # wraps across group boundaries; those are overwritten next
        gaps[group_starts] = values[group_starts]
    return gaps


def _group_ends(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Byte length of each group of consecutive varints, given per-value sizes and group counts (>= 1)."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.add.reduceat(sizes, starts, dtype=np.int64)


@dataclass(frozen=True)
class EncodedPostings:
    """Postings of consecutive terms, encoded: three byte streams and per-term byte lengths."""

    docs: np.ndarray
    freqs: np.ndarray
    positions: np.ndarray
    docs_len: np.ndarray
    freqs_len: np.ndarray
    positions_len: np.ndarray


def encode_postings(
    df: np.ndarray, docs: np.ndarray, tfs: np.ndarray, positions: np.ndarray | None, previous_doc: int = -1
) -> EncodedPostings:
    """Encode postings grouped by term (df per term; docs ascending within a term; positions
    ascending within a posting, `sum(tfs)` of them) as doc-id gaps, tfs and position gaps.

    `previous_doc` >= 0 continues a term whose earlier postings (up to that doc) were encoded by an
    earlier call: the bytes of the calls concatenated are those of one call over all postings.
    """
    df = np.asarray(df, dtype=np.int64)
    term_starts = np.concatenate(([0], np.cumsum(df)[:-1])) if len(df) else np.zeros(0, np.int64)
    gaps = _gaps(np.asarray(docs, dtype=np.uint32), term_starts)
    if previous_doc >= 0 and len(gaps):
        gaps[0] -= np.uint32(previous_doc)
    # the low bit of each doc-gap varint says "tf is 1"; only other tfs go to the freqs stream
    tfs = np.asarray(tfs, dtype=np.uint32)
    single = tfs == 1
    flagged = (gaps << 1) | single.view(np.uint8)
    gap_sizes = varint_sizes(flagged)
    tf_sizes = varint_sizes(tfs) * ~single
    if positions is None:
        pos_bytes = np.zeros(0, np.uint8)
        pos_len = np.zeros(len(df), np.int64)
    else:
        tfs64 = np.asarray(tfs, dtype=np.int64)
        posting_starts = np.concatenate(([0], np.cumsum(tfs64)[:-1])) if len(tfs64) else np.zeros(0, np.int64)
        pgaps = _gaps(np.asarray(positions, dtype=np.uint32), posting_starts)
        pos_sizes = varint_sizes(pgaps)
        pos_bytes = encode_varints(pgaps, pos_sizes)
        cf = np.add.reduceat(tfs64, term_starts) if len(tfs64) else np.zeros(len(df), np.int64)
        pos_len = _group_ends(pos_sizes, cf)
    return EncodedPostings(
        docs=encode_varints(flagged, gap_sizes),
        freqs=encode_varints(tfs[~single]),
        positions=pos_bytes,
        docs_len=_group_ends(gap_sizes, df),
        freqs_len=_group_ends(tf_sizes, df),
        positions_len=pos_len,
    )


def encode_strings(strings: list[str]) -> tuple[np.ndarray, bytes]:
    """Strings as (varint byte lengths, one UTF-8 blob); undecodable path bytes are escaped."""
    encoded = [s.encode("utf-8", "backslashreplace") for s in strings]
    return encode_varints(np.fromiter(map(len, encoded), np.int64, len(encoded))), b"".join(encoded)
