"""Build: sequential and parallel builds agree byte for byte, and the index agrees with a naive
reference inverted index (dict of sets) on random corpora."""

from __future__ import annotations

import random
import re
import unicodedata
from collections import defaultdict
from dataclasses import replace

import pytest
from conftest import random_docs, write_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.errors import CorpusError, IndexerError
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.store.index import IndexReader


def _naive_index(docs_in_order: list[str]) -> tuple[dict, list[int]]:
    """term -> {doc: positions} and doc lengths, straight from the definition of the analyzer
    with stemming off: \\w+ runs of the NFKC-normalized, lower-cased text, then NFKC + case
    folding, positions in the word stream."""
    index: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    lengths = []
    for doc, text in enumerate(docs_in_order):
        words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
        for pos, word in enumerate(words):
            index[unicodedata.normalize("NFKC", word).casefold()][doc].append(pos)
        lengths.append(len(words))
    return index, lengths


def _assert_matches_reference(index_path, docs: dict[str, str]) -> None:
    with IndexReader(index_path) as reader:
        names = reader.doc_names()
        assert sorted(names) == sorted(docs)
        expected, lengths = _naive_index([docs[name] for name in names])
        expected = {t: by_doc for t, by_doc in expected.items() if len(t) <= reader.meta.analyzer["max_term_chars"]}
        assert reader.doc_lengths.tolist() == lengths
        assert reader.terms() == sorted(expected)
        for term, by_doc in expected.items():
            postings = reader.postings(term)
            assert postings.docs.tolist() == sorted(by_doc)
            assert postings.tfs.tolist() == [len(by_doc[d]) for d in sorted(by_doc)]
            offsets, positions = postings.positions()
            got = [positions[offsets[i] : offsets[i + 1]].tolist() for i in range(len(postings.docs))]
            assert got == [by_doc[d] for d in sorted(by_doc)]
        assert reader.meta.tokens == sum(lengths)


NO_STEM = AnalyzerConfig(stem="none")


def test_index_matches_naive_reference(tmp_path):
    docs = random_docs(seed=1, count=80)
    corpus = write_corpus(tmp_path / "c", docs)
    out = tmp_path / "x.idx"
    build_index([corpus], out, BuildOptions(processes=1, chunk_size=700, analyzer=NO_STEM))
    _assert_matches_reference(out, docs)


# "re\u0301sume": a letter written decomposed, which must not split its word; words past the
# 64 bytes a hash covers, in ASCII, Greek (final sigma) and CJK; separators that are not spaces
words = st.sampled_from(
    ["a", "b", "c", "dd", "Ée", "ß", "x1", "_y", "ﬁn", "re\u0301sume", "q\u0301x", "①", "ΟΔΟΣ", "中文字"]
    + ["x" * 70, "Λόγος" * 15, "漢" * 30, "ab" * 33]
)
separators = st.sampled_from([" ", " ", "\n", ", ", ".", "'", " — "])
doc_text = st.lists(st.tuples(words, separators), min_size=1, max_size=30).map(lambda ws: "".join(w + s for w, s in ws))
LONG_TERMS = AnalyzerConfig(stem="none", max_term_chars=1000)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(doc_text, min_size=1, max_size=12), chunk=st.integers(min_value=1, max_value=200))
def test_random_corpora_match_reference(tmp_path_factory, texts, chunk):
    root = tmp_path_factory.mktemp("corpus")
    docs = {f"d{i:02d}.txt": t for i, t in enumerate(texts)}
    write_corpus(root, docs)
    out = root.parent / (root.name + ".idx")
    build_index([root], out, BuildOptions(processes=1, chunk_size=chunk, memory=1, analyzer=LONG_TERMS))
    _assert_matches_reference(out, docs)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(doc_text, min_size=20, max_size=200).map("\n".join), min_size=1, max_size=4))
def test_documents_larger_than_the_memory_share_match_reference(tmp_path_factory, texts):
    """With the smallest memory share (a buffer of 1,000 tokens, pieces of 2,000 characters),
    each of these documents is flushed in pieces into several runs, then joined."""
    root = tmp_path_factory.mktemp("corpus")
    docs = {f"d{i:02d}.txt": t for i, t in enumerate(texts)}
    write_corpus(root, docs)
    out = root.parent / (root.name + ".idx")
    build_index([root], out, BuildOptions(processes=1, memory=1, analyzer=LONG_TERMS))
    _assert_matches_reference(out, docs)


def test_parallel_and_sequential_builds_are_byte_identical(tmp_path):
    docs = random_docs(seed=3, count=300, max_words=400)
    corpus = write_corpus(tmp_path / "c", docs)
    outputs = {}
    variants = {
        "sequential": BuildOptions(processes=1),
        "p1-small-chunks": BuildOptions(processes=1, chunk_size=2000),
        "p2": BuildOptions(processes=2, chunk_size=5000),
        "p4": BuildOptions(processes=4, chunk_size=3000),
        # a memory budget this small forces several runs per chunk and many merge ranges
        "p2-tiny-memory": BuildOptions(processes=2, chunk_size=200_000, memory=200_000),
        "p1-tiny-memory": BuildOptions(processes=1, chunk_size=200_000, memory=100_000),
    }
    for name, options in variants.items():
        out = tmp_path / f"{name}.idx"
        stats = build_index([corpus], out, options)
        assert stats.documents == 300
        outputs[name] = out.read_bytes()
    reference = outputs.pop("sequential")
    for name, data in outputs.items():
        assert data == reference, f"{name} differs from the sequential build"


def test_memory_limit_forces_multiple_runs(tmp_path, monkeypatch):
    from indexer.indexing import invert

    corpus = write_corpus(tmp_path / "c", random_docs(seed=5, count=50, max_words=300))
    flushed = []
    original = invert._flush
    monkeypatch.setattr(invert, "_flush", lambda *a: (flushed.append(1), original(*a))[1])
    build_index([corpus], tmp_path / "x.idx", BuildOptions(processes=1, chunk_size=1 << 20, memory=100_000))
    assert len(flushed) > 3


def test_stemming_finds_other_word_forms(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "she runs daily", "b.txt": "a quiet day"})
    out = tmp_path / "x.idx"
    build_index([corpus], out, BuildOptions(processes=1))
    with IndexReader(out) as reader:
        assert reader.postings("run").docs.tolist() == [0]
        assert reader.postings("runs") is None


def test_stopwords_are_dropped_but_keep_positions(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "the cat and the hat"})
    out = tmp_path / "x.idx"
    config = AnalyzerConfig(stem="none", stopwords=("and", "the"))
    build_index([corpus], out, BuildOptions(processes=1, analyzer=config))
    with IndexReader(out) as reader:
        assert reader.terms() == ["cat", "hat"]
        assert reader.doc_lengths.tolist() == [2]
        assert reader.postings("hat").positions()[1].tolist() == [4]


def test_no_positions_build_is_smaller_and_refuses_positions(tmp_path):
    corpus = write_corpus(tmp_path / "c", random_docs(seed=9, count=30))
    with_pos, without = tmp_path / "a.idx", tmp_path / "b.idx"
    build_index([corpus], with_pos, BuildOptions(processes=1))
    build_index([corpus], without, BuildOptions(processes=1, positions=False))
    assert without.stat().st_size < with_pos.stat().st_size
    with IndexReader(without) as reader:
        postings = reader.postings(reader.term(0))
        with pytest.raises(IndexerError, match="no-positions"):
            postings.positions()


def test_bad_files_are_skipped_and_counted(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"good.txt": "hello world", "empty.txt": "  \n"})
    (corpus / "bin.dat").write_bytes(b"\x7fELF\x00\x01")
    (corpus / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    stats = build_index([corpus], tmp_path / "x.idx", BuildOptions(processes=1))
    assert stats.documents == 2  # good.txt and latin1.txt (decoded with replacement)
    assert stats.skipped_by_reason == {
        "binary": 1,
        "empty": 1,
        "undecodable": 1,
    }
    assert stats.skipped == 2 and stats.repaired == 1  # the latin-1 file is indexed, repaired


def test_nothing_to_index_is_an_error(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"empty.txt": ""})
    with pytest.raises(CorpusError, match="nothing to index"):
        build_index([corpus], tmp_path / "x.idx", BuildOptions(processes=1))
    assert not (tmp_path / "x.idx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary files left


def test_missing_corpus_and_bad_output_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        build_index([tmp_path / "nope"], tmp_path / "x.idx")
    corpus = write_corpus(tmp_path / "c", {"a.txt": "x"})
    with pytest.raises(IndexerError, match="does not exist"):
        build_index([corpus], tmp_path / "missing-folder" / "x.idx")
    with pytest.raises(IndexerError, match="is a folder"):
        build_index([corpus], corpus)


def test_single_file_corpus_uses_file_name_as_id(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"sub/notes.txt": "alpha beta"})
    out = tmp_path / "x.idx"
    build_index([corpus / "sub" / "notes.txt"], out, BuildOptions(processes=1))
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["notes.txt"]


def test_hidden_files_are_skipped_and_ids_are_relative_posix_paths(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a/b/c.txt": "one", ".git/x.txt": "two", ".hidden.txt": "three"})
    out = tmp_path / "x.idx"
    build_index([corpus], out, BuildOptions(processes=1))
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["a/b/c.txt"]


def test_rebuild_replaces_previous_index_atomically(tmp_path):
    rng = random.Random(0)
    corpus = write_corpus(tmp_path / "c", {"a.txt": "first version"})
    out = tmp_path / "x.idx"
    build_index([corpus], out, BuildOptions(processes=1))
    (corpus / "b.txt").write_text(" ".join(rng.choice(["x", "y"]) for _ in range(10)))
    stats = build_index([corpus], out, BuildOptions(processes=1))
    assert stats.documents == 2
    with IndexReader(out) as reader:
        assert reader.doc_count == 2


def test_large_random_vocabulary_matches_reference(tmp_path):
    """Thousands of distinct ASCII words of every length, some past the hashed-word limit, with a
    few non-ASCII documents between them: the hashed and the `re` tokenizers must agree."""
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789_"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 30))) for _ in range(6000)]
    vocab += ["x" * 70, "long" * 20]
    docs = {}
    for i in range(120):
        words = [rng.choice(vocab) for _ in range(rng.randint(1, 400))]
        if i % 17 == 0:
            words.append("naïve")
        docs[f"d{i:03d}.txt"] = " ".join(w.upper() if rng.random() < 0.05 else w for w in words)
    corpus = write_corpus(tmp_path / "c", docs)
    out = tmp_path / "x.idx"
    config = AnalyzerConfig(stem="none", max_term_chars=200)
    build_index([corpus], out, BuildOptions(processes=1, chunk_size=50_000, memory=2_000_000, analyzer=config))
    _assert_matches_reference(out, docs)


@pytest.mark.parametrize("processes", [1, 2])
def test_combining_runs_to_limit_fan_in_keeps_the_index_identical(tmp_path, monkeypatch, processes):
    from indexer.indexing import pipeline as build

    docs = random_docs(seed=13, count=120, max_words=300)
    corpus = write_corpus(tmp_path / "c", docs)
    reference = tmp_path / "ref.idx"
    build_index([corpus], reference, BuildOptions(processes=1))
    monkeypatch.setattr(build, "MIN_FAN_IN", 3)  # ~20 runs -> 7 -> 3: two levels of combining
    monkeypatch.setattr(build, "MAX_FAN_IN", 3)
    merged_from = []  # the runs the range merges read
    original = build._limit_fan_in
    monkeypatch.setattr(build, "_limit_fan_in", lambda *a: merged_from.append(original(*a)) or merged_from[-1])
    out = tmp_path / "x.idx"
    build_index([corpus], out, BuildOptions(processes=processes, chunk_size=4000, memory=50_000))
    assert len(merged_from[0]) <= 3 and all(offset == 0 for _, offset in merged_from[0])
    assert out.read_bytes() == reference.read_bytes()


# --- writing the index: one writer, full disks, links, leftovers -----------------------------------


def test_a_second_writer_of_the_same_index_is_refused_naming_the_first(tmp_path):
    import os

    from indexer.store.files import writer_lock

    corpus = write_corpus(tmp_path / "c", {"a.txt": "one two"})
    out = tmp_path / "x.idx"
    with writer_lock(out):  # as another build would hold it
        with pytest.raises(IndexerError, match=rf"another indexer process \(pid {os.getpid()}\) is writing"):
            build_index([corpus], out, BuildOptions(processes=1))
        assert not out.exists()
    build_index([corpus], out, BuildOptions(processes=1))  # free again, and no lock file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "x.idx"]


@pytest.mark.parametrize("where", ["runs", "numpy short write", "index"])
def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch, where):
    import errno

    import numpy as np

    from indexer.store import index as store_index

    corpus = write_corpus(tmp_path / "c", random_docs(seed=2, count=20))
    out = tmp_path / "out" / "x.idx"
    out.parent.mkdir()
    out.write_bytes(b"")
    build_index([corpus], out, BuildOptions(processes=1))
    before = out.read_bytes()

    def full(*args, **kwargs):
        if where == "numpy short write":  # how numpy's tofile (inside np.save) says it: no errno
            raise OSError("661892 requested and 212960 written")
        raise OSError(errno.ENOSPC, "No space left on device")

    if where in ("runs", "numpy short write"):
        monkeypatch.setattr(np, "save", full)
    else:
        monkeypatch.setattr(store_index, "write_segment", full)
    with pytest.raises(IndexerError) as caught:
        build_index([corpus], out, BuildOptions(processes=1))
    message = str(caught.value)
    assert message.startswith("no space left on device while writing ")
    if where in ("runs", "numpy short write"):
        assert "--tmp-dir" in message and str(out.parent) in message
    else:
        assert str(out) in message
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["x.idx"]


def test_output_through_a_symbolic_link_replaces_its_target_and_keeps_its_mode(tmp_path):
    import os
    import stat

    corpus = write_corpus(tmp_path / "c", {"a.txt": "one two"})
    real = tmp_path / "store" / "real.idx"
    real.parent.mkdir()
    build_index([corpus], real, BuildOptions(processes=1))
    os.chmod(real, 0o640)
    link = tmp_path / "link.idx"
    link.symlink_to(real)
    write_corpus(corpus, {"b.txt": "three"})
    build_index([corpus], link, BuildOptions(processes=1))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    with IndexReader(link) as reader:
        assert reader.doc_count == 2


def test_fifos_in_a_corpus_are_skipped_and_counted(tmp_path):
    import os

    corpus = write_corpus(tmp_path / "c", {"a.txt": "one two"})
    os.mkfifo(corpus / "pipe.txt")
    stats = build_index([corpus], tmp_path / "x.idx", BuildOptions(processes=1))
    assert stats.documents == 1
    assert stats.skipped_by_reason == {"not_regular_file": 1}
    assert stats.skipped_examples["not_regular_file"][0].endswith("pipe.txt")


def test_a_document_larger_than_the_memory_share_is_split_across_runs_and_joined(tmp_path, monkeypatch):
    from indexer.indexing import invert

    rng = random.Random(21)
    vocab = ["alpha", "Beta", "γάμμα", "ΟΔΟΣ", "中文", "naïve", "x" * 80, "the", "e\u0301te\u0301"]
    big = " ".join(rng.choice(vocab) + rng.choice([" ", ",", ".\n"]) for _ in range(30_000))
    docs = {"a.txt": "before the big one", "big.txt": big, "c.txt": "after it, alpha"}
    corpus = write_corpus(tmp_path / "c", docs)
    joined = []
    original = invert._Chunk.join
    monkeypatch.setattr(
        invert._Chunk, "join", lambda self, first: (joined.append(len(self.runs) - first), original(self, first))[1]
    )
    small, whole = tmp_path / "small.idx", tmp_path / "whole.idx"
    for processes in (1, 2):
        build_index([corpus], small, BuildOptions(processes=processes, memory=1, analyzer=LONG_TERMS))
        _assert_matches_reference(small, docs)
    assert joined and joined[0] > 5  # the big document went to several runs (in this process)
    build_index([corpus], whole, BuildOptions(processes=1, analyzer=LONG_TERMS))
    assert small.read_bytes() == whole.read_bytes()
    for options in (BuildOptions(positions=False), BuildOptions(analyzer=AnalyzerConfig(stopwords=("the",)))):
        build_index([corpus], small, replace(options, processes=1, memory=1))
        build_index([corpus], whole, replace(options, processes=1))
        assert small.read_bytes() == whole.read_bytes()


def test_a_huge_jsonl_record_is_split_across_runs_and_matches_reference(tmp_path):
    import json

    rng = random.Random(8)
    vocab = ["River", "café", "ΟΔΟΣ", "中文", "e\u0301te\u0301", "x" * 70, "'quoted'", "a.b", "\u3000"]
    docs = {
        "first": "a short record",
        "huge": "".join(rng.choice(vocab) + rng.choice([" ", ", ", "\n", ""]) for _ in range(60_000)),
        "last": "another short one",
    }
    source = tmp_path / "c.jsonl"
    source.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()), encoding="utf-8")
    small, whole = tmp_path / "small.idx", tmp_path / "whole.idx"
    build_index([source], small, BuildOptions(processes=1, memory=1, analyzer=LONG_TERMS))
    _assert_matches_reference(small, docs)
    build_index([source], whole, BuildOptions(processes=1, analyzer=LONG_TERMS))
    assert small.read_bytes() == whole.read_bytes()


def test_the_buffer_counts_the_words_of_documents_without_text_and_of_documents_in_pieces():
    from indexer.indexing.invert import _Buffer
    from indexer.indexing.vocabulary import Vocabulary

    buf = _Buffer(Vocabulary(Analyzer(NO_STEM), 1000), 0)
    for pieces in (["one two"], [], ["three", " four five"], []):
        for piece in pieces:
            buf.add(piece)
        buf.end_document()
    buf.tokenize()
    assert buf.doc_words.tolist() == [2, 0, 3, 0] and buf.open_words == 0
