"""Merge policy: which segments to merge after a commit, so that updates keep searches fast.

Logarithmic, like a counter in base MERGE_FACTOR: segments are kept oldest (largest) first, and
whenever the newest MERGE_FACTOR segments are of the same size class (live documents within a
factor MERGE_FACTOR) they become one segment of the next class. A run of updates of about the
same size thus keeps O(log n) segments. A segment whose documents are mostly deleted is rewritten
without them, and there are never more than MAX_SEGMENTS.
"""

from __future__ import annotations

import math

from indexer.store.meta import SegmentEntry

MERGE_FACTOR = 4
MAX_SEGMENTS = 10
DELETED_SHARE = 0.5  # a segment with more of its documents deleted than this is rewritten


def _size_class(entry: SegmentEntry) -> int:
    return int(math.log(max(1, entry.documents - entry.deleted), MERGE_FACTOR))


def plan_merge(entries: list[SegmentEntry], max_segments: int = MAX_SEGMENTS) -> list[int]:
    """Consecutive segment numbers to merge into one (an empty list: none; one number: rewrite it
    without its deleted documents)."""
    if len(entries) > max_segments:  # the newest (smallest) ones, down to the cap
        return list(range(max_segments - 1, len(entries)))
    tail = entries[-MERGE_FACTOR:]
    if len(tail) == MERGE_FACTOR and len({_size_class(e) for e in tail}) == 1:
        return list(range(len(entries) - MERGE_FACTOR, len(entries)))
    for n, entry in enumerate(entries):
        if entry.documents and entry.deleted > DELETED_SHARE * entry.documents:
            return [n]
    return []
