"""The postings codec: blocks of bit-packed doc gaps and tfs, positions, skip tables. Round trips
on random postings, a term fed in pieces gives the bytes of the whole, and the skip data is what
the postings say."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import IndexFormatError
from indexer.store.codec import (
    BLOCK,
    COMPLETE,
    IMPACTS,
    LENGTHS,
    TermEncoder,
    bit_widths,
    block_lengths,
    decode_blocks,
    decode_positions,
    decode_varint,
    encode_terms,
    encode_varint,
    pack_groups,
    read_header,
    unpack_groups,
    word_view,
)


def _random_terms(rng: np.random.Generator, terms: int, docs: int, max_df: int):
    """Postings of `terms` terms over `docs` documents: df, docs, tfs, positions and doc lengths."""
    df = rng.integers(1, max_df + 1, terms)
    df = np.minimum(df, docs)
    all_docs, all_tfs, all_pos = [], [], []
    lengths = rng.integers(1, 3000, docs)
    for n in df.tolist():
        d = np.sort(rng.choice(docs, n, replace=False))
        tf = rng.integers(1, 6, n) * (rng.random(n) < 0.3) + 1
        all_docs.append(d)
        all_tfs.append(tf)
        for t, doc in zip(tf.tolist(), d.tolist()):
            all_pos.append(np.sort(rng.choice(max(t, int(lengths[doc])) + 5, t, replace=False)))
    return df, np.concatenate(all_docs), np.concatenate(all_tfs), np.concatenate(all_pos), lengths


def _decode_term(buf: np.ndarray, start: int):
    header = read_header(buf, start)
    offsets, counts = header.block_offsets(), header.block_counts()
    words = word_view(buf)
    docs, tfs = decode_blocks(buf, words, offsets, counts, header.block_previous())
    if header.skips is None:
        pos_at = offsets + block_lengths(buf, offsets, counts)
    else:
        pos_at = header.positions_offsets()
    starts, positions = decode_positions(buf, words, pos_at, counts, tfs)
    return header, docs, tfs, starts, positions


def test_varints_round_trip_up_to_64_bits():
    for value in [0, 1, 127, 128, 300, 2**35, 2**63 + 5, 2**64 - 1]:
        data = encode_varint(value)
        assert decode_varint(data, 0) == (value, len(data))
    assert encode_varint(300) == b"\xac\x02"
    with pytest.raises(IndexFormatError):
        decode_varint(b"\x80\x80", 0)


@given(st.lists(st.tuples(st.integers(0, 32), st.lists(st.integers(0, 2**32 - 1), max_size=40)), max_size=10))
def test_bit_packing_round_trips(groups):
    counts = np.array([len(v) for _, v in groups], dtype=np.int64)
    values = [np.array(v, dtype=np.uint64) & np.uint64((1 << w) - 1) for w, v in groups]
    widths = np.array([w for w, _ in groups], dtype=np.int64)
    flat = np.concatenate(values) if values else np.zeros(0, np.uint64)
    data, nbytes = pack_groups(flat, counts, widths)
    assert nbytes.tolist() == [(c * w + 7) // 8 for c, w in zip(counts.tolist(), widths.tolist())]
    starts = np.cumsum(nbytes) - nbytes
    got = unpack_groups(word_view(np.concatenate((data, np.zeros(8, np.uint8)))), starts, counts, widths)
    assert got.tolist() == flat.tolist()


def test_bit_widths():
    assert bit_widths(np.array([0, 1, 2, 3, 4, 255, 256, 2**32 - 1])).tolist() == [0, 1, 2, 2, 3, 8, 9, 32]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_df=st.sampled_from([1, 5, 127, 128, 129, 300, 700]))
def test_terms_round_trip_through_blocks(seed, max_df):
    rng = np.random.default_rng(seed)
    df, docs, tfs, positions, lengths = _random_terms(rng, int(rng.integers(1, 8)), 1000, max_df)
    encoded = encode_terms(df, docs, tfs, positions, lengths)
    assert len(encoded.lengths) == len(df) and encoded.lengths.sum() == len(encoded.data)
    buf = np.concatenate((encoded.data, np.zeros(8, np.uint8)))
    starts = np.cumsum(encoded.lengths) - encoded.lengths
    first = np.cumsum(df) - df
    pos_first = np.cumsum(tfs) - tfs
    for t, start in enumerate(starts.tolist()):
        header, got_docs, got_tfs, pos_starts, got_pos = _decode_term(buf, start)
        want = slice(first[t], first[t] + df[t])
        assert header.df == df[t]
        assert got_docs.tolist() == docs[want].tolist()
        assert got_tfs.tolist() == tfs[want].tolist()
        want_pos = positions[pos_first[first[t]] : pos_first[first[t]] + tfs[want].sum()]
        assert got_pos.tolist() == want_pos.tolist()
        assert np.diff(pos_starts).tolist() == tfs[want].tolist()
        if header.skips is not None:
            blocks = [slice(first[t] + b, first[t] + min(df[t], b + BLOCK)) for b in range(0, int(df[t]), BLOCK)]
            assert header.skips["last_doc"].tolist() == [int(docs[b][-1]) for b in blocks]
            for skip, b in zip(header.skips, blocks):
                _check_impacts(skip, tfs[b], lengths[docs[b]])


def _check_impacts(skip, tfs: np.ndarray, lengths: np.ndarray) -> None:
    """The kept pairs lie on the block's frontier, include its shortest-doc and highest-tf ends,
    and (the property search relies on) bound every posting: each posting is beaten by a kept pair,
    or, when some of the frontier was left out, by the corner between two kept neighbours."""
    codes = skip["length"].astype(np.int64)
    complete = bool(codes[0] & COMPLETE)
    kept_len = LENGTHS[codes & ~COMPLETE]
    kept_tf = skip["tf"].astype(np.int64)
    assert kept_tf[-1] == tfs.max() and kept_len[0] <= lengths.min()
    assert (np.diff(kept_tf) >= 0).all() and (np.diff(kept_len) >= 0).all()
    covers = [(kept_tf[i], kept_len[i]) for i in range(IMPACTS)]
    if not complete:
        covers += [(kept_tf[i + 1], kept_len[i]) for i in range(IMPACTS - 1)]
    for tf, length in zip(tfs.tolist(), lengths.tolist()):
        assert any(ct >= tf and cl <= length for ct, cl in covers), (tf, length, covers)


@pytest.mark.parametrize("pieces", [[1000], [1, 999], [128, 128, 744], [300, 5, 695], [127, 2, 871]])
def test_a_term_fed_in_pieces_encodes_to_the_bytes_of_the_whole(pieces):
    rng = np.random.default_rng(sum(pieces) + len(pieces))
    df, docs, tfs, positions, lengths = _random_terms(rng, 1, 5000, 1000)
    df = np.array([len(docs)])
    whole = encode_terms(df, docs, tfs, positions, lengths).data.tobytes()
    sinks = ([], [])
    encoder = TermEncoder(lengths, True, lambda b: sinks[0].append(b.tobytes()), lambda b: sinks[1].append(b.tobytes()))
    at = 0
    cuts = np.cumsum([0, *pieces[:-1]]).tolist() + [len(docs)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        p0, p1 = int(tfs[:a].sum()), int(tfs[:b].sum())
        encoder.feed(docs[a:b], tfs[a:b], positions[p0:p1])
        at = b
    assert at == len(docs)
    head, post_len, pos_len = encoder.finish()
    assert head + b"".join(sinks[0]) + b"".join(sinks[1]) == whole
    assert post_len + pos_len + len(head) == len(whole)


def test_without_positions_nothing_follows_the_blocks():
    rng = np.random.default_rng(1)
    df, docs, tfs, _, lengths = _random_terms(rng, 3, 400, 300)
    with_none = encode_terms(df, docs, tfs, None, lengths)
    buf = np.concatenate((with_none.data, np.zeros(8, np.uint8)))
    start = 0
    for length in with_none.lengths.tolist():
        header = read_header(buf, start)
        offsets, counts = header.block_offsets(), header.block_counts()
        assert offsets[-1] + block_lengths(buf, offsets, counts)[-1] == start + length
        start += length


def test_damaged_blocks_are_refused_not_misread():
    rng = np.random.default_rng(2)
    df, docs, tfs, positions, lengths = _random_terms(rng, 1, 500, 100)
    data = encode_terms(df, docs, tfs, positions, lengths).data.copy()
    header = read_header(data, 0)
    data[header.blocks_at] = 200  # a doc width over 32 bits
    with pytest.raises(IndexFormatError):
        decode_blocks(data, word_view(data), header.block_offsets(), header.block_counts(), header.block_previous())
