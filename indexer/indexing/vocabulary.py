"""Vocabulary: the words and terms one worker process has met, kept from chunk to chunk.

A word is found by its hash (indexing/hashing.py) in an open-addressing table held in two numpy
arrays, so numbering a batch of tokens is a few vectorized passes and no Python per token. A word
met for the first time is analyzed once, in a batch with the other new words of its batch; words
longer than the hash covers go through a dict. Terms are numbered in the order they are met; the
byte order of all terms is kept up to date as new ones come, so a run's sorted term list is a
filter over it rather than a sort of strings at every flush.
"""

from __future__ import annotations

import numpy as np

from indexer.analysis import Analyzer
from indexer.indexing.hashing import MAX_HASHED_WORD, distinct, span_hashes

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # spreads hashes over the table's slots (Knuth)
_MISSING = np.int32(-2)
NOT_INDEXED = -1


class Vocabulary:
    """word -> term number (NOT_INDEXED for stopwords and over-long words), and term number ->
    the term's UTF-8 bytes (byte order = code point order, as runs store terms)."""

    def __init__(self, analyzer: Analyzer, max_words: int):
        self.analyzer = analyzer
        self.max_words = max_words  # start afresh past this, so a worker's memory stays bounded
        self._keys = np.zeros(1 << 12, dtype=np.uint64)  # 0: an empty slot (no hash is 0)
        self._values = np.zeros(1 << 12, dtype=np.int32)
        self._words = 0
        self._long: dict[str, int] = {}
        self.terms: list[bytes] = []
        self._numbers: dict[str, int] = {"": NOT_INDEXED}
        self._order = np.zeros(0, dtype=np.int64)  # term numbers in byte order, of the first _ordered
        self._sorted = np.zeros(0, dtype=object)  # their terms (bytes), in that order
        self._ordered = 0

    @property
    def full(self) -> bool:
        return self._words + len(self._long) > self.max_words

    def term_numbers(self, data: bytes, a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The term number of each word data[start:end] (UTF-8), as int32. `a` is `data` as uint8
        with the padding span_hashes needs."""
        lengths = ends - starts
        longest = int(lengths.max()) if len(lengths) else 0
        if longest <= MAX_HASHED_WORD:
            return self._hashed(data, a, starts, lengths)
        out = np.empty(len(starts), dtype=np.int32)
        short = lengths <= MAX_HASHED_WORD
        out[short] = self._hashed(data, a, starts[short], lengths[short])
        long = np.flatnonzero(~short)
        words = [data[s:e].decode("utf-8") for s, e in zip(starts[long].tolist(), ends[long].tolist())]
        new = [w for w in dict.fromkeys(words) if w not in self._long]
        if new:
            self._long.update(zip(new, self._number_terms(self.analyzer.analyze_words(new))))
        out[long] = np.fromiter(map(self._long.__getitem__, words), np.int32, len(words))
        return out

    def _hashed(self, data: bytes, a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        hashes = span_hashes(a, starts, lengths)
        found = self._lookup(hashes)
        missing = np.flatnonzero(found == _MISSING)
        if len(missing):
            first, group = distinct(hashes[missing])
            first = missing[first]
            spans = zip(starts[first].tolist(), (starts[first] + lengths[first]).tolist())
            words = b"\n".join([data[s:e] for s, e in spans]).decode("utf-8").split("\n")  # no word holds "\n"
            numbers = self._number_terms(self.analyzer.analyze_words(words))
            self._insert(hashes[first], numbers)
            found[missing] = numbers[group]
        return found

    def _number_terms(self, terms: list[str]) -> np.ndarray:
        """Term numbers for the terms of new words, numbering the terms not met before."""
        numbers = self._numbers
        new = [t for t in dict.fromkeys(terms) if t not in numbers]
        if new:
            numbers.update(zip(new, range(len(self.terms), len(self.terms) + len(new))))
            self.terms.extend(t.encode("utf-8") for t in new)
        return np.fromiter(map(numbers.__getitem__, terms), np.int32, len(terms))

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        bits = len(self._keys).bit_length() - 1
        return ((hashes * _FIBONACCI) >> np.uint64(64 - bits)).astype(np.int64)

    def _lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Each hash's value, or _MISSING; linear probing, all hashes a step at a time."""
        mask = len(self._keys) - 1
        slots = self._slots(hashes)
        keys = self._keys[slots]
        out = np.where(keys == hashes, self._values[slots], _MISSING)
        probing = np.flatnonzero((keys != hashes) & (keys != 0))
        while len(probing):
            slots[probing] = (slots[probing] + 1) & mask
            keys = self._keys[slots[probing]]
            hit = keys == hashes[probing]
            out[probing[hit]] = self._values[slots[probing[hit]]]
            probing = probing[~hit & (keys != 0)]
        return out

    def _insert(self, hashes: np.ndarray, values: np.ndarray) -> None:
        """Add distinct hashes that are not in the table yet; the table doubles to stay at most
        half full, which keeps probe sequences short."""
        self._words += len(hashes)
        if self._words * 2 > len(self._keys):
            size = len(self._keys)
            while self._words * 2 > size:
                size *= 2
            used = np.flatnonzero(self._keys)
            old_keys, old_values = self._keys[used], self._values[used]
            self._keys = np.zeros(size, dtype=np.uint64)
            self._values = np.zeros(size, dtype=np.int32)
            hashes, values = np.concatenate((old_keys, hashes)), np.concatenate((old_values, values))
        mask = len(self._keys) - 1
        slots = self._slots(hashes)
        waiting = np.arange(len(hashes))
        while len(waiting):
            at = slots[waiting]
            free = self._keys[at] == 0
            # of the hashes that reach the same free slot, the first takes it and the rest probe on
            taken, first = np.unique(at[free], return_index=True)
            placed = waiting[free][first]
            self._keys[taken] = hashes[placed]
            self._values[taken] = values[placed]
            left = np.ones(len(waiting), dtype=bool)
            left[np.flatnonzero(free)[first]] = False
            waiting = waiting[left]
            slots[waiting] = (slots[waiting] + 1) & mask

    def in_byte_order(self, used: np.ndarray) -> np.ndarray:
        """The term numbers in `used` (distinct) in the byte order of their terms."""
        order = self._byte_order()
        keep = np.zeros(len(self.terms), dtype=bool)
        keep[used] = True
        return order[keep[order]]

    def _byte_order(self) -> np.ndarray:
        """All term numbers in byte order. New terms are sorted among themselves, then placed by
        a binary search in the sorted array of the others (bytes compared in C), so a flush pays
        for its new terms and a copy of two arrays, not for a sort of all terms."""
        terms, count = self.terms, len(self.terms)
        if self._ordered < count:
            new = sorted(range(self._ordered, count), key=terms.__getitem__)
            new_terms = np.empty(len(new), dtype=object)
            new_terms[:] = [terms[i] for i in new]
            at = np.searchsorted(self._sorted, new_terms)
            self._sorted = np.insert(self._sorted, at, new_terms)
            self._order = np.insert(self._order, at, new)
            self._ordered = count
        return self._order
