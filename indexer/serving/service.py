"""SearchService: what `indexer serve` answers, with no web framework in sight.

It holds one open index and a few Searchers, each on its own IndexReader (a Searcher remembers
looked-up terms and is not thread-safe), lent to one request at a time; checks a request's
parameters against the limits; and returns plain dicts for the JSON API: a page of search results,
the index's stats, one document's text read back from its recorded source.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from indexer.corpus.readers import STDIN, display_path
from indexer.errors import ArgumentError, IndexerError
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1
from indexer.retrieval.searcher import Searcher, open_index
from indexer.retrieval.snippets import SnippetMaker, source_text
from indexer.store.describe import index_stats

MAX_K = 100  # results per request
MAX_OFFSET = 10_000  # results skipped: deeper pages are refused
MAX_QUERY_CHARS = 1_000
DEFAULT_K = 10
DEFAULT_SEARCHERS = 4  # requests searched at once (each on its own reader: a few MB of decoded tables)


class NotFoundError(IndexerError):
    """No live document of the index has this id."""


class SourceGoneError(IndexerError):
    """The document is in the index, but its source moved or changed since the build."""


@dataclass(frozen=True)
class SearchRequest:
    """The parameters of one /search, checked against the limits."""

    query: str
    k: int = DEFAULT_K
    offset: int = 0
    syntax: bool = True
    snippets: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SearchRequest:
        """Read `q`, `k`, `offset`, `syntax` and `snippets` from a URL's query parameters.
        Raises ArgumentError naming the parameter when one is missing, malformed or over its limit."""
        query = params.get("q")
        if query is None:
            raise ArgumentError("missing parameter q (the query): /search?q=words")
        if len(query) > MAX_QUERY_CHARS:
            raise ArgumentError(f"q is {len(query):,} characters long; at most {MAX_QUERY_CHARS:,} are searched")
        return cls(
            query,
            _int_param(params, "k", DEFAULT_K, 0, MAX_K),
            _int_param(params, "offset", 0, 0, MAX_OFFSET),
            _flag_param(params, "syntax", True),
            _flag_param(params, "snippets", False),
        )


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ArgumentError(f"{name} must be a whole number from {low} to {high:,}, not {text[:20]!r}")
    value = int(text)
    if not low <= value <= high:
        raise ArgumentError(f"{name} must be from {low} to {high:,}, not {value:,}")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag_param(params: Mapping[str, str], name: str, default: bool) -> bool:
    text = params.get(name)
    if text is None or text == "":
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ArgumentError(f"{name} must be 1 or 0, not {text[:20]!r}")


class SearchService:
    """The answers of the JSON API for the index at `path`, safe to call from many threads.

    `searchers` Searchers (BM25 `k1`, `b`) are opened up front, each on its own reader; a call
    waits for a free one. Raises IndexFormatError (and the like) when `path` is not a readable
    index. The index is the one on disk when it was opened: an index replaced later (`indexer
    update`) is served as it was until the service is restarted.
    """

    def __init__(self, path: Path, searchers: int = DEFAULT_SEARCHERS, k1: float = DEFAULT_K1, b: float = DEFAULT_B):
        if searchers < 1:
            raise ArgumentError(f"searchers must be 1 or more, not {searchers}")
        self.path = Path(path)
        self.searchers = searchers
        self._free: queue.SimpleQueue[Searcher] = queue.SimpleQueue()
        opened: list[Searcher] = []
        try:
            for _ in range(searchers):
                opened.append(Searcher(open_index(self.path), k1, b))
            first = opened[0].reader
            # ids -> global doc ids of the live documents: the only documents /doc serves
            self._ids: dict[str, int] = {}
            for doc in first.live_docs().tolist():
                self._ids.setdefault(first.doc_name(doc), doc)
            self._stats = index_stats(self.path)
            self._read_options = SnippetMaker(first, opened[0].analyzer).options  # how the build read its sources
        except BaseException:
            for searcher in opened:
                searcher.reader.close()
            raise
        for searcher in opened:
            self._free.put(searcher)
        self._all = opened

    def close(self) -> None:
        """Close the readers; the service answers nothing afterwards."""
        for searcher in self._all:
            searcher.reader.close()
        self._all = []

    @contextmanager
    def _searcher(self) -> Iterator[Searcher]:
        searcher = self._free.get()
        try:
            yield searcher
        finally:
            self._free.put(searcher)

    def search(self, request: SearchRequest) -> dict:
        """One page of results, as `indexer search --json` prints them, with `offset`, `took_ms`
        (the search's own time, in milliseconds), `notes` (what the user should know about the
        query) and, for each hit with a snippet, `snippet_parts`: [text, is a query term] pairs,
        which render without guessing at `**` in the text itself. Raises QueryError for a
        malformed query."""
        with self._searcher() as searcher:
            started = time.perf_counter()
            result = searcher.search(
                request.query, k=request.k, offset=request.offset, snippets=request.snippets, syntax=request.syntax
            )
            took = time.perf_counter() - started
        document = result.to_dict()
        for row, hit in zip(document["results"], result.hits):
            if hit.snippet is not None:
                row["snippet_parts"] = [[text, marked] for text, marked in hit.snippet.parts]
        document.update(offset=request.offset, took_ms=took * 1000, notes=list(result.notes))
        return document

    def stats(self) -> dict:
        """What `indexer stats --json` says of the index, as it was opened."""
        return dict(self._stats)

    def document(self, doc: str) -> dict:
        """{"doc", "source", "offset", "length", "text"}: the indexed text of the live document
        whose id is `doc`, read back from the source the index records (never a path taken from
        `doc`). Raises NotFoundError for an id the index does not hold, SourceGoneError when the
        source moved or its bytes changed since the build."""
        number = self._ids.get(doc)
        if number is None:
            raise NotFoundError(f"no document {doc!r} in {self.path.name}")
        with self._searcher() as searcher:
            path, offset, length, crc, reader = searcher.reader.doc_source(number)
            text, why = source_text(path, offset, length, crc, reader, doc, self._read_options)
        if text is None and path == STDIN:
            raise SourceGoneError(f"document {doc!r}: {why}")
        if text is None:
            raise SourceGoneError(
                f"document {doc!r}: its source {display_path(path)} {why}; "
                "bring the index up to date with 'indexer update'"
            )
        return {"doc": doc, "source": display_path(path), "offset": offset, "length": length, "text": text}
