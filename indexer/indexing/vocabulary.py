"""Vocabulary: the words and terms one worker process has met, kept from chunk to chunk.

A word is found by its hash (indexing/hashing.py) in an open-addressing table held in two numpy
arrays, so numbering a batch of tokens is a few vectorized passes and no Python per token. A word
met for the first time is named a term once, in a batch with the other new words of its batch:
when the analyzer would leave it as it is (ASCII, short enough, no stopword, no stemming) in
numpy, by its hash, otherwise by the analyzer. Terms are numbered in the order they are met and
found by their own hash in a second table; words and terms longer than the hash covers go through
dicts. The byte order of all terms is kept up to date as new ones come, so a run's sorted term
list is a filter over it rather than a sort of strings at every flush.
"""

from __future__ import annotations

import numpy as np

from indexer.analysis import Analyzer
from indexer.indexing.hashing import MAX_HASHED_WORD, distinct, padded, span_hashes

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # spreads hashes over the table's slots (Knuth)
_MISSING = np.int32(-2)
NOT_INDEXED = -1


class _HashTable:
    """uint64 hash (never 0) -> int32 value, open addressing with linear probing, in numpy."""

    def __init__(self) -> None:
        self.keys = np.zeros(1 << 12, dtype=np.uint64)  # 0: an empty slot
        self.values = np.zeros(1 << 12, dtype=np.int32)
        self.count = 0

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        bits = len(self.keys).bit_length() - 1
        return ((hashes * _FIBONACCI) >> np.uint64(64 - bits)).astype(np.int64)

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Each hash's value, or _MISSING; all hashes probe a step at a time."""
        mask = len(self.keys) - 1
        slots = self._slots(hashes)
        keys = self.keys[slots]
        out = np.where(keys == hashes, self.values[slots], _MISSING)
        probing = np.flatnonzero((keys != hashes) & (keys != 0))
        while len(probing):
            slots[probing] = (slots[probing] + 1) & mask
            keys = self.keys[slots[probing]]
            hit = keys == hashes[probing]
            out[probing[hit]] = self.values[slots[probing[hit]]]
            probing = probing[~hit & (keys != 0)]
        return out

    def insert(self, hashes: np.ndarray, values: np.ndarray) -> None:
        """Add distinct hashes that are not in the table yet; the table doubles to stay at most
        half full, which keeps probe sequences short."""
        self.count += len(hashes)
        if self.count * 2 > len(self.keys):
            size = len(self.keys)
            while self.count * 2 > size:
                size *= 2
            used = np.flatnonzero(self.keys)
            old_keys, old_values = self.keys[used], self.values[used]
            self.keys = np.zeros(size, dtype=np.uint64)
            self.values = np.zeros(size, dtype=np.int32)
            hashes, values = np.concatenate((old_keys, hashes)), np.concatenate((old_values, values))
        mask = len(self.keys) - 1
        slots = self._slots(hashes)
        waiting = np.arange(len(hashes))
        while len(waiting):
            at = slots[waiting]
            free = self.keys[at] == 0
            # of the hashes that reach the same free slot, the first takes it and the rest probe on
            taken, first = np.unique(at[free], return_index=True)
            placed = waiting[free][first]
            self.keys[taken] = hashes[placed]
            self.values[taken] = values[placed]
            left = np.ones(len(waiting), dtype=bool)
            left[np.flatnonzero(free)[first]] = False
            waiting = waiting[left]
            slots[waiting] = (slots[waiting] + 1) & mask


class Vocabulary:
    """word -> term number (NOT_INDEXED for stopwords and over-long words), and term number ->
    the term's UTF-8 bytes (byte order = code point order, as runs store terms)."""

    def __init__(self, analyzer: Analyzer, max_words: int):
        self.analyzer = analyzer
        self.max_words = max_words  # start afresh past this, so a worker's memory stays bounded
        self._words = _HashTable()  # word hash -> term number
        self._long_words: dict[str, int] = {}
        self._terms = _HashTable()  # term hash -> term number
        self._long_terms: dict[bytes, int] = {}
        self.terms: list[bytes] = []
        config = analyzer.config
        self._plain = config.stem == "none"  # may an ASCII word be its own term?
        stop = [w.encode("utf-8") for w in config.stopwords if len(w.encode("utf-8")) <= MAX_HASHED_WORD]
        self._stop_hashes = np.sort(_hashes_of(stop)) if stop else np.zeros(0, np.uint64)
        self._order = np.zeros(0, dtype=np.int64)  # term numbers in byte order, of the first _ordered
        self._sorted = np.zeros(0, dtype=object)  # their terms (bytes), in that order
        self._ordered = 0

    @property
    def full(self) -> bool:
        return self._words.count + len(self._long_words) > self.max_words

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
        new = [w for w in dict.fromkeys(words) if w not in self._long_words]
        if new:
            self._long_words.update(zip(new, self._number_terms(self.analyzer.analyze_words(new)).tolist()))
        out[long] = np.fromiter(map(self._long_words.__getitem__, words), np.int32, len(words))
        return out

    def _hashed(self, data: bytes, a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        hashes = span_hashes(a, starts, lengths)
        found = self._words.lookup(hashes)
        missing = np.flatnonzero(found == _MISSING)
        if len(missing):
            first, group = distinct(hashes[missing])
            first = missing[first]
            numbers = self._name_new_words(data, a, starts[first], lengths[first], hashes[first])
            self._words.insert(hashes[first], numbers)
            found[missing] = numbers[group]
        return found

    def _name_new_words(
        self, data: bytes, a: np.ndarray, starts: np.ndarray, lengths: np.ndarray, hashes: np.ndarray
    ) -> np.ndarray:
        """Term numbers for distinct words met for the first time."""
        numbers = np.empty(len(starts), dtype=np.int32)
        own = self._own_terms(a, starts, lengths, hashes)
        if own.any():  # the word is the term: its hash names it, its bytes are taken as they are
            numbers[own] = self._number_hashed_terms(hashes[own], data, starts[own], lengths[own])
        rest = np.flatnonzero(~own)
        if len(rest):
            spans = zip(starts[rest].tolist(), (starts[rest] + lengths[rest]).tolist())
            words = b"\n".join([data[s:e] for s, e in spans]).decode("utf-8").split("\n")  # no word holds "\n"
            numbers[rest] = self._number_terms(self.analyzer.analyze_words(words))
        return numbers

    def _own_terms(self, a: np.ndarray, starts: np.ndarray, lengths: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        """Which words the analyzer would leave as they are: ASCII (NFKC and case folding keep
        it), no longer than the term length limit, no stopword, and no stemming configured."""
        if not self._plain:
            return np.zeros(len(starts), dtype=bool)
        own = lengths <= self.analyzer.config.max_term_chars  # ASCII: bytes are characters
        if len(self._stop_hashes):
            own &= ~np.isin(hashes, self._stop_hashes)
        order = np.argsort(starts)
        bounds = np.empty(2 * len(starts), dtype=np.int64)
        bounds[0::2], bounds[1::2] = starts[order], (starts + lengths)[order]
        if len(bounds) and bounds[-1] == len(a):
            bounds = bounds[:-1]  # a span ending at the array's end: reduceat takes the rest
        highest = np.maximum.reduceat(a, bounds)[0::2] if len(bounds) else np.zeros(0, np.uint8)
        ascii_word = np.empty(len(starts), dtype=bool)
        ascii_word[order] = highest < 0x80
        return own & ascii_word

    def _number_hashed_terms(self, hashes: np.ndarray, data: bytes, starts: np.ndarray, lengths: np.ndarray):
        """Numbers of terms given by their hashes and bytes data[start:start + length], distinct,
        numbering those not met before."""
        numbers = self._terms.lookup(hashes)
        new = np.flatnonzero(numbers == _MISSING)
        if len(new):
            numbers[new] = np.arange(len(self.terms), len(self.terms) + len(new), dtype=np.int32)
            self._terms.insert(hashes[new], numbers[new])
            self.terms.extend([data[s:e] for s, e in zip(starts[new].tolist(), (starts + lengths)[new].tolist())])
        return numbers

    def _number_terms(self, terms: list[str]) -> np.ndarray:
        """Numbers of the terms the analyzer gave for new words ("": not indexed)."""
        encoded = [t.encode("utf-8") for t in terms]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        numbers = np.full(len(terms), NOT_INDEXED, dtype=np.int32)
        hashed = np.flatnonzero((lengths > 0) & (lengths <= MAX_HASHED_WORD))
        if len(hashed):
            blob = b"".join([encoded[i] for i in hashed.tolist()])
            starts = np.cumsum(lengths[hashed]) - lengths[hashed]
            hashes = span_hashes(padded(blob), starts, lengths[hashed])
            first, group = distinct(hashes)  # new words may share a term (case, NFKC, stemming)
            lengths = lengths[hashed]
            numbers[hashed] = self._number_hashed_terms(hashes[first], blob, starts[first], lengths[first])[group]
        for i, term in enumerate(encoded):
            if len(term) <= MAX_HASHED_WORD:
                continue
            if term not in self._long_terms:
                self._long_terms[term] = len(self.terms)
                self.terms.append(term)
            numbers[i] = self._long_terms[term]
        return numbers

    def in_byte_order(self, used: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """The term numbers in `used` (distinct) in the byte order of their terms, and the terms."""
        order = self._byte_order()
        keep = np.zeros(len(self.terms), dtype=bool)
        keep[used] = True
        picked = keep[order]
        return order[picked], self._sorted[picked].tolist()

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


def _hashes_of(words: list[bytes]) -> np.ndarray:
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    return span_hashes(padded(b"".join(words)), np.cumsum(lengths) - lengths, lengths)
