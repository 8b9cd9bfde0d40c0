"""Compaction: what deleting documents costs a segment's df, and merging segments into one.

`deleted_df` counts, for every term of a segment, the postings that belong to given documents,
decoding only the blocks that can hold them (a term of one block always: it says nothing of its
doc range), so that df can leave deleted documents out exactly. `merge_segments` rewrites several
segments as one, in order, without their deleted documents and out-of-date files: doc ids are
renumbered, every term's postings re-encoded, a very common word in pieces (bounded memory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from indexer.store.codec import (
    BLOCK,
    SKIP,
    TermEncoder,
    block_lengths,
    decode_blocks,
    decode_positions,
    encode_terms,
)
from indexer.store.index import Deletions, IndexReader
from indexer.store.segment import DOC_NAMES, FILE, SOURCE, SegmentColumns, SegmentMeta, SegmentReader, TermPart

BATCH_POSTINGS = 1 << 20  # postings + positions decoded at once while merging


@dataclass(frozen=True)
class TermTable:
    """Where the terms of a segment lie, read for all of them at once."""

    start: np.ndarray  # of each term's data, in the postings buffer
    df: np.ndarray
    blocks_at: np.ndarray  # where each term's first block starts


def term_headers(segment: SegmentReader, ids: np.ndarray) -> TermTable:
    """The varint df of the terms `ids`, decoded for all at once from 8-byte words."""
    start = segment.term_data[ids].astype(np.int64)
    word = segment.words[start].astype(np.uint64) if len(start) else np.zeros(0, np.uint64)
    df = np.zeros(len(start), dtype=np.int64)
    length = np.zeros(len(start), dtype=np.int64)
    going = np.ones(len(start), dtype=bool)
    for k in range(5):  # df < 2**32 takes at most five bytes
        byte = ((word >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)
        df[going] |= (byte[going] & 0x7F) << (7 * k)
        length[going] += 1
        going &= byte >= 0x80
    nblocks = (df + BLOCK - 1) // BLOCK
    return TermTable(start, df, start + length + np.where(nblocks > 1, nblocks * SKIP.itemsize, 0))


def term_blocks(segment: SegmentReader, terms: TermTable) -> dict[str, np.ndarray]:
    """Every block of the terms: its term (index into `terms`), offset, count, previous and last doc."""
    nblocks = (terms.df + BLOCK - 1) // BLOCK
    term = np.repeat(np.arange(len(terms.df)), nblocks)
    index = np.arange(len(term)) - np.repeat(np.cumsum(nblocks) - nblocks, nblocks)
    count = np.minimum(BLOCK, terms.df[term] - index * BLOCK)
    multi = nblocks[term] > 1
    skip_at = (terms.blocks_at - nblocks * SKIP.itemsize)[term] + index * SKIP.itemsize
    word = segment.words[skip_at[multi]].astype(np.uint64)  # last_doc and data offset, side by side
    offset = terms.blocks_at[term].copy()
    last = np.full(len(term), np.iinfo(np.int64).max)
    offset[multi] = terms.start[term][multi] + (word >> np.uint64(32)).astype(np.int64)
    last[multi] = (word & np.uint64(0xFFFFFFFF)).astype(np.int64)
    previous = np.full(len(term), -1, dtype=np.int64)
    later = np.flatnonzero(index > 0)
    previous[later] = last[later - 1]
    positions = offset + block_lengths(segment.postings_buffer, offset, count)  # a single block's follow it
    word = segment.words[skip_at[multi] + 8].astype(np.uint64)
    positions[multi] = terms.start[term][multi] + (word & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return {"term": term, "offset": offset, "count": count, "previous": previous, "last": last, "positions": positions}


def deleted_df(segment: SegmentReader, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(term numbers, counts): for each term of the segment holding any of `docs` (sorted local
    ids), how many of its postings belong to them."""
    docs = np.asarray(docs, dtype=np.int64)
    segment.check(0, segment.paged_end)  # every term's header is read: check it all first
    terms_out, counts_out = [], []
    step = 1 << 16
    for first in range(0, segment.term_count, step):
        last = min(segment.term_count, first + step)
        blocks = term_blocks(segment, term_headers(segment, np.arange(first, last)))
        # a block can hold one of the docs only if one lies between its previous and last doc
        inside = np.searchsorted(docs, blocks["last"], side="right") - np.searchsorted(
            docs, blocks["previous"], side="right"
        )
        chosen = np.flatnonzero(inside > 0)
        for part in np.array_split(chosen, max(1, int(blocks["count"][chosen].sum()) // BATCH_POSTINGS + 1)):
            if not len(part):
                continue
            got, _ = decode_blocks(
                segment.postings_buffer,
                segment.words,
                blocks["offset"][part],
                blocks["count"][part],
                blocks["previous"][part],
            )
            hit = np.isin(got, docs)
            term = np.repeat(blocks["term"][part], blocks["count"][part])[hit] + first
            found, counts = np.unique(term, return_counts=True)
            terms_out.append(found)
            counts_out.append(counts)
    if not terms_out:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    terms, counts = np.concatenate(terms_out), np.concatenate(counts_out)
    order = np.argsort(terms, kind="stable")
    unique, starts = np.unique(terms[order], return_index=True)
    return unique.astype(np.uint32), np.add.reduceat(counts[order], starts).astype(np.uint32)


def merge_segments(reader: IndexReader, numbers: list[int], work_dir: str) -> SegmentColumns:
    """One segment holding the live documents of segments `numbers` (in that order), written to
    columns whose term data lies in a file under `work_dir`."""
    segments = [reader.segments[n] for n in numbers]
    gone = [reader.deletions[n] for n in numbers]
    for segment in segments:
        segment.check(0, segment.paged_end)  # everything is read: check it all first
    remaps, live_docs, base = [], [], 0
    for segment, deletions in zip(segments, gone):
        live = np.ones(segment.doc_count, dtype=bool)
        live[deletions.docs.astype(np.int64)] = False
        remap = np.full(segment.doc_count, -1, dtype=np.int64)
        remap[live] = base + np.arange(int(live.sum()))
        base += int(live.sum())
        remaps.append(remap)
        live_docs.append(np.flatnonzero(live))
    columns = _documents(segments, gone, live_docs)
    data_path = os.path.join(work_dir, "merged-terms.bin")
    with open(data_path, "wb") as out:
        terms, lengths, postings, positions_bytes = _merge_terms(segments, remaps, reader.has_positions, out, work_dir)
    encoded = [t.encode("utf-8") for t in terms]
    part = TermPart(
        np.fromiter(map(len, encoded), np.int64, len(encoded)),
        np.frombuffer(b"".join(encoded), dtype=np.uint8),
        lengths,
        [data_path],
    )
    total = int(lengths.sum()) + len(part.terms)
    wide = max(total, sum(len(n) for n in columns["names"]), int(columns["max_offset"])) >= 1 << 32
    meta = SegmentMeta(
        documents=base,
        terms=len(terms),
        postings=postings,
        tokens=sum(int(x.sum(dtype=np.int64)) for x in columns["lengths"]),
        positions=reader.has_positions,
        files=len(columns["files"]),
        readers=columns["readers"],
        wide=wide,
        positions_bytes=positions_bytes,
    )
    return SegmentColumns(
        meta=meta,
        doc_lengths=columns["lengths"],
        name_lengths=columns["name_lengths"],
        names=columns["names"],
        sources=columns["sources"],
        files=columns["files"],
        file_names=columns["file_names"],
        terms=[part],
    )


def _documents(segments, gone: list[Deletions], live_docs) -> dict:
    readers = sorted({name for s in segments for name in s.meta.readers})
    out = {"lengths": [], "name_lengths": [], "names": [], "sources": [], "file_names": [], "max_offset": 0}
    files = []
    base = 0
    for segment, deletions, live in zip(segments, gone, live_docs):
        out["lengths"].append(np.asarray(segment.doc_lengths)[live])
        offsets = segment.name_offsets.astype(np.int64)
        starts, lengths = offsets[live], offsets[live + 1] - offsets[live]
        blob = segment.section(DOC_NAMES)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out["name_lengths"].append(lengths)
        out["names"].append(blob[np.repeat(starts, lengths) + within])
        rows = np.zeros(len(live), dtype=SOURCE)
        source = segment.sources[live]
        rows["offset"], rows["length"], rows["crc"] = source["offset"], source["length"], source["crc"]
        out["sources"].append(rows)
        out["max_offset"] = max(out["max_offset"], int(rows["offset"].max(initial=0)))
        table = segment.files
        keep = np.ones(len(table), dtype=bool)
        keep[deletions.files.astype(np.int64)] = False
        # a file's first doc in the new numbering: where its old first doc's live predecessors end
        first_new = base + np.searchsorted(live, table["first_doc"].astype(np.int64))
        base += len(live)
        for i in np.flatnonzero(keep).tolist():
            reader = readers.index(segment.meta.readers[int(table["reader"][i])])
            files.append((int(first_new[i]), reader, int(table["size"][i]), int(table["mtime_ns"][i])))
            out["file_names"].append(os.fsencode(segment.file_names[i]))
    out["files"] = np.array(files, dtype=FILE)
    out["readers"] = tuple(readers)
    return out


def _merge_terms(segments, remaps, positions: bool, out, work_dir: str):
    """Write every term with a live posting, in byte order, to `out`; returns (terms, data lengths,
    postings, positions bytes)."""
    vocab = sorted({t for s in segments for t in s.terms()}, key=lambda t: t.encode("utf-8"))
    ids = [{t: i for i, t in enumerate(s.terms())} for s in segments]
    kept, lengths, postings, positions_bytes = [], [], 0, 0
    doc_lengths = np.concatenate([np.asarray(s.doc_lengths)[r >= 0] for s, r in zip(segments, remaps)])
    batch: list[str] = []
    weight = 0

    def flush() -> None:
        nonlocal postings, positions_bytes, weight
        if batch:
            df, docs, tfs, pos = _gather(segments, ids, remaps, batch, positions)
            live = df > 0
            if live.any():
                encoded = encode_terms(df[live], docs, tfs, pos, doc_lengths)
                encoded.data.tofile(out)
                lengths.append(encoded.lengths)
                kept.extend(t for t, keep in zip(batch, live.tolist()) if keep)
                postings += int(df.sum())
                positions_bytes += encoded.positions_bytes
        batch.clear()
        weight = 0

    for term in vocab:
        size = sum(_weight(s, d[term]) for s, d in zip(segments, ids) if term in d)
        if size > BATCH_POSTINGS:
            flush()
            written, df, pos_bytes = _merge_heavy(segments, ids, remaps, term, positions, doc_lengths, out, work_dir)
            if df:
                kept.append(term)
                lengths.append(np.array([written]))
                postings += df
                positions_bytes += pos_bytes
            continue
        batch.append(term)
        weight += size
        if weight > BATCH_POSTINGS:
            flush()
    flush()
    return kept, np.concatenate(lengths) if lengths else np.zeros(0, np.int64), postings, positions_bytes


def _weight(segment: SegmentReader, i: int) -> int:
    """Bytes of a term's data in a segment: what decoding it costs (postings and positions)."""
    return 4 * (segment.term_end(i) - int(segment.term_data[i]))


def _decode(segment: SegmentReader, blocks: dict, remap: np.ndarray, positions: bool):
    """The live postings of these blocks, renumbered: (docs, tfs, positions or None, live mask)."""
    buf = segment.postings_buffer
    docs, tfs = decode_blocks(buf, segment.words, blocks["offset"], blocks["count"], blocks["previous"])
    pos = None
    if positions:
        _, pos = decode_positions(buf, segment.words, blocks["positions"], blocks["count"], tfs)
    new = remap[docs]
    live = new >= 0
    if positions and not live.all():
        pos = pos[np.repeat(live, tfs)]
    return new[live], tfs[live], pos, live


def _gather(segments, ids, remaps, batch: list[str], positions: bool):
    """The live postings of a batch of terms, term after term, and segment after segment within
    a term: (df per term, docs, tfs, positions or None)."""
    parts = []  # per segment: (batch index of each posting, docs, tfs, positions)
    for segment, d, remap in zip(segments, ids, remaps):
        present = [(j, d[t]) for j, t in enumerate(batch) if t in d]
        if not present:
            continue
        which = np.array([j for j, _ in present])
        blocks = term_blocks(segment, term_headers(segment, np.array([i for _, i in present])))
        docs, tfs, pos, live = _decode(segment, blocks, remap, positions)
        term = np.repeat(which[blocks["term"]], blocks["count"])[live]
        parts.append((term, docs, tfs, pos))
    term = np.concatenate([p[0] for p in parts])
    order = np.argsort(term, kind="stable")  # term after term; segments stay in order within one
    docs = np.concatenate([p[1] for p in parts])[order]
    tfs_all = np.concatenate([p[2] for p in parts])
    tfs = tfs_all[order]
    pos = None
    if positions:
        flat = np.concatenate([p[3] for p in parts])
        first = np.cumsum(tfs_all) - tfs_all
        within = np.arange(int(tfs.sum())) - np.repeat(np.cumsum(tfs) - tfs, tfs)
        pos = flat[np.repeat(first[order], tfs) + within]
    df = np.bincount(term, minlength=len(batch)).astype(np.int64)
    return df, docs, tfs, pos


def _merge_heavy(segments, ids, remaps, term, positions: bool, doc_lengths, out, work_dir: str):
    """A term too big to hold, block range by block range through a TermEncoder."""
    names = ("heavy-blocks.bin", "heavy-positions.bin")
    spools = [open(os.path.join(work_dir, name), "w+b") for name in names]
    encoder = TermEncoder(doc_lengths, positions, spools[0].write, spools[1].write)
    step = max(1, BATCH_POSTINGS // BLOCK // 8)
    for segment, d, remap in zip(segments, ids, remaps):
        if term in d:
            blocks = term_blocks(segment, term_headers(segment, np.array([d[term]])))
            for a in range(0, len(blocks["offset"]), step):
                docs, tfs, pos, _ = _decode(segment, {k: v[a : a + step] for k, v in blocks.items()}, remap, positions)
                if len(docs):
                    encoder.feed(docs, tfs, pos)
    written = (0, 0, 0)
    if encoder.df:
        head, post_bytes, pos_bytes = encoder.finish()
        out.write(head)
        written = (len(head) + post_bytes + pos_bytes, encoder.df, pos_bytes)
    for spool in spools:
        if encoder.df:
            spool.seek(0)
            while block := spool.read(8 << 20):
                out.write(block)
        spool.close()
        os.unlink(spool.name)
    return written
