"""Word hashes: 64-bit names for words and run terms computed in numpy, no Python object per word.

A word (a byte span of at most MAX_HASHED_WORD bytes, never holding a NUL) is named by its bytes
themselves, read little-endian, when it has at most 8 of them: most words, and no two of those
can collide. A longer word mixes its 8-byte limbs into 64 bits. Workers name the words of a batch
of text this way; the merge names the runs' terms. Longer words go the string way, which keeps
the mix clear of the long crafted strings known to collide under a power-of-two modulus.
"""

from __future__ import annotations

import numpy as np

MAX_HASHED_WORD = 64
PAD = 8  # zero bytes a hashed array must hold after its last span: the last limb is read whole
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_M1 = np.uint64(0x9E3779B97F4A7C15)  # odd multipliers (golden ratio, murmur3's)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(29)


def span_hashes(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The name of each byte span a[start:start + length] (1 <= length <= MAX_HASHED_WORD) as
    uint64, never 0. `a` is uint8 and holds PAD bytes after the last span."""
    limbs = np.lib.stride_tricks.as_strided(a, (max(0, len(a) - 7), 8), (1, 1))  # the 8 bytes at each offset
    h = limbs[starts].view(np.uint64).ravel() & _MASKS[np.minimum(lengths, 8)]
    longer = np.flatnonzero(lengths > 8)
    k = 8
    while len(longer):
        limb = limbs[starts[longer] + k].view(np.uint64).ravel() & _MASKS[np.minimum(lengths[longer] - k, 8)]
        mixed = (h[longer] * _M1) ^ limb  # multiplying first spreads every byte before the next limb comes
        mixed = (mixed ^ (mixed >> _SHIFT)) * _M2
        h[longer] = mixed ^ (mixed >> np.uint64(32)) | np.uint64(1 << 63)  # long words: top bit set, never 0
        k += 8
        longer = longer[lengths[longer] > k]
    return h


def padded(blob: bytes | np.ndarray) -> np.ndarray:
    """`blob` as uint8 with PAD zero bytes after it, ready for span_hashes."""
    out = np.zeros(len(blob) + PAD, dtype=np.uint8)
    out[: len(blob)] = np.frombuffer(blob, dtype=np.uint8) if isinstance(blob, bytes) else blob
    return out


def distinct(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, group) of an array of hashes: the index of each distinct hash's first occurrence (in
    hash order), and each hash's group, an index into `first`. One unstable sort, which numpy
    vectorizes, instead of the stable one np.unique needs for first occurrences."""
    order = np.argsort(hashes)
    starts = np.empty(len(hashes), dtype=bool)
    starts[:1] = True
    np.not_equal(hashes[order[1:]], hashes[order[:-1]], out=starts[1:])
    group = np.empty(len(hashes), dtype=np.int32 if len(hashes) < 1 << 31 else np.int64)
    group[order] = np.cumsum(starts, dtype=group.dtype) - 1
    first = np.minimum.reduceat(order, np.flatnonzero(starts)) if len(hashes) else order
    return first, group
