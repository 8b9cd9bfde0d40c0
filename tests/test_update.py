"""Updates: after any sequence of adds, changes, removals, deletions and merges, every query's hits
and scores equal those of a fresh build of the same documents; an update killed at any point
leaves the index before or after it; one writer at a time; the command line around them."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import WORDS, write_corpus

from indexer.analysis import AnalyzerConfig
from indexer.cli import cli
from indexer.errors import IndexerError
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.indexing.update import UpdateOptions, delete_documents, optimize_index, update_index
from indexer.retrieval.searcher import Searcher, open_index
from indexer.store import policy
from indexer.store.files import writer_lock

OPTIONS = BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none"))
QUERIES = ["merge sort", "run", "the of and", "disk memory worker", '"merge sort"', "café river", "run -disk", "index"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(1, 40)))


def _results(index: Path) -> dict[str, dict[str, float]]:
    with open_index(index) as reader:
        searcher = Searcher(reader)
        return {q: {h.doc: h.score for h in searcher.search(q, k=10_000).hits} for q in QUERIES}


def _assert_same_as_fresh(index: Path, corpus: Path, tmp_path: Path, hidden: set[str]) -> None:
    """The index answers like a fresh build of the corpus without the `hidden` (deleted) ids."""
    fresh_corpus = tmp_path / "fresh-corpus"
    shutil.rmtree(fresh_corpus, ignore_errors=True)
    shutil.copytree(corpus, fresh_corpus)
    for name in hidden:
        (fresh_corpus / name).unlink(missing_ok=True)
    fresh = tmp_path / "fresh.idx"
    build_index([fresh_corpus], fresh, OPTIONS)
    got, want = _results(index), _results(fresh)
    for query in QUERIES:
        assert got[query].keys() == want[query].keys(), query
        for doc, score in want[query].items():
            assert got[query][doc] == pytest.approx(score, rel=1e-9, abs=1e-12), (query, doc)
        ranked = sorted(got[query].values(), reverse=True)
        assert ranked == sorted(want[query].values(), reverse=True) or all(
            a == pytest.approx(b, rel=1e-9) for a, b in zip(ranked, sorted(want[query].values(), reverse=True))
        )
    with open_index(index) as reader, open_index(fresh) as other:
        assert reader.doc_count == other.doc_count
        assert reader.meta.tokens == other.meta.tokens
        assert reader.verify() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_sequence_of_updates_scores_like_a_fresh_build(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(policy, "MERGE_FACTOR", 3)  # merges happen within a short sequence
    rng = random.Random(seed)
    corpus = write_corpus(tmp_path / "corpus", {f"d{i:03d}.txt": _text(rng) for i in range(30)})
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    hidden: set[str] = set()
    for step in range(10):
        files = sorted(p.name for p in corpus.iterdir())
        action = rng.choice(["add", "change", "remove", "delete", "optimize", "mixed"])
        if action in ("add", "mixed"):
            for _ in range(rng.randint(1, 3)):
                (corpus / f"n{step}-{rng.randint(0, 999):03d}.txt").write_text(_text(rng), encoding="utf-8")
        if action in ("change", "mixed"):
            for name in rng.sample(files, min(3, len(files))):
                (corpus / name).write_text(_text(rng), encoding="utf-8")
                hidden.discard(name)  # a changed file is indexed again
        if action in ("remove", "mixed"):
            for name in rng.sample(files, min(2, len(files) - 5)):
                (corpus / name).unlink()
                hidden.discard(name)
        if action == "delete":
            names = rng.sample(files, 2)
            stats = delete_documents(index, names)
            assert stats.documents_deleted == len(set(names) - hidden)
            hidden.update(names)
        elif action == "optimize":
            assert optimize_index(index).segments == 1
        else:
            stats = update_index(index)
            assert not stats.up_to_date
        _assert_same_as_fresh(index, corpus, tmp_path, hidden)
    stats = update_index(index)
    assert stats.up_to_date and stats.unchanged == len(list(corpus.iterdir()))


def test_nothing_changed_is_up_to_date_and_leaves_the_file_alone(tmp_path):
    import gzip

    corpus = write_corpus(tmp_path / "c", {"a.txt": "one", "b.txt": "two"})
    (corpus / "c.txt.gz").write_bytes(gzip.compress(b"three"))
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    before = os.stat(index)
    os.utime(corpus / "a.txt")  # touched, not changed: the bytes still have their checksum
    os.utime(corpus / "c.txt.gz", ns=(1, 1))  # also a compressed file (its text has the checksum)
    stats = update_index(index)
    assert stats.up_to_date and stats.unchanged == 3 and stats.documents == 3
    after = os.stat(index)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_second_writer_is_refused_and_readers_keep_their_view(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "merge one"})
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    (corpus / "b.txt").write_text("merge two", encoding="utf-8")
    with open_index(index) as reader:
        with writer_lock(index), pytest.raises(IndexerError, match=r"another indexer process \(pid \d+\)"):
            update_index(index)
        update_index(index)  # the lock is free again: the update runs while a reader is open
        assert [h.doc for h in Searcher(reader).search("merge").hits] == ["a.txt"]  # its own view
    with open_index(index) as reader:
        assert sorted(h.doc for h in Searcher(reader).search("merge").hits) == ["a.txt", "b.txt"]


def test_stats_show_segments_and_deleted_documents(runner, tmp_path):
    corpus = write_corpus(tmp_path / "c", {f"d{i}.txt": f"word{i} shared" for i in range(6)})
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    (corpus / "d1.txt").write_text("replaced shared", encoding="utf-8")
    update_index(index, UpdateOptions(merge=False))
    stats = json.loads(runner.invoke(cli, ["stats", str(index), "--json"]).stdout)
    assert stats["segments"] == 2 and stats["documents"] == 6 and stats["deleted_documents"] == 1
    assert stats["deleted_bytes"] > 0
    result = runner.invoke(cli, ["optimize", str(index), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["segments"] == 1
    stats = json.loads(runner.invoke(cli, ["stats", str(index), "--json"]).stdout)
    assert stats["deleted_documents"] == 0 and stats["deleted_bytes"] == 0


def test_the_merge_policy_keeps_few_segments_and_queries_are_the_same_optimized(tmp_path):
    rng = random.Random(4)
    corpus = write_corpus(tmp_path / "c", {f"d{i:03d}.txt": _text(rng) for i in range(20)})
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    counts = []
    for step in range(12):
        (corpus / f"new{step:02d}.txt").write_text(_text(rng), encoding="utf-8")
        counts.append(update_index(index).segments)
    # logarithmic: at most MERGE_FACTOR - 1 segments per size class, and 32 documents span 3 classes
    assert max(counts) <= 3 * (policy.MERGE_FACTOR - 1) + 1 and counts[-1] < 12
    before = _results(index)
    optimize_index(index)
    assert _same(_results(index), before)


def _same(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        got[q].keys() == want[q].keys() and all(got[q][d] == pytest.approx(s, rel=1e-9) for d, s in want[q].items())
        for q in want
    )


def test_update_add_delete_and_optimize_on_the_command_line(runner, tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "alpha", "b.txt": "beta"})
    index = tmp_path / "x.idx"
    assert runner.invoke(cli, ["build", str(corpus), "-o", str(index), "-q"]).exit_code == 0
    result = runner.invoke(cli, ["update", str(index)])
    assert result.exit_code == 0 and "is up to date (2 files unchanged)" in result.stderr
    (corpus / "c.txt").write_text("gamma", encoding="utf-8")
    summary = json.loads(runner.invoke(cli, ["update", str(index), "--json"]).stdout)
    assert {k: summary[k] for k in ("added", "changed", "removed", "unchanged")} == {
        "added": 1,
        "changed": 0,
        "removed": 0,
        "unchanged": 2,
    }
    assert summary["up_to_date"] is False and summary["seconds"] > 0
    other = write_corpus(tmp_path / "more", {"d.txt": "delta"})
    result = runner.invoke(cli, ["add", str(index), str(other)])
    assert result.exit_code == 0, result.stderr
    with open_index(index) as reader:
        assert sorted(reader.doc_names()) == ["a.txt", "b.txt", "c.txt", "d.txt"]
        assert str(other) in reader.meta.corpus.paths  # update follows it from now on
    (other / "d.txt").unlink()
    assert json.loads(runner.invoke(cli, ["update", str(index), "--json"]).stdout)["removed"] == 1
    result = runner.invoke(cli, ["delete", str(index), "--id", "a.txt", "--id", "nope.txt"])
    assert result.exit_code == 1 and "no live document has the id 'nope.txt'" in result.stderr
    assert "Deleted 1 document" in result.stderr
    result = runner.invoke(cli, ["optimize", str(index)])
    assert result.exit_code == 0 and "1 segment" in result.stderr
    with open_index(index) as reader:
        assert sorted(reader.doc_names()) == ["b.txt", "c.txt"]
    missing = runner.invoke(cli, ["update", str(tmp_path / "none.idx")])
    assert missing.exit_code == 2


def _indexer() -> list[str]:
    import sys

    script = Path(sys.executable).with_name("indexer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "indexer"]


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8, 1.5])
def test_an_update_killed_at_any_point_leaves_the_index_before_or_after(tmp_path, delay):
    rng = random.Random(9)
    corpus = write_corpus(tmp_path / "c", {f"d{i:04d}.txt": _text(rng) * 40 for i in range(400)})
    index = tmp_path / "x.idx"
    build_index([corpus], index, OPTIONS)
    before = _results(index)
    for i in range(0, 400, 3):
        (corpus / f"d{i:04d}.txt").write_text(_text(rng) * 40, encoding="utf-8")
    proc = subprocess.Popen([*_indexer(), "update", str(index), "-p", "2"], stderr=subprocess.PIPE)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(0.5)  # the workers notice and leave
    with open_index(index) as reader:
        assert reader.verify() == []
    now = _results(index)
    after_index = tmp_path / "after.idx"
    build_index([corpus], after_index, OPTIONS)
    after = _results(after_index)
    assert _same(now, before) or _same(now, after)
    update_index(index)  # and the next update finishes the job, removing what the killed one left
    assert _same(_results(index), after)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".indexer-", ".x.idx"))]


@pytest.mark.parametrize("then", ["nothing", "optimize"])
def test_a_deleted_document_stays_deleted_when_its_whole_segment_empties(tmp_path, then):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "alpha"})
    index = tmp_path / "x.idx"
    build_index([corpus], index, BuildOptions(processes=1))
    (corpus / "new.txt").write_text("xylophone", encoding="utf-8")
    update_index(index, UpdateOptions(processes=1))  # new.txt alone in a second segment
    assert delete_documents(index, ["new.txt"]).documents_deleted == 1
    if then == "optimize":
        optimize_index(index)
    assert update_index(index, UpdateOptions(processes=1)).documents_added == 0
    with open_index(index) as reader:
        assert Searcher(reader).search("xylophone").hits == []
    (corpus / "new.txt").write_text("xylophone again", encoding="utf-8")  # changed: indexed again
    assert update_index(index, UpdateOptions(processes=1)).documents_added == 1
    with open_index(index) as reader:
        assert [h.doc for h in Searcher(reader).search("xylophone").hits] == ["new.txt"]


def test_add_warns_of_ids_the_index_already_has(runner, tmp_path):
    first = write_corpus(tmp_path / "a", {"copyright": "one"})
    second = write_corpus(tmp_path / "b", {"copyright": "two", "other": "three"})
    index = tmp_path / "x.idx"
    build_index([first], index, OPTIONS)
    result = runner.invoke(cli, ["add", str(index), str(second)])
    assert result.exit_code == 0, result.output
    assert "1 indexed with repairs: 1 duplicate id" in result.stderr and "copyright" in result.stderr
