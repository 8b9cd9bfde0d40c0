"""BM25 as pure functions of df, N, tf, document length and average length.

The variant is Lucene 9's BM25Similarity (also bm25s's "lucene" method), with exact document
lengths rather than Lucene's one-byte quantized norms:
    idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))
    w(t, d) = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
"""

from __future__ import annotations

import numpy as np

DEFAULT_K1 = 0.9
DEFAULT_B = 0.4


def idf(df: int | np.ndarray, n: int) -> float | np.ndarray:
    """Lucene's BM25 idf, always positive."""
    return np.log1p((n - df + 0.5) / (df + 0.5))


def length_norms(doc_lengths: np.ndarray, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> np.ndarray:
    """k1 * (1 - b + b * dl / avgdl) for every document: the tf-independent part of the denominator."""
    dl = np.asarray(doc_lengths, dtype=np.float64)
    avgdl = dl.mean() if len(dl) and dl.mean() > 0 else 1.0
    return k1 * (1.0 - b + b * dl / avgdl)


def term_scores(tfs: np.ndarray, norms: np.ndarray, term_idf: float) -> np.ndarray:
    """BM25 weight of one term in the documents whose tfs and length norms are given."""
    tf = np.asarray(tfs, dtype=np.float64)
    return term_idf * tf / (tf + norms)
