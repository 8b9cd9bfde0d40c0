"""Format: varint codecs, and damaged, truncated, foreign or newer files refused clearly."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.errors import IndexFormatError, UnsupportedVersionError
from indexer.store import index as fmt
from indexer.store.codec import decode_varints, encode_varints, varint_sizes
from indexer.store.index import IndexReader

GOLDEN = Path(__file__).parent / "data" / "golden-v1.idx"


@given(st.lists(st.integers(min_value=0, max_value=2**35 - 1), max_size=200))
def test_varints_round_trip(values):
    encoded = encode_varints(np.array(values, dtype=np.uint64))
    assert len(encoded) == int(varint_sizes(np.array(values, dtype=np.uint64)).sum())
    assert decode_varints(encoded, len(values)).tolist() == values


def test_varint_layout_is_leb128():
    assert encode_varints(np.array([0, 127, 128, 300])).tobytes() == b"\x00\x7f\x80\x01\xac\x02"


def test_short_varint_stream_is_refused():
    with pytest.raises(IndexFormatError):
        decode_varints(np.frombuffer(b"\x80\x80", dtype=np.uint8), 1)


def test_golden_index_of_format_1_is_read():
    with IndexReader(GOLDEN) as reader:
        assert reader.format_version == 1
        assert reader.doc_names() == ["cafe.txt", "fox.txt", "river.txt"]
        assert reader.doc_lengths.tolist() == [6, 9, 8]
        fox = reader.postings("fox")
        assert fox.docs.tolist() == [1, 2]
        assert fox.positions()[1].tolist() == [3, 5]
        assert reader.postings("run").tfs.tolist() == [2]  # "run" and "runs", stemmed
        assert reader.postings("zürich").docs.tolist() == [0]
        assert reader.verify() == []


def _copy(tmp_path, data: bytes) -> Path:
    path = tmp_path / "copy.idx"
    path.write_bytes(data)
    return path


def test_garbage_and_empty_files_are_refused(tmp_path):
    for data in (b"", b"not an index", b"\0" * 4096, GOLDEN.read_bytes()[::-1]):
        with pytest.raises(IndexFormatError, match="copy.idx"):
            IndexReader(_copy(tmp_path, data))


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file_is_refused(tmp_path, keep):
    data = GOLDEN.read_bytes()
    with pytest.raises(IndexFormatError, match="truncated|too small"):
        IndexReader(_copy(tmp_path, data[: int(len(data) * keep)]))


def test_one_byte_missing_at_the_end_is_refused(tmp_path):
    with pytest.raises(IndexFormatError, match="truncated"):
        IndexReader(_copy(tmp_path, GOLDEN.read_bytes()[:-1]))


def test_newer_format_version_is_refused_with_the_supported_range(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    struct.pack_into("<I", data, 8, fmt.FORMAT_VERSION + 1)
    with pytest.raises(UnsupportedVersionError, match=f"version {fmt.FORMAT_VERSION + 1} is not supported.*1-1"):
        IndexReader(_copy(tmp_path, bytes(data)))


def test_flipped_byte_in_each_section_is_found_by_verify(tmp_path):
    data = GOLDEN.read_bytes()
    with IndexReader(GOLDEN) as reader:
        sections = [s for s in reader.sections.values() if s.length]
    assert {s.name for s in sections} >= {"meta", "terms", "docs", "freqs", "positions", "doc names"}
    for section in sections:
        damaged = bytearray(data)
        damaged[section.offset + section.length // 2] ^= 0x41
        path = _copy(tmp_path, bytes(damaged))
        if section.kind == fmt.META:  # the meta checksum is checked on every open
            with pytest.raises(IndexFormatError, match="meta section checksum"):
                IndexReader(path)
            continue
        with IndexReader(path) as reader:
            assert reader.verify() == [section.name]


def test_flipped_byte_in_section_table_is_refused_on_open(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    data[-fmt.TRAILER.size - 3] ^= 0xFF
    with pytest.raises(IndexFormatError, match="section table checksum"):
        IndexReader(_copy(tmp_path, bytes(data)))


def test_writer_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "x.idx"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), fmt.IndexWriter(target) as writer:
        writer.section(fmt.META, b"{}")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.idx"]


@pytest.mark.parametrize("kind", [fmt.TERMS, fmt.TERM_INFO, fmt.DOC_LENGTHS, fmt.DOC_NAMES])
def test_damaged_dictionary_or_document_table_is_refused_on_use(tmp_path, kind):
    data = bytearray(GOLDEN.read_bytes())
    with IndexReader(GOLDEN) as reader:
        section = reader.sections[kind]
    data[section.offset] ^= 0x01
    with IndexReader(_copy(tmp_path, bytes(data))) as reader, pytest.raises(IndexFormatError, match="checksum"):
        reader.postings("fox")
        assert reader.doc_lengths is not None
        reader.doc_names()


def test_index_file_gets_normal_permissions(tmp_path):
    target = tmp_path / "x.idx"
    old = os.umask(0o022)
    try:
        with fmt.IndexWriter(target) as writer:
            writer.section(fmt.META, b"{}")
            writer.commit()
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
