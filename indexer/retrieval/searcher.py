"""Searcher: a query on an open index -> the matching documents ranked by BM25.

It parses and analyzes the query, looks its terms up (remembering recent ones), runs it on an
engine (indexer.retrieval.engine: the block engine, or the exhaustive oracle) and turns the
ranking into hits with names and, when asked, snippets. A batch of queries runs through
`Searcher.search_many`.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.errors import ArgumentError, QueryError
from indexer.retrieval.engine import BlockEngine, ExhaustiveEngine, Prepared
from indexer.retrieval.query import Node, is_plain, looks_plain, parse_query, prefixes, query_terms
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1, make_scorer
from indexer.retrieval.stats import CollectionStats
from indexer.retrieval.terms import QueryTerm, decode, look_up
from indexer.store.index import IndexReader

if TYPE_CHECKING:
    from indexer.retrieval.snippets import Snippet, SnippetMaker

CACHE_TERMS = 100_000  # looked-up terms a Searcher remembers (a batch meets its common words often)
ENGINES = ("blocks", "exhaustive")


@dataclass(frozen=True)
class TermScore:
    """One query term's part in a hit's score (`--explain`): BM25's inputs and the weight they give."""

    term: str
    times: int  # how often the query holds the term
    tf: int
    df: int  # live documents holding it, in the whole index
    idf: float
    doc_length: int
    avg_doc_length: float
    weight: float  # times * idf * tf / (tf + k1 * (1 - b + b * doc_length / avg_doc_length))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Hit:
    rank: int
    doc: str  # external id
    score: float
    doc_id: int  # internal dense id
    snippet: Snippet | None = None  # only when asked for
    explain: tuple[TermScore, ...] | None = None  # only when asked for: the terms' parts, summing to score

    def to_dict(self) -> dict:
        row = {"rank": self.rank, "doc": self.doc, "score": self.score}
        if self.snippet is not None:
            row["snippet"] = self.snippet.marked()
        if self.explain is not None:
            row["explain"] = [t.to_dict() for t in self.explain]
        return row


@dataclass(frozen=True)
class SearchResult:
    query: str
    total_hits: int  # matching documents: exact when total_hits_relation is "eq", else at least this many
    hits: list[Hit]
    notes: tuple[str, ...] = ()  # what the user should know: a query searched as plain words, no words
    total_hits_relation: str = "eq"  # "eq" or "gte", as Elasticsearch says it

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "total_hits": self.total_hits,
            "total_hits_relation": self.total_hits_relation,
            "results": [h.to_dict() for h in self.hits],
        }


def open_index(path: Path) -> IndexReader:
    """Open an index file; raises IndexFormatError when it is not a readable index."""
    return IndexReader(Path(path))


class Searcher:
    """Answers queries on one open index with fixed BM25 parameters.

    `engine` is "blocks" (pruning, the default) or "exhaustive" (every posting decoded: the
    oracle the tests hold the block engine to). Raises ArgumentError for k1 or b out of range.
    """

    def __init__(
        self,
        reader: IndexReader,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        scorer: str = "bm25",
        engine: str = "blocks",
    ):
        if engine not in ENGINES:
            raise ArgumentError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
        self.reader = reader
        self.k1, self.b = k1, b
        self.scorer = make_scorer(scorer, k1=k1, b=b)
        self.analyzer = Analyzer(AnalyzerConfig.from_dict(reader.meta.analyzer))
        self._terms: OrderedDict[str, QueryTerm | None] = OrderedDict()
        if engine == "blocks":
            self.engine = BlockEngine(reader, self.scorer, self._look_up)
        else:
            self.engine = ExhaustiveEngine(reader, self.scorer)

    def _look_up(self, term: str) -> QueryTerm | None:
        """A term in every segment (None: no live document holds it), the recent ones remembered."""
        if term in self._terms:
            self._terms.move_to_end(term)
            return self._terms[term]
        found = look_up(self.reader, term)
        self._terms[term] = found
        if len(self._terms) > CACHE_TERMS:
            self._terms.popitem(last=False)
        return found

    @cached_property
    def _snippets(self) -> SnippetMaker:
        from indexer.retrieval.snippets import SnippetMaker  # with --snippets only: it imports the readers

        return SnippetMaker(self.reader, self.analyzer)

    def search(
        self,
        query: str,
        k: int = 10,
        snippets: bool = False,
        syntax: bool = True,
        count: bool = False,
        offset: int = 0,
        explain: bool = False,
    ) -> SearchResult:
        """The top `k` documents for `query` after the first `offset` (paging), each with a snippet
        of its text if `snippets` and its score's parts if `explain`.

        `syntax=False` takes the query as plain words, operators and quotes included (natural
        language queries of test collections). The hit count is exact when it comes cheap, else a
        lower bound (total_hits_relation "gte"); `count` makes it exact. Raises QueryError for a
        malformed query (or a prefix matching too many terms), ArgumentError for a negative k or
        offset. A snippet whose source moved or changed says so in its text, never an error.
        """
        node = parse_query(query) if syntax and not looks_plain(query) else None
        return self._search(query, node, k, _Wants(snippets, count, offset, explain))

    def search_many(
        self,
        queries: Iterable[tuple[str, str]],
        k: int = 10,
        snippets: bool = False,
        syntax: bool = True,
        strict: bool = True,
        count: bool = False,
        offset: int = 0,
        explain: bool = False,
    ) -> Iterator[tuple[str, SearchResult]]:
        """Answer (query id, text) pairs in order, yielding (query id, result) for each.

        Every query is parsed before the first result is yielded. A malformed query raises
        QueryError naming its id (`query 'q7': ...`) before any output exists when `strict`;
        otherwise it is searched as plain words and its result carries a note saying so.
        The other options are as for `search`.
        """
        wants = _Wants(snippets, count, offset, explain)
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
        return ((qid, self._search(text, node, k, wants, notes)) for qid, text, node, notes in parsed)

    def _search(
        self, query: str, node: Node | None, k: int, wants: _Wants, notes: tuple[str, ...] = ()
    ) -> SearchResult:
        if k < 0 or wants.offset < 0:
            raise ArgumentError(f"k and offset must be 0 or more, not {k} and {wants.offset}")
        unmatched: list[str] = []
        if node is None:  # plain words: every scored document matches
            terms = self.analyzer.terms(query)
        else:
            terms = query_terms(node, self.analyzer.positioned_terms, self.expand)
            unmatched = [p for p in prefixes(node) if not self.expand(p)]
            node = None if is_plain(node) else node
        if unmatched:
            notes = (*notes, f"no index term starts with {', '.join(f'{p}*' for p in unmatched)}")
        elif not terms:
            notes = (*notes, NO_WORDS)
        # a term that occurs several times in the query counts as often, as in Lucene and bm25s
        prepared = Prepared(node, dict(Counter(terms)), self.analyzer.positioned_terms, self.expand)
        ranking = self.engine.run(prepared, k + wants.offset, wants.count)
        pairs = list(zip(ranking.docs.tolist(), ranking.scores.tolist()))[wants.offset :]
        names = self.reader.names_of([d for d, _ in pairs])
        hits = [
            Hit(
                rank=wants.offset + i + 1,
                doc=names[i],
                score=s,
                doc_id=d,
                snippet=self._snippets.snippet(d, ranking.idfs) if wants.snippets else None,
                explain=self._explain(prepared, d) if wants.explain else None,
            )
            for i, (d, s) in enumerate(pairs)
        ]
        return SearchResult(query, ranking.total, hits, notes, "eq" if ranking.exact else "gte")

    def expand(self, prefix: str) -> list[str]:
        """The index terms that start with `prefix` (normalized and lower-cased like a word, not
        stemmed), sorted; raises QueryError past MAX_EXPANSION of them."""
        key = self.analyzer.normalized(prefix).lower()
        key = unicodedata.normalize("NFKC", key).casefold() if not key.isascii() else key
        lo = key.encode("utf-8")
        hi = lo + b"\xff"  # above every UTF-8 string that starts with lo: UTF-8 has no 0xff byte
        found: set[str] = set()
        for segment in self.reader.segments:
            first, last = segment.term_range(lo, hi)
            if last - first > MAX_EXPANSION or len(found) + last - first > 2 * MAX_EXPANSION:
                raise QueryError(f"{prefix}* matches more than {MAX_EXPANSION:,} terms; give more letters")
            found.update(segment.term(i) for i in range(first, last))
        if len(found) > MAX_EXPANSION:
            raise QueryError(f"{prefix}* matches more than {MAX_EXPANSION:,} terms; give more letters")
        return sorted(found, key=lambda t: t.encode("utf-8"))

    def _explain(self, prepared: Prepared, doc: int) -> tuple[TermScore, ...]:
        """Each scoring term's part in a document's score, in the order the score adds them."""
        n, local = self.reader.locate(doc)
        stats = self.engine_stats
        length = int(self.reader.segments[n].doc_lengths[local])
        parts = []
        for term, times in prepared.weights.items():
            found = self._look_up(term)
            part = found.in_segment(n) if found is not None else None
            if part is None:
                continue
            docs, tfs, _ = decode(self.reader.segments[n], [(part, _block_of(part, local))])
            at = np.searchsorted(docs, local)
            if at == len(docs) or docs[at] != local:
                continue
            tf = int(tfs[at])
            idf = float(self.scorer.idf(found.df, stats))
            weight = float(self.scorer.weights(np.array([tf]), self.scorer.norms(np.array([length]), stats), idf)[0])
            parts.append(TermScore(term, times, tf, found.df, idf, length, stats.avg_length, weight * times))
        return tuple(parts)

    @property
    def engine_stats(self) -> CollectionStats:
        return CollectionStats(self.reader.doc_count, self.reader.meta.tokens)


@dataclass(frozen=True)
class _Wants:
    snippets: bool = False
    count: bool = False
    offset: int = 0
    explain: bool = False


def _block_of(part, doc: int) -> np.ndarray | None:
    if part.nblocks == 1:
        return None
    at = int(np.searchsorted(part.blocks["last"], doc))
    return np.array([min(at, part.nblocks - 1)])


MAX_EXPANSION = 1000  # terms a prefix may expand to


NO_WORDS = "no searchable words in the query (only stopwords, punctuation or words too long to index)"


def search(
    index: Path, query: str, k: int = 10, k1: float = DEFAULT_K1, b: float = DEFAULT_B, **options
) -> SearchResult:
    """Open `index`, answer one query (options as Searcher.search takes them), close it."""
    with open_index(index) as reader:
        return Searcher(reader, k1, b).search(query, k, **options)
