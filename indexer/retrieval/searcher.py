"""Searcher: a query on an open index -> the matching documents ranked by BM25.

Plain words rank every document that holds any of them (term at a time: only documents in the
touched posting lists are scored); boolean operators and phrases first narrow the matching set
(indexer.retrieval.query), then the scorer over the query's positive terms ranks what matched. A
batch of queries runs through `Searcher.search_many`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.errors import ArgumentError, QueryError
from indexer.retrieval.query import Node, is_plain, looks_plain, match_docs, parse_query, query_terms
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1, make_scorer
from indexer.retrieval.snippets import Snippet, SnippetMaker
from indexer.retrieval.stats import CollectionStats
from indexer.store.index import IndexReader, Postings

# Decoded postings and their BM25 weights are kept across the queries of a Searcher, up to about
# this many postings (~24 bytes each): a batch's common terms are decoded once, as bm25s computes
# every weight once at indexing time.
CACHE_POSTINGS = 4_000_000
CACHE_TERMS = 100_000


@dataclass(frozen=True)
class _Term:
    postings: Postings
    idf: float
    weights: np.ndarray  # the BM25 weight of the term in each of postings.docs


@dataclass(frozen=True)
class Hit:
    rank: int
    doc: str  # external id
    score: float
    doc_id: int  # internal dense id
    snippet: Snippet | None = None  # only when asked for

    def to_dict(self) -> dict:
        row = {"rank": self.rank, "doc": self.doc, "score": self.score}
        if self.snippet is not None:
            row["snippet"] = self.snippet.marked()
        return row


@dataclass(frozen=True)
class SearchResult:
    query: str
    total_hits: int
    hits: list[Hit]
    notes: tuple[str, ...] = ()  # what the user should know: a query searched as plain words, no words

    def to_dict(self) -> dict:
        return {"query": self.query, "total_hits": self.total_hits, "results": [h.to_dict() for h in self.hits]}


def open_index(path: Path) -> IndexReader:
    """Open an index file; raises IndexFormatError when it is not a readable index."""
    return IndexReader(Path(path))


class Searcher:
    """Answers queries on one open index with fixed BM25 parameters."""

    def __init__(self, reader: IndexReader, k1: float = DEFAULT_K1, b: float = DEFAULT_B, scorer: str = "bm25"):
        self.reader = reader
        self.k1, self.b = k1, b
        self.scorer = make_scorer(scorer, k1=k1, b=b)
        self.stats = CollectionStats(reader.doc_count, reader.meta.tokens)
        self.analyzer = Analyzer(AnalyzerConfig.from_dict(reader.meta.analyzer))
        self._cache: dict[str, _Term | None] = {}
        self._cached_postings = 0

    @cached_property
    def _norms(self) -> np.ndarray:
        return self.scorer.norms(self.reader.doc_lengths, self.stats)

    # the `source` protocol of indexer.retrieval.query
    @property
    def doc_count(self) -> int:
        return self.reader.doc_count

    def postings(self, term: str) -> Postings | None:
        entry = self._term(term)
        return None if entry is None else entry.postings

    def _term(self, term: str) -> _Term | None:
        """The term's postings and weights (None: not in the index), from the cache when there."""
        if term in self._cache:  # least recently used first: move a hit to the end
            entry = self._cache[term] = self._cache.pop(term)
            return entry
        postings = self.reader.postings(term)
        entry = None
        if postings is not None:
            idf = float(self.scorer.idf(len(postings.docs), self.stats))
            entry = _Term(postings, idf, self.scorer.weights(postings.tfs, self._norms[postings.docs], idf))
            self._cached_postings += len(postings.docs)
        while self._cache and (self._cached_postings > CACHE_POSTINGS or len(self._cache) >= CACHE_TERMS):
            oldest = self._cache.pop(next(iter(self._cache)))
            self._cached_postings -= 0 if oldest is None else len(oldest.postings.docs)
        self._cache[term] = entry
        return entry

    @cached_property
    def _snippets(self) -> SnippetMaker:
        return SnippetMaker(self.reader, self.analyzer)

    def search(self, query: str, k: int = 10, snippets: bool = False, syntax: bool = True) -> SearchResult:
        """The top `k` documents for `query`, each with a snippet of its text if `snippets`.

        `syntax=False` takes the query as plain words, operators and quotes included (natural
        language queries of test collections). Raises QueryError for a malformed query. A snippet
        whose source file moved or changed says so in its text (see indexer.retrieval.snippets), never an error.
        """
        return self._search(query, parse_query(query) if syntax and not looks_plain(query) else None, k, snippets)

    def search_many(
        self,
        queries: Iterable[tuple[str, str]],
        k: int = 10,
        snippets: bool = False,
        syntax: bool = True,
        strict: bool = True,
    ) -> Iterator[tuple[str, SearchResult]]:
        """Answer (query id, text) pairs in order, yielding (query id, result) for each.

        Every query is parsed before the first result is yielded. A malformed query raises
        QueryError naming its id (`query 'q7': ...`) before any output exists when `strict`;
        otherwise it is searched as plain words and its result carries a note saying so.
        `snippets` and `syntax` are as for `search`.
        """
        parsed: list[tuple[str, str, Node | None, tuple[str, ...]]] = []
        for qid, text in queries:
            node, notes = None, ()
            if syntax and not looks_plain(text):
                try:
                    node = parse_query(text)
                except QueryError as err:
                    if strict:
                        raise QueryError(f"query {qid!r}: {err}") from None
                    notes = (f"bad query ({err}); searched as plain words",)
            parsed.append((qid, text, node, notes))
        return ((qid, self._search(text, node, k, snippets, notes)) for qid, text, node, notes in parsed)

    def _search(
        self, query: str, node: Node | None, k: int, snippets: bool, notes: tuple[str, ...] = ()
    ) -> SearchResult:
        if k < 0:
            raise ArgumentError(f"k must be 0 or more, not {k}")
        n = self.reader.doc_count
        if node is None:  # plain words: every scored document matches
            terms = self.analyzer.terms(query)
            matched = None
        else:
            terms = query_terms(node, self.analyzer.positioned_terms)
            matched = None if is_plain(node) else match_docs(node, self, self.analyzer.positioned_terms)
        if not terms:
            notes = (*notes, NO_WORDS)
        # a term that occurs several times in the query counts as often, as in Lucene and bm25s
        weights = Counter(terms)
        idfs = dict.fromkeys(weights, 0.0)  # snippets weigh the terms by idf
        docs, contributions = [], []
        for term, times in weights.items():
            entry = self._term(term)
            if entry is None:
                continue
            idfs[term] = entry.idf
            docs.append(entry.postings.docs)
            contributions.append(entry.weights if times == 1 else entry.weights * times)
        if docs:  # one pass over all the postings; per doc, terms are still added in query order
            scores = np.bincount(np.concatenate(docs), np.concatenate(contributions), minlength=n)
        else:
            scores = np.zeros(n, dtype=np.float64)
        # every BM25 weight is > 0 (idf > 0, tf >= 1), so the docs holding a term are the nonzero scores
        candidates = np.flatnonzero(scores) if matched is None else np.asarray(matched, dtype=np.int64)
        top = _top_k(candidates, scores[candidates], k)
        hits = [
            Hit(
                rank=i + 1,
                doc=self.reader.doc_name(d),
                score=float(scores[d]),
                doc_id=d,
                snippet=self._snippets.snippet(d, idfs) if snippets else None,
            )
            for i, d in enumerate(top.tolist())
        ]
        return SearchResult(query, len(candidates), hits, notes)


NO_WORDS = "no searchable words in the query (only stopwords, punctuation or words too long to index)"


def _top_k(docs: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The k docs with the highest scores, ties broken by lower doc id."""
    if k == 0:
        return docs[:0]
    if len(docs) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:k]
    return docs[order]


def search(index: Path, query: str, k: int = 10, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> SearchResult:
    """Open `index`, answer one query, close it."""
    with open_index(index) as reader:
        return Searcher(reader, k1, b).search(query, k)
