"""Describe: what an index file holds, as one flat dict for `indexer stats` and Python callers."""

from __future__ import annotations

from pathlib import Path

from indexer.store.index import POSITIONS, IndexReader


def index_stats(path: Path) -> dict:
    """Counts, sizes and settings of the index at `path`; raises IndexFormatError if unreadable."""
    with IndexReader(Path(path)) as reader:
        meta = reader.meta
        size = Path(path).stat().st_size
        tokens = meta.tokens
        positions_bytes = reader.sections[POSITIONS].length
        return {
            "index": str(path),
            "format_version": reader.format_version,
            "documents": meta.documents,
            "terms": meta.terms,
            "postings": meta.postings,
            "tokens": tokens,
            "avg_doc_length": tokens / meta.documents if meta.documents else 0.0,
            "file_bytes": size,
            "positions": meta.positions,
            "positions_bytes": positions_bytes,
            "bytes_per_token": size / tokens if tokens else 0.0,
            "bytes_per_token_without_positions": (size - positions_bytes) / tokens if tokens else 0.0,
            "analyzer": meta.analyzer,
            "skipped": meta.skipped,
        }
