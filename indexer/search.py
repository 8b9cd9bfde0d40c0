"""Search: a parsed query on an open index -> the matching documents ranked by BM25.

Plain words rank every document that holds any of them (term at a time: only documents in the
touched posting lists are scored); boolean operators and phrases first narrow the matching set
(indexer.query), then BM25 over the query's positive terms ranks what matched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer import scoring
from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.format import IndexReader
from indexer.query import Bool, Term, match_docs, parse_query, query_terms


@dataclass(frozen=True)
class Hit:
    rank: int
    doc: str  # external id
    score: float
    doc_id: int  # internal dense id


@dataclass(frozen=True)
class SearchResult:
    query: str
    total_hits: int
    hits: list[Hit]

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "total_hits": self.total_hits,
            "results": [{"rank": h.rank, "doc": h.doc, "score": h.score} for h in self.hits],
        }


def open_index(path: Path) -> IndexReader:
    """Open an index file; raises IndexFormatError when it is not a readable index."""
    return IndexReader(Path(path))


class Searcher:
    """Answers queries on one open index with fixed BM25 parameters."""

    def __init__(self, reader: IndexReader, k1: float = scoring.DEFAULT_K1, b: float = scoring.DEFAULT_B):
        self.reader = reader
        self.k1, self.b = k1, b
        self.analyzer = Analyzer(AnalyzerConfig.from_dict(reader.meta["analyzer"]))

    @cached_property
    def _norms(self) -> np.ndarray:
        return scoring.length_norms(self.reader.doc_lengths, self.k1, self.b)

    # the `source` protocol of indexer.query
    @property
    def doc_count(self) -> int:
        return self.reader.doc_count

    def postings(self, term: str):
        return self.reader.postings(term)

    def search(self, query: str, k: int = 10) -> SearchResult:
        """The top `k` documents for `query`; raises QueryError for a malformed query."""
        node = parse_query(query)
        n = self.reader.doc_count
        if _is_plain(node):
            # bag of words: a word repeated in the query counts again, as in Lucene and bm25s
            weights = Counter(self.analyzer.terms(query))
            matched = None
        else:
            weights = Counter(query_terms(node, self.analyzer.terms))
            matched = match_docs(node, self, self.analyzer.terms)
        scores = np.zeros(n, dtype=np.float64)
        hit = np.zeros(n, dtype=bool)
        for term, times in weights.items():
            postings = self.reader.postings(term)
            if postings is None:
                continue
            docs = postings.docs
            term_idf = scoring.idf(len(docs), n) * times
            scores[docs] += scoring.term_scores(postings.tfs, self._norms[docs], term_idf)
            hit[docs] = True
        candidates = np.flatnonzero(hit) if matched is None else np.asarray(matched, dtype=np.int64)
        top = _top_k(candidates, scores[candidates], k)
        hits = [
            Hit(rank=i + 1, doc=self.reader.doc_name(int(d)), score=float(scores[d]), doc_id=int(d))
            for i, d in enumerate(top.tolist())
        ]
        return SearchResult(query, len(candidates), hits)


def _is_plain(node) -> bool:
    """A query of plain words only (no operators, phrases, +/-): pure ranked retrieval."""
    if isinstance(node, Term):
        return True
    return isinstance(node, Bool) and all(c.occur == "should" and isinstance(c.node, Term) for c in node.clauses)


def _top_k(docs: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The k docs with the highest scores, ties broken by lower doc id."""
    if len(docs) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:k]
    return docs[order]


def search(
    index: Path, query: str, k: int = 10, k1: float = scoring.DEFAULT_K1, b: float = scoring.DEFAULT_B
) -> SearchResult:
    """Open `index`, answer one query, close it."""
    with open_index(index) as reader:
        return Searcher(reader, k1, b).search(query, k)
