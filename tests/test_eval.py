"""Tests for `indexer eval` and search.evaluate_index: metrics on a hand-made corpus worked out by
hand, option errors, and nDCG@10 on Cranfield against bm25s (skipped without ../shared/data)."""

from __future__ import annotations

import json
from math import log2
from pathlib import Path

import pytest
from conftest import write_corpus

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.cli import cli
from indexer.corpus.readers import record_id_and_text
from indexer.evaluate import evaluate, evaluate_index, read_qrels, read_queries
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval.searcher import open_index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NO_STEM = AnalyzerConfig(stem="none")

# Doc lengths 3, 2, 1, 1 (avgdl 1.75). "apple" ranks a (tf 3) above b (tf 1); "banana" ranks the
# shorter c above b. q1: b and d relevant, a judged non-relevant, d never retrieved. q2: graded,
# listed against the ranking (c gain 1 first, b gain 2 second). q3 has no judgments: not evaluated.
DOCS = {"a.txt": "apple apple apple", "b.txt": "apple banana", "c.txt": "banana", "d.txt": "cherry"}
QUERIES = "q1\tapple\nq2\tbanana\nq3\tcherry\n"
QRELS = "q1 0 a.txt 0\nq1 0 b.txt 1\nq1 0 d.txt 1\nq2 0 c.txt 1\nq2 0 b.txt 2\n"
PER_QUERY = {
    "q1": {"ndcg@10": (1 / log2(3)) / (1 + 1 / log2(3)), "map": (1 / 2) / 2, "recall@100": 1 / 2, "mrr@10": 1 / 2},
    "q2": {"ndcg@10": (1 + 2 / log2(3)) / (2 + 1 / log2(3)), "map": (1 + 1) / 2, "recall@100": 1.0, "mrr@10": 1.0},
}
MEAN = {m: (PER_QUERY["q1"][m] + PER_QUERY["q2"][m]) / 2 for m in PER_QUERY["q1"]}


@pytest.fixture
def hand_made(tmp_path) -> tuple[Path, Path, Path]:
    corpus = write_corpus(tmp_path / "corpus", DOCS)
    index = tmp_path / "hand.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    queries, qrels = tmp_path / "queries.tsv", tmp_path / "qrels.txt"
    queries.write_text(QUERIES, encoding="utf-8")
    qrels.write_text(QRELS, encoding="utf-8")
    return index, queries, qrels


def run_eval(runner, index, queries, qrels, *args, ok=True):
    argv = ["eval", str(index), "--queries", str(queries), "--qrels", str(qrels), *map(str, args)]
    result = runner.invoke(cli, argv, catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_eval_json_equals_the_metrics_worked_by_hand(runner, hand_made):
    doc = json.loads(run_eval(runner, *hand_made, "--json").stdout)
    assert set(doc) == {"mean", "per_query", "queries"}
    assert doc["queries"] == 2
    assert list(doc["mean"]) == ["ndcg@10", "map", "recall@100", "mrr@10"]
    assert doc["mean"] == pytest.approx(MEAN, rel=1e-12)
    assert set(doc["per_query"]) == {"q1", "q2"}
    for qid, scores in PER_QUERY.items():
        assert doc["per_query"][qid] == pytest.approx(scores, rel=1e-12)


def test_eval_text_output_with_and_without_per_query(runner, hand_made):
    result = run_eval(runner, *hand_made, "--metrics", "map,p@1")
    assert result.stdout.splitlines() == ["map  0.6250", "p@1  0.5000"]
    assert "2 queries evaluated at depth 1000" in result.stderr
    table = run_eval(runner, *hand_made, "--metrics", "MAP, recall@100", "--per-query").stdout.splitlines()
    assert [line.split() for line in table] == [
        ["query", "map", "recall@100"],
        ["q1", "0.2500", "0.5000"],
        ["q2", "1.0000", "1.0000"],
        ["mean", "0.6250", "0.7500"],
    ]


def test_eval_depth_cuts_the_ranking(runner, hand_made):
    doc = json.loads(run_eval(runner, *hand_made, "-k", "1", "--metrics", "recall@100,mrr", "--json").stdout)
    # q1 keeps only a (non-relevant), q2 only c (one of two relevant)
    assert doc["per_query"] == {"q1": {"recall@100": 0.0, "mrr": 0.0}, "q2": {"recall@100": 0.5, "mrr": 1.0}}


def test_evaluate_index_is_the_library_call_behind_eval(hand_made):
    index, queries, qrels = hand_made
    with open_index(index) as reader:
        evaluation = evaluate_index(reader, read_queries(queries), read_qrels(qrels), list(MEAN), depth=1000)
    assert evaluation.mean == pytest.approx(MEAN, rel=1e-12)
    assert evaluation.queries == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "ndcg@10,bleu"], "unknown metric 'bleu'"),
        (["--metrics", "recall"], "needs a cutoff"),
        (["-k", "0"], "0 is not in the range"),
    ],
)
def test_bad_options_are_usage_errors(runner, hand_made, args, message):
    result = run_eval(runner, *hand_made, *args, ok=False)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_queries_are_plain_words_unless_syntax_is_asked_for(runner, hand_made, tmp_path):
    index, _, qrels = hand_made
    queries = tmp_path / "natural.tsv"
    queries.write_text('q1\t(apple\nq2\tbanana "\n', encoding="utf-8")
    doc = json.loads(run_eval(runner, index, queries, qrels, "--json").stdout)
    assert doc["mean"] == pytest.approx(MEAN, rel=1e-12)
    result = run_eval(runner, index, queries, qrels, "--syntax", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: bad query: query 'q1': unbalanced parenthesis at column 1"


def test_unreadable_qrels_fail_with_one_line(runner, hand_made, tmp_path):
    index, queries, _ = hand_made
    bad = tmp_path / "bad-qrels.txt"
    bad.write_text("q1 0 a.txt\n", encoding="utf-8")
    result = run_eval(runner, index, queries, bad, ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {bad}:1: expected 'query_id iteration doc_id relevance', got 3 fields"
    ]


# --- Cranfield against bm25s ---------------------------------------------------------------------


@pytest.mark.skipif(not (DATA / "cranfield" / "corpus.jsonl").exists(), reason="../shared/data is absent")
def test_cranfield_ndcg_matches_bm25s(tmp_path):
    bm25s = pytest.importorskip("bm25s")
    folder = DATA / "cranfield"
    index = tmp_path / "cranfield.idx"
    build_index([folder / "corpus.jsonl"], index, BuildOptions(processes=1, analyzer=NO_STEM))
    queries, qrels = read_queries(folder / "queries.tsv"), read_qrels(folder / "qrels.txt")
    with open_index(index) as reader:
        ours = evaluate_index(reader, queries, qrels, ["ndcg@10"], depth=1000, k1=0.9, b=0.4)

    analyzer = Analyzer(NO_STEM)
    ids, tokens = [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc_id, text = record_id_and_text(json.loads(line))  # title + " " + text
            if doc_id is not None and text.strip():  # the records our reader indexes
                ids.append(doc_id)
                tokens.append(analyzer.terms(text))
    model = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    model.index(tokens, show_progress=False)
    docs, scores = model.retrieve([analyzer.terms(text) for _, text in queries], k=1000, show_progress=False)
    run = {
        qid: [ids[d] for d, s in zip(row.tolist(), row_scores.tolist()) if s > 0]
        for (qid, _), row, row_scores in zip(queries, docs, scores)
    }
    theirs = evaluate(run, qrels, ["ndcg@10"])
    assert ours.queries == theirs.queries == 225
    assert abs(ours.mean["ndcg@10"] - theirs.mean["ndcg@10"]) < 0.005
    assert abs(ours.mean["ndcg@10"] - 0.3276) < 0.005  # the reference figure in shared/data/README.md


def test_eval_warns_when_qrels_do_not_belong_to_the_index(runner, small_index, tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tmerge sort\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 not-a-document 1\n")
    result = runner.invoke(cli, ["eval", str(small_index), "--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 0
    assert "no document judged in" in result.stderr and "wrong index?" in result.stderr
    other = tmp_path / "other.txt"
    other.write_text("q9 0 not-a-document 1\n")
    result = runner.invoke(cli, ["eval", str(small_index), "--queries", str(queries), "--qrels", str(other)])
    assert "no query id in" in result.stderr
