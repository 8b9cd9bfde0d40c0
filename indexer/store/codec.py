"""Codec: postings as bytes, in blocks of BLOCK postings, encoded and decoded by numpy in batches.

A term's data (docs/FORMAT.md has the byte layout):
    varint df
    skip table, when the term has more than one block: per block last doc, where its postings and
        positions start, its largest tf and its shortest document (what bounds its best score)
    per block: width of the doc gaps, width of tf - 1, the gaps (d - previous d - 1) bit-packed,
        the tfs - 1 bit-packed (no bytes at all when every tf is 1)
    per block: positions, the first of each posting absolute and the others as gaps, each kind
        bit-packed at its own width
Bit-packing is frame-of-reference: every value of a group takes its group's width, least
significant bit first, and a group starts on a byte. Blocks start at the term's first posting and
hold BLOCK postings (the last fewer), so a term encodes to the same bytes however its postings
arrive; `encode_terms` encodes a batch of terms at once and `TermEncoder` one term fed in pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.errors import IndexFormatError

BLOCK = 128
IMPACTS = 4  # (tf, doc length) pairs kept per block to bound its best score
SKIP = np.dtype(
    [
        ("last_doc", "<u4"),
        ("data", "<u4"),
        ("positions", "<u4"),
        ("tf", "<u2", (IMPACTS,)),  # 65535: that many or more
        ("length", "u1", (IMPACTS,)),  # LENGTHS code, rounded down; bit 7 of the first: all pairs kept
    ]
)
MAX_TF = 0xFFFF
COMPLETE = 0x80
# Doc lengths in one byte (rounded down, so a bound stays a bound): exact below 32, then 10% apart
LENGTHS = np.unique(np.concatenate((np.arange(32), np.floor(32 * 1.1 ** np.arange(96))))).astype(np.int64)[:128]


def length_codes(lengths: np.ndarray) -> np.ndarray:
    """The largest code whose length is at most each length."""
    return (np.searchsorted(LENGTHS, np.asarray(lengths, dtype=np.int64), side="right") - 1).astype(np.uint8)


MAX_VARINT_BYTES = 10  # 64-bit values


# ---------------------------------------------------------------------------------------------
# Varints (term headers) and bit widths


def encode_varint(value: int) -> bytes:
    """One unsigned LEB128 varint: 7 bits a byte, low bits first, the high bit on all but the last."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf, at: int) -> tuple[int, int]:
    """(value, offset after it) of the varint at `buf[at]`; raises IndexFormatError if it runs out."""
    value = shift = 0
    for i, byte in enumerate(bytes(buf[at : at + MAX_VARINT_BYTES])):
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at + i + 1
        shift += 7
    raise IndexFormatError("varint runs past its end")


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a varint, vectorized."""
    v = np.asarray(values, dtype=np.uint64)
    sizes = np.ones(len(v), dtype=np.int64)
    for k in range(1, MAX_VARINT_BYTES):
        sizes += v >= np.uint64(1) << np.uint64(7 * k)
    return sizes


def encode_varints(values: np.ndarray) -> np.ndarray:
    """Many varints into one uint8 array (the term headers of a batch), vectorized."""
    v = np.asarray(values, dtype=np.uint64)
    sizes = varint_lengths(v)
    starts = np.cumsum(sizes) - sizes
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    for k in range(MAX_VARINT_BYTES):
        sel = np.flatnonzero(sizes > k)
        if not len(sel):
            break
        byte = ((v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        byte |= (sizes[sel] > k + 1).view(np.uint8) << 7
        out[starts[sel] + k] = byte
    return out


def bit_widths(values: np.ndarray) -> np.ndarray:
    """Bits needed for each non-negative value (0 for 0), as int64."""
    _, exponent = np.frexp(np.asarray(values, dtype=np.float64))  # exact for values below 2**53
    return exponent.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Bit-packing of groups


def pack_groups(values: np.ndarray, counts: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack consecutive groups of `values` (counts[g] values of widths[g] bits, < 2**32 each), each
    group starting on a byte. Returns (bytes, bytes per group)."""
    counts = np.asarray(counts, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.int64)
    nbytes = (counts * widths + 7) >> 3
    total = int(nbytes.sum())
    out = np.zeros(total // 8 + 2, dtype="<u8")  # (a group of width 0 may sit at the end)
    _pack_into(out, values, counts, widths, _segment_starts(nbytes))
    return out.view(np.uint8)[:total].copy(), nbytes


def _pack_into(out: np.ndarray, values: np.ndarray, counts: np.ndarray, widths: np.ndarray, starts: np.ndarray):
    """OR groups of `values` (as pack_groups) into `out`, little-endian 64-bit words, group g from
    byte starts[g] on (ascending; the groups' bytes must be zero and not overlap).

    Each value lands at its bit offset: its low part in its word, what passes the word's end in
    the next one. Offsets grow, so the values of one word are neighbours and one OR-reduce per word
    sets it (values never share a bit)."""
    if not len(values):
        return
    first = np.cumsum(counts) - counts
    width = np.repeat(widths, counts)
    bit = np.repeat(np.asarray(starts, dtype=np.int64) * 8 - first * widths, counts)
    bit += np.arange(len(width), dtype=np.int64) * width
    value = np.asarray(values, dtype=np.uint64)
    word = bit >> 6
    shift = (bit & 63).astype(np.uint64)
    low = value << shift
    high = (value >> np.uint64(1)) >> (np.uint64(63) - shift)  # the bits past the word's end (0: none)
    begins = np.flatnonzero(np.concatenate(([True], word[1:] != word[:-1])))
    at = word[begins]
    out[at] |= np.bitwise_or.reduceat(low, begins)
    out[at + 1] |= np.bitwise_or.reduceat(high, begins)


def unpack_groups(words: np.ndarray, starts: np.ndarray, counts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The values of groups packed by pack_groups, read at byte offsets `starts` of a buffer whose
    `word_view` is `words` (the buffer needs 8 readable bytes after the last group's data), as
    one uint64 array."""
    counts = np.asarray(counts, dtype=np.int64)
    if not len(counts) or not counts.sum():
        return np.zeros(0, dtype=np.uint64)
    widths = np.asarray(widths, dtype=np.int64)
    first = np.cumsum(counts) - counts
    index = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
    width = np.repeat(widths, counts)
    bit = np.repeat(np.asarray(starts, dtype=np.int64) * 8, counts) + index * width
    if int(bit.max() >> 3) >= len(words) or int(bit.min()) < 0:
        raise IndexFormatError("packed data runs past its section")
    value = words[bit >> 3] >> (bit & 7).astype(np.uint64)
    return value & ((np.uint64(1) << width.astype(np.uint64)) - np.uint64(1))


def word_view(buf: np.ndarray) -> np.ndarray:
    """A view of `buf` as overlapping little-endian uint64s, one starting at every byte: one
    gather then reads any packed value (39 bits at most, with its shift) at once."""
    if len(buf) < 8:
        buf = np.concatenate((buf, np.zeros(8, np.uint8)))
    return np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, offset=0, strides=(1,))


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _scatter(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], total: int) -> np.ndarray:
    """Copy byte pieces into one array: each (source bytes, source offsets, lengths, ...) entry
    gives item offsets and lengths in its source; `dest` offsets say where each item goes."""
    out = np.empty(total, dtype=np.uint8)
    for source, src_start, length, dest in pieces:
        length = np.asarray(length, dtype=np.int64)
        if not length.sum():
            continue
        first = _segment_starts(length)
        within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(first, length)
        out[np.repeat(dest, length) + within] = source[np.repeat(src_start, length) + within]
    return out


# ---------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True)
class EncodedTerms:
    """A batch of consecutive terms encoded: their data concatenated, each term's byte length, and
    how many of all those bytes are positions."""

    data: np.ndarray
    lengths: np.ndarray
    positions_bytes: int = 0


def encode_terms(
    df: np.ndarray, docs: np.ndarray, tfs: np.ndarray, positions: np.ndarray | None, doc_lengths: np.ndarray
) -> EncodedTerms:
    """Encode terms whose postings are grouped by term (df per term; docs ascending within a term;
    positions ascending within a posting, sum(tfs) of them, or None without positions).

    `doc_lengths` maps doc ids to lengths (the shortest length in a block bounds its scores). Each
    term's data is its header, skip table, blocks and positions, as docs/FORMAT.md lays out.
    """
    blocks = _Blocks(df, docs, tfs, doc_lengths)
    post, post_len = blocks.postings()
    pos, pos_len = blocks.positions(positions)
    df = blocks.df
    nb, bt = blocks.nblocks, blocks.block_term
    header = encode_varints(df)
    header_len = varint_lengths(df)
    skip_len = np.where(nb > 1, nb * SKIP.itemsize, 0)
    term_post = np.bincount(bt, weights=post_len, minlength=len(df)).astype(np.int64)
    term_pos = np.bincount(bt, weights=pos_len, minlength=len(df)).astype(np.int64)
    term_len = header_len + skip_len + term_post + term_pos
    term_start = _segment_starts(term_len)
    before = header_len[bt] + skip_len[bt]
    skips = blocks.skips(before, before + term_post[bt], post_len, pos_len)
    multi = nb[bt] > 1
    skip_dest = term_start[bt] + header_len[bt] + (np.arange(len(bt)) - _segment_starts(nb)[bt]) * SKIP.itemsize
    n_multi = int(multi.sum())
    data = _scatter(
        [
            (header, _segment_starts(header_len), header_len, term_start),
            (
                skips[multi].view(np.uint8),
                np.arange(n_multi) * SKIP.itemsize,
                np.full(n_multi, SKIP.itemsize),
                skip_dest[multi],
            ),
            (post, _segment_starts(term_post), term_post, term_start + header_len + skip_len),
            (pos, _segment_starts(term_pos), term_pos, term_start + header_len + skip_len + term_post),
        ],
        int(term_len.sum()),
    )
    return EncodedTerms(data, term_len, int(term_pos.sum()))


class TermEncoder:
    """One term whose postings arrive in pieces (a very common word), encoded without holding them
    all: full blocks are encoded as they fill and their bytes handed to two sinks (postings and
    positions), the skip entries kept; `finish` gives the header and skip table. The term's bytes
    are then header + skip table + what went to the postings sink + what went to the positions sink,
    the same bytes encode_terms gives for the whole list at once."""

    def __init__(self, doc_lengths: np.ndarray, positions: bool, postings_sink, positions_sink):
        self._doc_lengths = doc_lengths
        self._positions = positions
        self._sinks = (postings_sink, positions_sink)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._pending_count = 0
        self._previous = -1  # the last doc of the blocks encoded so far
        self._skips: list[np.ndarray] = []
        self._written = [0, 0]  # bytes given to each sink
        self.df = 0

    def feed(self, docs: np.ndarray, tfs: np.ndarray, positions: np.ndarray | None) -> None:
        self._pending.append((np.asarray(docs, np.int64), np.asarray(tfs, np.int64), positions))
        self._pending_count += len(docs)
        self.df += len(docs)
        if self._pending_count >= BLOCK:
            self._encode(full_blocks_only=True)

    def finish(self) -> tuple[bytes, int, int]:
        """(header and skip table, postings bytes written, positions bytes written) once every
        posting has been fed."""
        self._encode(full_blocks_only=False)
        header = encode_varint(self.df)
        skips = np.concatenate(self._skips) if self._skips else np.zeros(0, SKIP)
        if len(skips) <= 1:
            return header, *self._written
        before = len(header) + len(skips) * SKIP.itemsize  # the blocks' offsets count from the term's start
        skips["data"] += before
        skips["positions"] += before + self._written[0]
        return header + skips.tobytes(), *self._written

    def _encode(self, full_blocks_only: bool) -> None:
        if not self._pending_count:
            return
        docs = np.concatenate([p[0] for p in self._pending])
        tfs = np.concatenate([p[1] for p in self._pending])
        positions = np.concatenate([p[2] for p in self._pending]) if self._positions else None
        take = (len(docs) // BLOCK) * BLOCK if full_blocks_only else len(docs)
        cf = int(tfs[:take].sum())
        blocks = _Blocks([take], docs[:take], tfs[:take], self._doc_lengths, previous=self._previous)
        post, post_len = blocks.postings()
        pos, pos_len = blocks.positions(None if positions is None else positions[:cf])
        self._skips.append(blocks.skips(self._written[0], self._written[1], post_len, pos_len))
        for i, data in enumerate((post, pos)):
            self._sinks[i](data)
            self._written[i] += len(data)
        self._previous = int(docs[take - 1])
        rest = (docs[take:], tfs[take:], None if positions is None else positions[cf:])
        self._pending = [rest] if take < len(docs) else []
        self._pending_count = len(docs) - take


class _Blocks:
    """The blocks of a batch of terms, and the arrays that describe them. `previous` is the doc
    before the first posting (-1: none), for a term encoded in pieces."""

    def __init__(self, df, docs, tfs, doc_lengths: np.ndarray, previous: int = -1):
        self.df = df = np.asarray(df, dtype=np.int64)
        self.docs = docs = np.asarray(docs, dtype=np.int64)
        self.tfs = tfs = np.asarray(tfs, dtype=np.int64)
        self.nblocks = (df + BLOCK - 1) // BLOCK
        self.block_term = np.repeat(np.arange(len(df)), self.nblocks)
        term_start = _segment_starts(df)
        index = np.arange(len(self.block_term)) - np.repeat(_segment_starts(self.nblocks), self.nblocks)
        self.start = term_start[self.block_term] + index * BLOCK
        self.count = np.minimum(BLOCK, df[self.block_term] - index * BLOCK)
        gaps = np.empty(len(docs), dtype=np.int64)
        if len(docs):
            gaps[1:] = docs[1:] - docs[:-1] - 1
            firsts = term_start[df > 0]
            gaps[firsts] = docs[firsts] - previous - 1
        self.gaps = gaps
        if len(self.start):
            self.doc_width = bit_widths(np.maximum.reduceat(gaps, self.start))
            self.tf_width = bit_widths(np.maximum.reduceat(tfs, self.start) - 1)
            self.last_doc = docs[self.start + self.count - 1]
            self.cf = np.add.reduceat(tfs, self.start)
            self.impact_tf, self.impact_length = self._impacts(np.asarray(doc_lengths)[docs])
        else:
            empty = np.zeros(0, np.int64)
            self.doc_width = self.tf_width = self.last_doc = self.cf = empty
            self.impact_tf = self.impact_length = np.zeros((0, IMPACTS), np.int64)

    def _impacts(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per block, IMPACTS (tf, length code) pairs from its competitive frontier: the postings
        no other beats on both tf (higher) and length (shorter). With all of the frontier kept, the
        best of its pairs bounds every posting's score; with some left out (bit 7 of the first
        code clear), so do the corners between kept neighbours, for any k1 and b."""
        block = np.repeat(np.arange(len(self.start), dtype=np.int64), self.count)
        tfs = np.minimum(self.tfs, MAX_TF)
        # per block, shortest first; of the postings of one length only the highest tf matters
        place = (block << 32) | np.asarray(lengths, dtype=np.int64)  # lengths are u32, blocks < 2**31
        order = np.argsort(place)
        place, tfs = place[order], tfs[order]
        begins = np.flatnonzero(np.concatenate(([True], place[1:] != place[:-1])))
        place = place[begins]
        b, tf, length = place >> 32, np.maximum.reduceat(tfs, begins), place & 0xFFFFFFFF
        key = (b << 17) | tf
        best = np.maximum.accumulate(key)
        front = np.ones(len(key), dtype=bool)  # a posting raising its block's best tf so far
        front[1:] = (key[1:] > best[:-1]) | (b[1:] != b[:-1])
        b, tf, length = b[front], tf[front], length[front]
        size = np.bincount(b, minlength=len(self.start))
        first = _segment_starts(size)
        k = np.arange(IMPACTS)
        spread = np.round(k[None, :] * (size[:, None] - 1) / (IMPACTS - 1)).astype(np.int64)
        pick = first[:, None] + np.where(size[:, None] <= IMPACTS, np.minimum(k[None, :], size[:, None] - 1), spread)
        codes = length_codes(length[pick]).astype(np.int64)
        codes[:, 0] |= np.where(size <= IMPACTS, COMPLETE, 0)
        return tf[pick], codes

    def postings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every block's postings bytes, one block after another, and each block's length:
        [doc width][tf width][packed gaps][packed tfs - 1]."""
        return _two_groups(self.gaps, self.count, self.doc_width, self.tfs - 1, self.count, self.tf_width)

    def positions(self, positions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Every block's positions bytes and lengths: [first width][gap width][packed first positions
        of the postings][packed other gaps]; nothing without positions."""
        if positions is None:
            return np.zeros(0, np.uint8), np.zeros(len(self.start), np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        posting_first = _segment_starts(self.tfs)
        gaps = positions.copy()
        if len(gaps):
            gaps[1:] -= positions[:-1]
            gaps[posting_first] = positions[posting_first]
        is_first = np.zeros(len(gaps), dtype=bool)
        is_first[posting_first] = True
        firsts, rest = gaps[is_first], gaps[~is_first]
        rest_count = self.cf - self.count
        first_width = bit_widths(np.maximum.reduceat(firsts, self.start)) if len(self.start) else self.start
        rest_width = np.zeros(len(self.start), np.int64)
        has_rest = rest_count > 0
        if has_rest.any():
            rest_width[has_rest] = bit_widths(np.maximum.reduceat(rest, _segment_starts(rest_count)[has_rest]))
        return _two_groups(firsts, self.count, first_width, rest, rest_count, rest_width)

    def skips(self, post_before, pos_before, post_len: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
        """Skip entries of every block: where its postings and positions start, given where its
        term's first block and first positions start (per block, or one number)."""
        skips = np.zeros(len(self.block_term), dtype=SKIP)
        skips["last_doc"], skips["tf"], skips["length"] = self.last_doc, self.impact_tf, self.impact_length
        skips["data"] = post_before + _within(post_len, self.nblocks)
        skips["positions"] = pos_before + _within(pos_len, self.nblocks)
        return skips


def _two_groups(a, a_count, a_width, b, b_count, b_width) -> tuple[np.ndarray, np.ndarray]:
    """Per block: its two width bytes, its group of `a`, its group of `b`, packed in place; and each
    block's length."""
    a_len = (np.asarray(a_count, np.int64) * a_width + 7) >> 3
    b_len = (np.asarray(b_count, np.int64) * b_width + 7) >> 3
    block_len = 2 + a_len + b_len
    dest = _segment_starts(block_len)
    total = int(block_len.sum())
    out = np.zeros(total // 8 + 2, dtype="<u8")  # (a group of width 0 may sit at the end)
    data = out.view(np.uint8)
    data[dest] = a_width
    data[dest + 1] = b_width
    _pack_into(out, a, a_count, a_width, dest + 2)
    _pack_into(out, b, b_count, b_width, dest + 2 + a_len)
    return data[:total].copy(), block_len


def _within(lengths: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Offset of each item from the start of its group, for consecutive groups of `groups` items."""
    before = _segment_starts(lengths)
    has = groups > 0
    return before - np.repeat(before[_segment_starts(groups)[has]], groups[has])


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class TermHeader:
    """Where one term's data lies and how it is cut into blocks. Offsets are into the postings
    section; `skips` is None for a term of a single block (its last doc, largest tf and shortest
    document are only known by decoding it)."""

    df: int
    blocks_at: int  # offset of the first block
    skips: np.ndarray | None  # SKIP entries, offsets from the term's start
    start: int  # offset of the term's data

    @property
    def nblocks(self) -> int:
        return 1 if self.skips is None else len(self.skips)

    def block_offsets(self) -> np.ndarray:
        return np.array([self.blocks_at]) if self.skips is None else self.start + self.skips["data"].astype(np.int64)

    def block_counts(self) -> np.ndarray:
        if self.skips is None:
            return np.array([self.df])
        counts = np.full(len(self.skips), BLOCK, dtype=np.int64)
        counts[-1] = self.df - BLOCK * (len(self.skips) - 1)
        return counts

    def block_previous(self) -> np.ndarray:
        """The doc before each block's first posting (-1 for the first block)."""
        if self.skips is None:
            return np.array([-1])
        return np.concatenate(([-1], self.skips["last_doc"][:-1].astype(np.int64)))

    def positions_offsets(self, counts_before: np.ndarray | None = None) -> np.ndarray:
        """Where each block's positions start; a single block's follow its postings (its widths
        say how long those are, so the caller passes the block's byte length)."""
        if self.skips is not None:
            return self.start + self.skips["positions"].astype(np.int64)
        return np.asarray(counts_before, dtype=np.int64)


def read_header(buf: np.ndarray, start: int) -> TermHeader:
    """The header (and skip table) of the term whose data starts at `start` of `buf`."""
    df, at = decode_varint(buf, start)
    if df <= BLOCK:
        return TermHeader(df, at, None, start)
    nblocks = (df + BLOCK - 1) // BLOCK
    end = at + nblocks * SKIP.itemsize
    if end > len(buf):
        raise IndexFormatError("skip table runs past its section")
    return TermHeader(df, end, buf[at:end].view(SKIP), start)


def block_lengths(buf: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Byte length of each block's postings (from its two width bytes)."""
    wd = buf[offsets].astype(np.int64)
    wf = buf[offsets + 1].astype(np.int64)
    return 2 + ((counts * wd + 7) >> 3) + ((counts * wf + 7) >> 3)


def _widths(buf: np.ndarray, offsets: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The two width bytes that open each block at `offsets`, checked: inside `buf`, 32 at most."""
    if np.any(offsets + 2 > len(buf)):
        raise IndexFormatError(f"{what} lies outside its section")
    first, second = buf[offsets].astype(np.int64), buf[offsets + 1].astype(np.int64)
    if first.max(initial=0) > 32 or second.max(initial=0) > 32:
        raise IndexFormatError(f"{what} has a bit width over 32")
    return first, second


def decode_blocks(
    buf: np.ndarray, words: np.ndarray, offsets: np.ndarray, counts: np.ndarray, previous: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(docs, tfs) of blocks, one block after another: blocks at byte `offsets` of `buf` (whose
    word_view is `words`) holding `counts` postings each, whose docs follow `previous` (the doc
    before the block, -1: none)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    wd, wf = _widths(buf, offsets, "a block")
    gap_at = offsets + 2
    tf_at = gap_at + ((counts * wd + 7) >> 3)
    values = unpack_groups(
        words, np.concatenate((gap_at, tf_at)), np.concatenate((counts, counts)), np.concatenate((wd, wf))
    )
    total = int(counts.sum())
    steps = values[:total].astype(np.int64) + 1
    climb = np.cumsum(steps)
    first = _segment_starts(counts)
    reached = climb[first] - steps[first]  # the climb before each block's first posting
    docs = climb - np.repeat(reached - np.asarray(previous, dtype=np.int64), counts)
    return docs, values[total:].astype(np.int64) + 1


def decode_positions(
    buf: np.ndarray, words: np.ndarray, offsets: np.ndarray, counts: np.ndarray, tfs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, positions) of the postings of blocks whose positions start at byte `offsets`:
    posting i's positions are positions[offsets[i]:offsets[i + 1]]. `counts` are the blocks'
    posting counts and `tfs` their postings' tfs, one block after another."""
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    tfs = np.asarray(tfs, dtype=np.int64)
    w1, w2 = _widths(buf, offsets, "positions")
    cf = np.add.reduceat(tfs, _segment_starts(counts)) if len(counts) else counts
    rest_counts = cf - counts
    first_at = offsets + 2
    rest_at = first_at + ((counts * w1 + 7) >> 3)
    firsts = unpack_groups(words, first_at, counts, w1).astype(np.int64)
    rest = unpack_groups(words, rest_at, rest_counts, w2).astype(np.int64)
    posting_first = _segment_starts(tfs)
    gaps = np.empty(int(tfs.sum()), dtype=np.int64)
    is_first = np.zeros(len(gaps), dtype=bool)
    is_first[posting_first] = True
    gaps[is_first] = firsts
    gaps[~is_first] = rest
    climb = np.cumsum(gaps)
    positions = climb - np.repeat(climb[posting_first] - gaps[posting_first], tfs)
    starts = np.zeros(len(tfs) + 1, dtype=np.int64)
    np.cumsum(tfs, out=starts[1:])
    return starts, positions
