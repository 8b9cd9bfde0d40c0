"""Word hashes: names for ASCII words and run terms computed in numpy, with no Python object per word.

A word (a byte span of at most MAX_HASHED_WORD bytes) is named by a polynomial hash mod 2**64.
Workers use it to number the words of ASCII documents; the merge uses it to unite the runs'
vocabularies. Longer words go the string way, which keeps the hash well clear of the long crafted
strings (Thue-Morse) known to collide under a power-of-two modulus.
"""

from __future__ import annotations

import numpy as np

MAX_HASHED_WORD = 64
_POWERS = np.cumprod(np.full(MAX_HASHED_WORD, 0x9E3779B97F4A7C15, dtype=np.uint64))  # P**1 .. P**64


def span_hashes(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The hash of each byte span a[start:start + length] (lengths <= MAX_HASHED_WORD), as uint64.

    h = sum of byte_k * P**(k+1) over the span's bytes: a cumulative sum over the bytes weighted
    by the power of each byte's offset in its span (uint64 arithmetic wraps).
    """
    span_first = np.repeat(starts, lengths)
    offset = np.arange(len(span_first)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    weighted = a[span_first + offset].astype(np.uint64) * _POWERS[offset]
    sums = np.concatenate((np.zeros(1, dtype=np.uint64), np.cumsum(weighted, dtype=np.uint64)))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    return sums[bounds[1:]] - sums[bounds[:-1]]
