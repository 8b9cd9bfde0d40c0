"""Collection statistics: what scoring needs to know about the whole collection.

One record holds them, so that an index of several segments (or shards) scores exactly like one
index: the counts are those of the live documents of every part together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CollectionStats:
    documents: int  # N: live documents
    tokens: int  # the sum of their lengths in indexed tokens

    @property
    def avg_length(self) -> float:
        """avgdl; 1.0 for an empty collection, so that no length norm divides by zero."""
        return self.tokens / self.documents if self.documents and self.tokens else 1.0
