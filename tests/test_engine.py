"""The block engine against its oracle: on random corpora and random queries, the pruning top-k
engine returns the same hits, the same scores to the last bit and the same order as the
exhaustive engine, for several k, k1 and b, with AND/OR/NOT, phrases and repeated words; and its
hit count is exact, or a true lower bound marked "gte"."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import write_corpus

from indexer.analysis import AnalyzerConfig
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval import engine
from indexer.retrieval.searcher import Searcher, open_index

# a Zipf-like vocabulary: the first words are in most documents (many blocks), the last in few
VOCAB = [f"w{i}" for i in range(40)]
WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(VOCAB))]


def _corpus(tmp_path, seed: int, docs: int = 700):
    rng = random.Random(seed)
    texts = {}
    for d in range(docs):
        length = rng.choice([3, 8, 20, 60, 200])
        texts[f"d{d:04d}.txt"] = " ".join(rng.choices(VOCAB, WEIGHTS, k=length))
    corpus = write_corpus(tmp_path / f"c{seed}", texts)
    index = tmp_path / f"c{seed}.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none")))
    return index


def _query(rng: random.Random, depth: int = 0) -> str:
    def atom() -> str:
        roll = rng.random()
        if roll < 0.2:
            return '"' + " ".join(rng.choices(VOCAB[:12], k=rng.randint(2, 3))) + '"'
        if roll < 0.3 and depth < 1:
            return f"({_query(rng, depth + 1)})"
        return rng.choice(VOCAB)

    a, b = atom(), atom()
    return rng.choice([f"{a} {b}", f"{a} AND {b}", f"{a} OR {b}", f"{a} -{b}", f"+{a} {b}", f"{a} NOT {b}", a])


def _plain(rng: random.Random) -> str:
    return " ".join(rng.choices(VOCAB, WEIGHTS, k=rng.randint(1, 5)))


def _same(fast, slow, query: str) -> None:
    assert [h.doc_id for h in fast.hits] == [h.doc_id for h in slow.hits], query
    assert [h.score for h in fast.hits] == [h.score for h in slow.hits], query  # bit for bit
    if fast.total_hits_relation == "eq":
        assert fast.total_hits == slow.total_hits, query
    else:
        assert len(fast.hits) <= fast.total_hits <= slow.total_hits, query


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.2, 0.75), (2.0, 1.0), (0.5, 0.0)])
@pytest.mark.parametrize("prune", ["always", "default"])
def test_block_engine_equals_the_exhaustive_engine(tmp_path, monkeypatch, k1, b, prune):
    if prune == "always":  # every plain query through the pruning path, however small
        monkeypatch.setattr(engine, "EXHAUSTIVE_BELOW", 0)
    index = _corpus(tmp_path, seed=int(k1 * 10 + b * 100))
    rng = random.Random(7)
    with open_index(index) as reader:
        assert max(s.header(i).nblocks for s in reader.segments for i in range(s.term_count)) > 3
        fast = Searcher(reader, k1, b)
        slow = Searcher(reader, k1, b, engine="exhaustive")
        queries = [_plain(rng) for _ in range(40)] + [_query(rng) for _ in range(40)]
        queries += ["w0 w0 w1", "w0 (w1 w0)", '"w0 w1" w0', "w39 w0", "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"]
        for query in queries:
            for k in (1, 10, 1000):
                _same(fast.search(query, k=k), slow.search(query, k=k), query)
                counted = fast.search(query, k=k, count=True)
                assert counted.total_hits_relation == "eq" and counted.total_hits == slow.search(query, k=k).total_hits


def test_pruning_skips_blocks_and_still_counts_at_least_the_hits(tmp_path, monkeypatch):
    rng = random.Random(5)
    texts = {
        f"d{d:05d}.txt": " ".join(rng.choices(["alpha", "beta", "gamma"], k=rng.randint(5, 60))) for d in range(4000)
    }
    for d in (17, 1900, 3333):  # a rare word, in three documents far apart
        texts[f"d{d:05d}.txt"] += " zebra"
    corpus = write_corpus(tmp_path / "c", texts)
    index = tmp_path / "c.idx"
    build_index([corpus], index, BuildOptions(processes=1))
    decoded = []
    original = engine.decode

    def counting(segment, chosen):
        docs, tfs, per_term = original(segment, chosen)
        decoded.append(len(docs))
        return docs, tfs, per_term

    monkeypatch.setattr(engine, "decode", counting)
    with open_index(index) as reader:
        everything = sum(reader.postings(t).docs.size for t in ("alpha", "beta", "zebra"))
        result = Searcher(reader).search("alpha beta zebra", k=3)
        slow = Searcher(reader, engine="exhaustive").search("alpha beta zebra", k=3)
    assert [h.doc for h in result.hits] == [h.doc for h in slow.hits]
    assert {h.doc for h in result.hits} == {"d00017.txt", "d01900.txt", "d03333.txt"}
    assert sum(decoded) < everything / 4  # most blocks of the common words were never decoded
    assert result.total_hits_relation == "gte" and 3 <= result.total_hits < slow.total_hits


def test_no_work_grows_with_the_collection_for_a_rare_word(tmp_path, monkeypatch):
    """A query for a word in one document decodes one block, whatever the collection's size."""
    sizes = []
    for docs in (300, 3000):
        texts = {f"d{d:05d}.txt": "common words here" for d in range(docs)} | {"rare.txt": "a zebra here"}
        corpus = write_corpus(tmp_path / f"c{docs}", texts)
        index = tmp_path / f"c{docs}.idx"
        build_index([corpus], index, BuildOptions(processes=1))
        seen = []
        original = engine.decode
        spy = lambda segment, chosen, seen=seen, original=original: seen.append(chosen) or original(segment, chosen)
        monkeypatch.setattr(engine, "decode", spy)
        with open_index(index) as reader:
            result = Searcher(reader).search("zebra", k=10)
        assert [h.doc for h in result.hits] == ["rare.txt"]
        sizes.append(sum(int(np.size(p.blocks["count"])) for chosen in seen for p, _ in chosen))
        monkeypatch.setattr(engine, "decode", original)
    assert sizes == [1, 1]


@pytest.mark.parametrize("prune", ["always", "default"])
def test_deleted_documents_never_raise_the_bar(tmp_path, monkeypatch, prune):
    """The best-scoring documents deleted (and a second segment added): pruning must bound with
    live documents only, or a live document that belongs in the top k is skipped."""
    from indexer.indexing.update import UpdateOptions, delete_documents

    if prune == "always":
        monkeypatch.setattr(engine, "EXHAUSTIVE_BELOW", 0)
    index = _corpus(tmp_path, seed=3)
    rng = random.Random(11)
    queries = [_plain(rng) for _ in range(30)] + ["w0 w39", "w1 w30 w0", "w2 w3"]
    with open_index(index) as reader:
        top = Searcher(reader, 1.2, 0.75)
        doomed = {h.doc for q in queries for h in top.search(q, k=3).hits}
    delete_documents(index, sorted(doomed), UpdateOptions(merge=False))
    with open_index(index) as reader:
        assert len(reader.deletions[0].docs) == len(doomed) > 20
        fast = Searcher(reader, 1.2, 0.75)
        slow = Searcher(reader, 1.2, 0.75, engine="exhaustive")
        for query in queries:
            for k in (1, 3, 10):
                _same(fast.search(query, k=k), slow.search(query, k=k), query)
