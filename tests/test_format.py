"""Format: the golden file of each version, and damaged, truncated, foreign, older or newer files
refused clearly, on open, at search time or by verify, naming what is damaged."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest
from conftest import random_docs, write_corpus

from indexer.analysis import AnalyzerConfig
from indexer.errors import IndexFormatError, UnsupportedVersionError
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval.searcher import Searcher
from indexer.store import index as fmt
from indexer.store.index import IndexReader
from indexer.store.meta import IndexMeta
from indexer.store.segment import PAGES, POSTINGS, SECTION_NAMES, SEGMENT_META

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden-v2.idx"
GOLDEN_V1 = DATA / "golden-v1.idx"


def test_golden_index_of_format_2_is_read():
    with IndexReader(GOLDEN) as reader:
        assert reader.format_version == 2
        assert reader.doc_names() == ["cafe.txt", "fox.txt", "river.txt"]
        assert reader.doc_lengths.tolist() == [6, 9, 8]
        fox = reader.postings("fox")
        assert fox.docs.tolist() == [1, 2]
        assert fox.positions()[1].tolist() == [3, 5]
        assert reader.postings("run").tfs.tolist() == [2]  # "run" and "runs", stemmed
        assert reader.postings("zürich").docs.tolist() == [0]
        assert reader.verify() == []
        assert [h.doc for h in Searcher(reader).search("fox", k=5).hits] == ["river.txt", "fox.txt"]  # shorter first


def test_a_version_1_index_is_refused_with_its_version_and_a_way_out(tmp_path):
    with pytest.raises(UnsupportedVersionError, match=r"format version 1 is not supported \(this indexer reads "):
        IndexReader(GOLDEN_V1)
    with pytest.raises(UnsupportedVersionError, match="rebuild it with 'indexer build'"):
        IndexReader(GOLDEN_V1)


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
    newer, supported = fmt.FORMAT_VERSION + 1, f"{fmt.OLDEST_READABLE_VERSION}-{fmt.FORMAT_VERSION}"
    with pytest.raises(UnsupportedVersionError, match=f"version {newer} is not supported.*{supported}"):
        IndexReader(_copy(tmp_path, bytes(data)))


def _sections(path: Path) -> dict[int, tuple[int, int]]:
    """Segment 0's sections: kind -> (file offset, length)."""
    with IndexReader(path) as reader:
        base = reader.meta.segments[0].offset
        return {kind: (base + offset, size) for kind, (offset, size, _) in reader.segments[0].sections.items()}


def test_a_flipped_byte_in_any_section_is_found_by_verify_and_named(tmp_path):
    big = tmp_path / "big.idx"
    corpus = write_corpus(tmp_path / "c", random_docs(seed=4, count=400, max_words=300))
    build_index([corpus], big, BuildOptions(processes=1))
    data = big.read_bytes()
    for kind, (offset, size) in _sections(big).items():
        if not size:
            continue
        damaged = bytearray(data)
        damaged[offset + size // 2] ^= 0x41
        path = _copy(tmp_path, bytes(damaged))
        name = SECTION_NAMES[kind]
        if kind == PAGES:  # the page checksums are checked on every open
            with pytest.raises(IndexFormatError, match="page checksum table damaged"):
                IndexReader(path)
            continue
        try:
            with IndexReader(path) as reader:
                found = reader.verify()
        except IndexFormatError as err:  # the page shares the segment meta, read on every open
            assert kind == SEGMENT_META or "segment meta" in str(err), name
            assert name in str(err), name
            continue
        assert f"segment 0 {name}" in found, (name, found)  # with the others sharing its page


def test_damage_in_the_postings_is_found_when_a_query_reads_them(tmp_path):
    big = tmp_path / "big.idx"
    corpus = write_corpus(tmp_path / "c", random_docs(seed=4, count=400, max_words=300))
    build_index([corpus], big, BuildOptions(processes=1))
    offset, size = _sections(big)[POSTINGS]
    damaged = bytearray(big.read_bytes())
    damaged[offset + size // 2] ^= 0x10
    with IndexReader(_copy(tmp_path, bytes(damaged))) as reader:
        searcher = Searcher(reader)
        with pytest.raises(IndexFormatError) as caught:
            for word in reader.terms():
                searcher.search(word, k=5)
    message = str(caught.value)
    assert "copy.idx" in message and "postings section" in message and "indexer verify" in message
    assert message.count("copy.idx") == 1  # said once, not wrapped twice


def test_a_flipped_byte_in_the_commit_or_its_table_is_refused_on_open(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    table = bytearray(data)
    table[-fmt.TRAILER.size - 3] ^= 0xFF
    with pytest.raises(IndexFormatError, match="commit table checksum"):
        IndexReader(_copy(tmp_path, bytes(table)))
    with IndexReader(GOLDEN) as reader:
        meta_json = reader.meta.to_json()
    at = bytes(data).rfind(meta_json[:20])
    data[at + 5] ^= 0x01
    with pytest.raises(IndexFormatError, match="commit record checksum"):
        IndexReader(_copy(tmp_path, bytes(data)))


def test_writer_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "x.idx"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), fmt.IndexWriter(target):
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.idx"]


def test_index_file_gets_normal_permissions(tmp_path):
    target = tmp_path / "x.idx"
    old = os.umask(0o022)
    try:
        with fmt.IndexWriter(target) as writer:
            writer.commit(IndexMeta(analyzer={}, positions=True), [])
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
    with IndexReader(target) as reader:
        assert reader.doc_count == 0 and reader.segments == []


@pytest.mark.parametrize("sample", [1, 2, 3, 64])
def test_the_sampled_dictionary_finds_every_term_and_no_other(tmp_path, monkeypatch, sample):
    from bisect import bisect_left

    from indexer.store import segment as segment_module

    monkeypatch.setattr(segment_module, "TERM_SAMPLE", sample)
    rng = random.Random(21)
    words = ["".join(rng.choice("abcé") for _ in range(rng.randint(1, 6))) for _ in range(400)]
    corpus = write_corpus(tmp_path / "c", {f"{i}.txt": " ".join(rng.sample(words, 30)) for i in range(30)})
    index = tmp_path / "x.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none")))
    with IndexReader(index) as reader:
        segment = reader.segments[0]
        terms = [t.encode() for t in segment.terms()]
        assert terms == sorted(terms) and len(terms) > 50
        for i, term in enumerate(terms):
            assert segment.term_id(term) == i
        probes = [
            b"",
            b"\x00",
            b"\xff",
            b"a",
            b"zzzz",
            b"caf",
            *(t + b"\x00" for t in terms[::7]),
            *(t[:-1] for t in terms),
        ]
        for probe in probes:
            assert segment.term_id(probe) == (terms.index(probe) if probe in terms else None)
            assert segment.term_range(probe, None)[0] == bisect_left(terms, probe)
