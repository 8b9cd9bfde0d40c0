"""Describe: what an index file holds, as one flat dict for `indexer stats` and Python callers."""

from __future__ import annotations

from pathlib import Path

from indexer.corpus.skips import SkipReason
from indexer.store.index import IndexReader


def index_stats(path: Path) -> dict:
    """Counts, sizes and settings of the index at `path`; raises IndexFormatError if unreadable."""
    with IndexReader(Path(path)) as reader:
        meta = reader.meta
        size = Path(path).stat().st_size
        tokens = meta.tokens
        positions_bytes = sum(s.meta.positions_bytes for s in reader.segments)
        deleted_bytes = sum(e.length * e.deleted // max(1, e.documents) for e in meta.segments)
        return {
            "index": str(path),
            "format_version": reader.format_version,
            "segments": len(meta.segments),
            "documents": meta.documents,
            "deleted_documents": sum(e.deleted for e in meta.segments),
            "deleted_bytes": deleted_bytes,
            "terms": reader.term_count,
            "postings": sum(s.meta.postings for s in reader.segments),
            "tokens": tokens,
            "avg_doc_length": tokens / meta.documents if meta.documents else 0.0,
            "file_bytes": size,
            "positions": meta.positions,
            "positions_bytes": positions_bytes,
            "bytes_per_token": size / tokens if tokens else 0.0,
            "bytes_per_token_without_positions": (size - positions_bytes) / tokens if tokens else 0.0,
            "analyzer": meta.analyzer,
            "skipped": {code: n for code, n in meta.skipped.items() if not _kept(code)},  # not indexed
            "repaired": {code: n for code, n in meta.skipped.items() if _kept(code)},  # indexed all the same
        }


def _kept(code: str) -> bool:
    try:
        return SkipReason(code).kept
    except ValueError:  # a reason this version does not know: count it as skipped
        return False
