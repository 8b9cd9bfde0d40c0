"""indexer: build an inverted index of a text corpus in parallel, and search it with BM25.

>>> from indexer import build_index, search
>>> stats = build_index([Path("notes")], Path("notes.idx"))
>>> search(Path("notes.idx"), '"merge sort" parallel', k=5).hits
"""

from indexer.build import BuildOptions, BuildStats, build_index
from indexer.errors import IndexerError
from indexer.search import Searcher, open_index, search

__version__ = "0.1.0"
__all__ = ["BuildOptions", "BuildStats", "IndexerError", "Searcher", "build_index", "open_index", "search"]
