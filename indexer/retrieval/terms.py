"""Query terms on the blocks of an index: where a term lies in each segment, its live df, and
batched decoding of any set of its blocks.

A term of a query is looked up once per segment; `QueryTerm` holds what every segment says of it
and the collection-wide df (deleted documents left out exactly). `decode` decodes chosen blocks
of several terms of one segment in one numpy pass, checking the pages it reads on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from indexer.store.codec import (
    BLOCK,
    COMPLETE,
    LENGTHS,
    MAX_TF,
    TermHeader,
    block_lengths,
    decode_blocks,
    decode_positions,
)
from indexer.store.index import IndexReader
from indexer.store.segment import PAGE, SegmentReader

UNKNOWN = np.iinfo(np.int64).max  # the last doc of a single block, not known before decoding it
SMALL_TERM_BYTES = 16 << 10  # a term's data this small is checked whole on first use


@dataclass
class SegmentTerm:
    """A term in one segment: its header and, for a term of several blocks, its skip data."""

    segment: int
    reader: SegmentReader
    term_id: int
    header: TermHeader

    @property
    def df(self) -> int:
        return self.header.df

    @property
    def nblocks(self) -> int:
        return self.header.nblocks

    @cached_property
    def blocks(self) -> dict[str, np.ndarray]:
        """Per block: offset (in the postings buffer), count, previous doc, last doc, max tf, min length."""
        h = self.header
        if h.skips is None:
            return {
                "offset": np.array([h.blocks_at]),
                "count": np.array([h.df]),
                "previous": np.array([-1]),
                "last": np.array([UNKNOWN]),
            }
        skips = h.skips
        last = skips["last_doc"].astype(np.int64)
        counts = np.full(len(skips), BLOCK, dtype=np.int64)
        counts[-1] = h.df - BLOCK * (len(skips) - 1)
        return {
            "offset": h.start + skips["data"].astype(np.int64),
            "count": counts,
            "previous": np.concatenate(([-1], last[:-1])),
            "last": last,
        }

    @cached_property
    def impacts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per block of a term of several blocks: (tfs, lengths, complete), its impacts (see
        store.codec): IMPACTS (tf, length) pairs each, float, a saturated tf as good as infinite."""
        skips = self.header.skips
        tfs = skips["tf"].astype(np.float64)
        tfs[tfs == MAX_TF] = 1e15
        codes = skips["length"]
        lengths = LENGTHS[(codes & ~np.uint8(COMPLETE)).astype(np.int64)].astype(np.float64)
        return tfs, lengths, (codes[:, 0] & COMPLETE) != 0


@dataclass
class QueryTerm:
    """A query term in the whole index: one SegmentTerm per segment holding it, its live df."""

    term: str
    parts: list[SegmentTerm] = field(default_factory=list)
    df: int = 0

    def in_segment(self, segment: int) -> SegmentTerm | None:
        for part in self.parts:
            if part.segment == segment:
                return part
        return None


def look_up(reader: IndexReader, term: str) -> QueryTerm | None:
    """The term in every segment of `reader`, or None when no live document holds it."""
    key = term.encode("utf-8")
    found = QueryTerm(term)
    for n, segment in enumerate(reader.segments):
        i = segment.term_id(key)
        if i is None:
            continue
        header = segment.header(i)
        found.parts.append(SegmentTerm(n, segment, i, header))
        found.df += header.df - (reader.deleted_df(n, i) if len(reader.deletions[n].docs) else 0)
    return found if found.df > 0 else None


def check_terms(segment: SegmentReader, parts: list[SegmentTerm], starts: np.ndarray, ends: np.ndarray) -> None:
    """Check the pages about to be read: a small term's whole data once (then never again), and
    for a big term the pages of the byte ranges [starts, ends) of the postings section."""
    done = segment.checked_terms
    big = False
    for part in parts:
        if part.term_id in done:
            continue
        start, end = part.header.start, segment.term_end(part.term_id)
        if end - start <= SMALL_TERM_BYTES:
            segment.check_postings(start, end)
            done.add(part.term_id)
        else:
            big = True
    if big and len(starts):
        base = segment.postings_at
        first, last = (base + starts) // PAGE, (base + np.maximum(ends, starts + 1) - 1) // PAGE
        segment.check_pages(np.unique(np.concatenate((first, last))))


def decode(segment: SegmentReader, chosen: list[tuple[SegmentTerm, np.ndarray | None]]):
    """Decode the chosen blocks (None: all) of several terms of one segment in one pass.
    Returns (docs, tfs, counts per term): postings term after term, each term's in doc order."""
    offsets, counts, previous, per_term = [], [], [], []
    for part, which in chosen:
        blocks = part.blocks
        if which is None:
            offsets.append(blocks["offset"])
            counts.append(blocks["count"])
            previous.append(blocks["previous"])
            per_term.append(part.df)
        else:
            offsets.append(blocks["offset"][which])
            counts.append(blocks["count"][which])
            previous.append(blocks["previous"][which])
            per_term.append(int(blocks["count"][which].sum()))
    offsets_all = np.concatenate(offsets)
    counts_all = np.concatenate(counts)
    buf = segment.postings_buffer
    check_terms(segment, [p for p, _ in chosen], offsets_all, offsets_all + 1)  # the width bytes first
    ends = offsets_all + block_lengths(buf, offsets_all, counts_all)
    check_terms(segment, [p for p, _ in chosen], offsets_all, ends)
    docs, tfs = decode_blocks(buf, segment.words, offsets_all, counts_all, np.concatenate(previous))
    return docs, tfs, np.array(per_term, dtype=np.int64)


def positions_of(segment: SegmentReader, part: SegmentTerm, which: np.ndarray | None):
    """(docs, tfs, offsets, positions) of the chosen blocks (None: all) of one term."""
    blocks = part.blocks
    which = np.arange(part.nblocks) if which is None else which
    offsets, counts = blocks["offset"][which], blocks["count"][which]
    docs, tfs, _ = decode(segment, [(part, which)])
    buf = segment.postings_buffer
    if part.header.skips is None:
        at = offsets + block_lengths(buf, offsets, counts)
        ends = np.array([segment.term_end(part.term_id)])
    else:
        every = part.header.start + part.header.skips["positions"].astype(np.int64)
        at = every[which]
        ends = np.append(every[1:], segment.term_end(part.term_id))[which]
    check_terms(segment, [part], at, ends)
    starts, positions = decode_positions(buf, segment.words, at, counts, tfs)
    return docs, tfs, starts, positions
