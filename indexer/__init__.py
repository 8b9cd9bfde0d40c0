"""indexer: build an inverted index of a text corpus in parallel, and search it with BM25.

>>> from indexer import build_index, search
>>> stats = build_index([Path("notes")], Path("notes.idx"))
>>> search(Path("notes.idx"), '"merge sort" parallel', k=5).hits

The names below are imported when first used, so that `import indexer` for a search does not
load the build machinery (and the other way round).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BuildOptions": "indexer.indexing.pipeline",
    "BuildStats": "indexer.indexing.pipeline",
    "build_index": "indexer.indexing.pipeline",
    "IndexerError": "indexer.errors",
    "Searcher": "indexer.retrieval.searcher",
    "open_index": "indexer.retrieval.searcher",
    "search": "indexer.retrieval.searcher",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
