"""Scoring: a term's weight in a document from tf, df, document length and collection statistics.

A scorer is chosen by name (`make_scorer("bm25", k1=0.9, b=0.4)`) and does no I/O. Besides weights
it gives an upper bound of a term's weight over documents whose tf and length lie in known limits,
which a pruning engine needs. BM25 is Lucene 9's BM25Similarity (also bm25s's "lucene" method),
with exact document lengths rather than Lucene's one-byte quantized norms:
    idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))
    w(t, d) = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
"""

from __future__ import annotations

import math

import numpy as np

from indexer.errors import ArgumentError
from indexer.retrieval.stats import CollectionStats

DEFAULT_K1 = 0.9
DEFAULT_B = 0.4


class BM25:
    """Okapi BM25 as Lucene 9 computes it. k1 >= 0 and 0 <= b <= 1, both finite."""

    name = "bm25"

    def __init__(self, k1: float = DEFAULT_K1, b: float = DEFAULT_B):
        if not (math.isfinite(k1) and k1 >= 0):
            raise ArgumentError(f"k1 must be a finite number of 0 or more, not {k1}")
        if not (math.isfinite(b) and 0 <= b <= 1):
            raise ArgumentError(f"b must be a finite number from 0 to 1, not {b}")
        self.k1, self.b = float(k1), float(b)

    def idf(self, df: int | np.ndarray, stats: CollectionStats) -> float | np.ndarray:
        """Lucene's BM25 idf, always positive."""
        return np.log1p((stats.documents - df + 0.5) / (df + 0.5))

    def norms(self, doc_lengths: np.ndarray, stats: CollectionStats) -> np.ndarray:
        """k1 * (1 - b + b * dl / avgdl) per document: the tf-independent part of the denominator."""
        dl = np.asarray(doc_lengths, dtype=np.float64)
        return self.k1 * (1.0 - self.b + self.b * dl / stats.avg_length)

    def weights(self, tfs: np.ndarray, norms: np.ndarray, idf: float) -> np.ndarray:
        """The weight of one term in the documents whose tfs and length norms are given."""
        tf = np.asarray(tfs, dtype=np.float64)
        return idf * tf / (tf + norms)

    def upper_bound(self, tfs: np.ndarray, lengths: np.ndarray, complete: np.ndarray, idf: float, stats):
        """A bound on the weight in each block from its impacts: (tf, length) pairs of its
        competitive frontier, shortest first (rows of `tfs` and `lengths`). The weight grows with
        tf and falls with length, so a posting is bounded by the frontier pair that beats it, and
        one between two kept pairs by the corner (the next pair's tf, this pair's length) when the
        block's frontier was not kept whole (`complete` False)."""
        norms = self.norms(lengths, stats)
        best = self.weights(tfs, norms, idf).max(axis=1)
        corners = self.weights(tfs[:, 1:], norms[:, :-1], idf).max(axis=1, initial=0.0)
        return np.where(complete, best, np.maximum(best, corners))


SCORERS = {BM25.name: BM25}


def make_scorer(name: str = BM25.name, **params) -> BM25:
    """The scorer called `name` with its parameters; raises ArgumentError for an unknown one."""
    if name not in SCORERS:
        raise ArgumentError(f"unknown scorer {name!r}; choose one of: {', '.join(SCORERS)}")
    return SCORERS[name](**params)
