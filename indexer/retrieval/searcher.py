"""Searcher: a query on an open index -> the matching documents ranked by BM25.

It parses and analyzes the query, looks its terms up (remembering recent ones), runs it on an
engine (indexer.retrieval.engine: the block engine, or the exhaustive oracle) and turns the
ranking into hits with names and, when asked, snippets. A batch of queries runs through
`Searcher.search_many`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.errors import ArgumentError, QueryError
from indexer.retrieval.engine import BlockEngine, ExhaustiveEngine, Prepared
from indexer.retrieval.query import Node, is_plain, looks_plain, parse_query, query_terms
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1, make_scorer
from indexer.retrieval.snippets import Snippet, SnippetMaker
from indexer.retrieval.terms import QueryTerm, look_up
from indexer.store.index import IndexReader

CACHE_TERMS = 100_000  # looked-up terms a Searcher remembers (a batch meets its common words often)
ENGINES = ("blocks", "exhaustive")


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
        return SnippetMaker(self.reader, self.analyzer)

    def search(
        self,
        query: str,
        k: int = 10,
        snippets: bool = False,
        syntax: bool = True,
        count: bool = False,
        offset: int = 0,
    ) -> SearchResult:
        """The top `k` documents for `query`, each with a snippet of its text if `snippets`;
        `offset` skips the best `offset` first (a page of results: ranks offset+1..offset+k).

        `syntax=False` takes the query as plain words, operators and quotes included (natural
        language queries of test collections). The hit count is exact when it comes cheap, else a
        lower bound (total_hits_relation "gte"); `count` makes it exact. Raises QueryError for a
        malformed query. A snippet whose source moved or changed says so in its text (see
        indexer.retrieval.snippets), never an error.
        """
        node = parse_query(query) if syntax and not looks_plain(query) else None
        return self._search(query, node, k, snippets, count=count, offset=offset)

    def search_many(
        self,
        queries: Iterable[tuple[str, str]],
        k: int = 10,
        snippets: bool = False,
        syntax: bool = True,
        strict: bool = True,
        count: bool = False,
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
        return ((qid, self._search(text, node, k, snippets, notes, count)) for qid, text, node, notes in parsed)

    def _search(
        self,
        query: str,
        node: Node | None,
        k: int,
        snippets: bool,
        notes: tuple[str, ...] = (),
        count: bool = False,
        offset: int = 0,
    ) -> SearchResult:
        if k < 0:
            raise ArgumentError(f"k must be 0 or more, not {k}")
        if offset < 0:
            raise ArgumentError(f"offset must be 0 or more, not {offset}")
        if node is None:  # plain words: every scored document matches
            terms = self.analyzer.terms(query)
        else:
            terms = query_terms(node, self.analyzer.positioned_terms)
            node = None if is_plain(node) else node
        if not terms:
            notes = (*notes, NO_WORDS)
        # a term that occurs several times in the query counts as often, as in Lucene and bm25s
        prepared = Prepared(node, dict(Counter(terms)), self.analyzer.positioned_terms)
        ranking = self.engine.run(prepared, offset + k, count)
        hits = [
            Hit(
                rank=offset + i + 1,
                doc=self.reader.doc_name(d),
                score=s,
                doc_id=d,
                snippet=self._snippets.snippet(d, ranking.idfs) if snippets else None,
            )
            for i, (d, s) in enumerate(zip(ranking.docs[offset:].tolist(), ranking.scores[offset:].tolist()))
        ]
        return SearchResult(query, ranking.total, hits, notes, "eq" if ranking.exact else "gte")


NO_WORDS = "no searchable words in the query (only stopwords, punctuation or words too long to index)"


def search(
    index: Path, query: str, k: int = 10, k1: float = DEFAULT_K1, b: float = DEFAULT_B, **options
) -> SearchResult:
    """Open `index`, answer one query (options as Searcher.search takes them), close it."""
    with open_index(index) as reader:
        return Searcher(reader, k1, b).search(query, k, **options)
