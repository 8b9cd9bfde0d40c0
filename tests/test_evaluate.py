"""Tests for indexer.evaluate: metrics worked by hand, file readers, run writer, properties."""

import io
from math import log2
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.errors import IndexerError
from indexer.evaluate import (
    Evaluation,
    evaluate,
    parse_metrics,
    read_qrels,
    read_queries,
    write_trec_run,
)

ALL = ["ndcg@2", "ndcg@4", "ndcg", "map", "map@2", "recall@2", "recall@10", "p@2", "p@10", "mrr", "mrr@1"]

# q1, binary: d1, d2, d4 relevant (R = 3), d3 judged non-relevant, d5 unjudged, d4 never retrieved.
Q1_QRELS = {"d1": 1, "d2": 1, "d3": 0, "d4": 1}
Q1_RUN = ["d3", "d1", "d5", "d2"]  # relevant at ranks 2 and 4

# q2, graded and listed out of gain order so that an unsorted "ideal" would give another value:
# c=1, b=2, a=3 relevant (R = 3), d=0 and e=-1 non-relevant.
Q2_QRELS = {"c": 1, "b": 2, "a": 3, "d": 0, "e": -1}
Q2_RUN = ["c", "e", "a", "b"]  # gains 1, 0, 3, 2


def scores(run, qrels, metrics=ALL):
    return evaluate(run, qrels, metrics).per_query


def test_binary_run_matches_hand_computed_values():
    got = scores({"q1": Q1_RUN}, {"q1": Q1_QRELS})["q1"]
    # AP = (P@2 + P@4) / R = (1/2 + 2/4) / 3 = 1/3
    assert got["map"] == pytest.approx(1 / 3)
    # AP cut at 2: only the hit at rank 2 counts, still divided by R: (1/2) / 3 = 1/6
    assert got["map@2"] == pytest.approx(1 / 6)
    # nDCG@4: DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    #         IDCG = 1 + 1/log2(3) + 1/log2(4) = 2.13093 (three relevant)  -> 0.498189
    assert got["ndcg@4"] == pytest.approx(0.498189257, abs=1e-9)
    assert got["ndcg"] == pytest.approx(0.498189257, abs=1e-9)  # whole run = the same 4 ranks
    # nDCG@2: DCG = 1/log2(3) = 0.63093; IDCG@2 = 1 + 1/log2(3) = 1.63093  -> 0.386853
    assert got["ndcg@2"] == pytest.approx(0.386852807, abs=1e-9)
    assert got["recall@2"] == pytest.approx(1 / 3)  # d1 of {d1, d2, d4}
    assert got["p@2"] == pytest.approx(1 / 2)
    assert got["mrr"] == pytest.approx(1 / 2)  # first relevant at rank 2
    assert got["mrr@1"] == 0.0  # ... which is outside the top 1


def test_cutoff_larger_than_run_divides_precision_by_k():
    got = scores({"q1": Q1_RUN}, {"q1": Q1_QRELS})["q1"]
    assert got["p@10"] == pytest.approx(2 / 10)  # 2 relevant in 4 retrieved, still over k = 10
    assert got["recall@10"] == pytest.approx(2 / 3)


def test_graded_ndcg_sorts_ideal_gains_and_ignores_negative_grades():
    got = scores({"q2": Q2_RUN}, {"q2": Q2_QRELS})["q2"]
    # nDCG@2: DCG = 1/log2(2) + 0 = 1 (e has grade -1: gain 0, not -1)
    #         IDCG@2 = 3 + 2/log2(3) = 4.26186                          -> 0.234639363
    assert got["ndcg@2"] == pytest.approx(1 / (3 + 2 / log2(3)))
    assert got["ndcg@2"] == pytest.approx(0.234639363, abs=1e-9)
    # nDCG (whole run): DCG = 1 + 0 + 3/log2(4) + 2/log2(5) = 2.5 + 0.86135 = 3.36135
    #   IDCG = 3 + 2/log2(3) + 1/log2(4) = 4.76186 (ideal a, b, c; not c, b, a = 3.76186)
    assert got["ndcg"] == pytest.approx(0.705890863, abs=1e-9)
    # Binary view: a, b, c relevant at ranks 1, 3, 4; AP = (1/1 + 2/3 + 3/4) / 3 = 0.805556
    assert got["map"] == pytest.approx(0.805555556, abs=1e-9)
    assert got["p@2"] == pytest.approx(1 / 2)
    assert got["mrr"] == 1.0


def test_graded_ndcg_at_3_by_hand():
    got = scores({"q2": Q2_RUN}, {"q2": Q2_QRELS}, ["ndcg@3"])["q2"]
    # DCG@3 = 1 + 0 + 3/2 = 2.5; IDCG@3 = 3 + 2/log2(3) + 1/2 = 4.76186 -> 0.525005
    # (an ideal taken in qrels order c, b, a would give 2.5 / 3.76186 = 0.664565)
    assert got["ndcg@3"] == pytest.approx(0.525004989, abs=1e-9)


def test_rank_order_is_used_as_given():
    forward = scores({"q1": Q1_RUN}, {"q1": Q1_QRELS}, ["map"])["q1"]["map"]
    backward = scores({"q1": Q1_RUN[::-1]}, {"q1": Q1_QRELS}, ["map"])["q1"]["map"]
    # reversed: d2, d5, d1, d3 -> relevant at 1 and 3: (1 + 2/3) / 3 = 5/9
    assert forward == pytest.approx(1 / 3)
    assert backward == pytest.approx(5 / 9)


def test_duplicate_docs_keep_the_first_occurrence():
    # Without dedup, d1 would count twice: ranks 1 and 2 -> AP (1 + 1) / 3.
    got = scores({"q1": ["d1", "d1", "d3", "d2"]}, {"q1": Q1_QRELS}, ["map", "p@2"])["q1"]
    # after dedup: d1, d3, d2 -> relevant at 1 and 3: AP = (1 + 2/3) / 3 = 5/9; P@2 = 1/2
    assert got["map"] == pytest.approx(5 / 9)
    assert got["p@2"] == pytest.approx(1 / 2)


def test_no_relevant_retrieved_scores_zero():
    got = scores({"q1": ["d3", "d5", "zz"]}, {"q1": Q1_QRELS})["q1"]
    assert got == {m: 0.0 for m in ALL}


def test_which_queries_are_averaged():
    run = {"q1": Q1_RUN, "q2": Q2_RUN, "only_in_run": ["d1"], "no_rel": ["x"]}
    qrels = {
        "q1": Q1_QRELS,
        "q2": Q2_QRELS,
        "missing": {"m1": 2},  # judged but not in the run: 0 on every metric, still averaged
        "no_rel": {"x": 0, "y": -1},  # no relevant doc: excluded, as trec_eval does
    }
    result = evaluate(run, qrels, ["map", "p@2"])
    assert isinstance(result, Evaluation)
    assert result.queries == 3
    assert set(result.per_query) == {"q1", "q2", "missing"}
    assert result.per_query["missing"] == {"map": 0.0, "p@2": 0.0}
    # mean AP = (1/3 + 0.805556 + 0) / 3 = 0.379630
    assert result.mean["map"] == pytest.approx((1 / 3 + (1 + 2 / 3 + 3 / 4) / 3) / 3)
    assert result.mean["p@2"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_metric_names_are_normalised_in_results():
    result = evaluate({"q1": Q1_RUN}, {"q1": Q1_QRELS}, [" P@02 ", "MAP"])
    assert set(result.mean) == {"p@2", "map"}


def test_evaluate_with_nothing_to_evaluate_raises():
    with pytest.raises(IndexerError, match="no query"):
        evaluate({"q": ["a"]}, {"q": {"a": 0}}, ["map"])


def test_evaluate_rejects_unknown_metric():
    with pytest.raises(IndexerError, match="supported"):
        evaluate({"q1": Q1_RUN}, {"q1": Q1_QRELS}, ["bpref"])


# --- parse_metrics -------------------------------------------------------------------------------


def test_parse_metrics_normalises_and_deduplicates():
    spec = "nDCG@10, map ,recall@100,MRR@10,P@10,ndcg,mrr,map@5,ndcg@010"
    assert parse_metrics(spec) == [
        "ndcg@10",
        "map",
        "recall@100",
        "mrr@10",
        "p@10",
        "ndcg",
        "mrr",
        "map@5",
    ]


@pytest.mark.parametrize(
    "spec",
    ["bpref", "ndcg@0", "ndcg@x", "ndcg@", "map@-1", "recall", "p", "", "map,,p@5", "ndcg@1.5", "p@²"],
)
def test_parse_metrics_rejects_bad_specs_and_lists_supported(spec):
    with pytest.raises(IndexerError) as info:
        parse_metrics(spec)
    message = str(info.value)
    for name in ("ndcg@k", "map@k", "recall@k", "p@k", "mrr@k"):
        assert name in message


# --- readers -------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_queries_tsv(tmp_path):
    path = write(tmp_path, "queries.tsv", "1\tmerge sort\n\n2\tbinary\tsearch tree\r\n  \n")
    assert read_queries(path) == [("1", "merge sort"), ("2", "binary\tsearch tree")]


def test_read_queries_jsonl_accepts_each_key_spelling(tmp_path):
    lines = [
        '{"_id": "a", "text": "alpha"}',
        "",
        '{"id": "b", "query": "beta"}',
        '{"query_id": 3, "title": "gamma", "metadata": {}}',
    ]
    path = write(tmp_path, "q.jsonl", "\n".join(lines) + "\n")
    assert read_queries(path) == [("a", "alpha"), ("b", "beta"), ("3", "gamma")]


def test_read_queries_detects_json_by_first_character(tmp_path):
    path = write(tmp_path, "queries.txt", '\n  {"_id": "x", "text": "tab\\tinside"}\n')
    assert read_queries(path) == [("x", "tab\tinside")]


@pytest.mark.parametrize(
    "name, text, line, what",
    [
        ("q.tsv", "1\tok\n2 no tab here\n", 2, "query_id<TAB>text"),
        ("q.tsv", "1\tok\n\n\t orphan text\n", 3, "query_id<TAB>text"),
        ("q.tsv", "1\tok\n2\t  \n", 2, "empty text"),
        ("q.tsv", "1\tok\n2\tb\n1\tagain\n", 3, "duplicate query id '1'"),
        ("q.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', 2, "invalid JSON"),
        ("q.jsonl", '["a", "x"]\n', 1, "JSON object"),
        ("q.jsonl", '{"_id": "a"}\n', 1, "missing query text"),
        ("q.jsonl", '{"text": "x"}\n', 1, "missing query id"),
        ("q.json", '{"_id": "a", "text": 5}\n', 1, "missing query text"),
    ],
)
def test_read_queries_errors_name_file_and_line(tmp_path, name, text, line, what):
    path = write(tmp_path, name, text)
    with pytest.raises(IndexerError) as info:
        read_queries(path)
    assert f"{name}:{line}:" in str(info.value)
    assert what in str(info.value)


def test_unreadable_files_raise_indexer_error_naming_the_file(tmp_path):
    with pytest.raises(IndexerError, match="nope.tsv"):
        read_queries(tmp_path / "nope.tsv")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"q1 0 caf\xe9 1\n")
    with pytest.raises(IndexerError, match="latin1.txt: not UTF-8"):
        read_qrels(bad)


def test_read_qrels(tmp_path):
    path = write(tmp_path, "qrels.txt", "q1 0 d1 2\n\nq1 0 d2 0\nq2\t0\td9\t-1\nq1 Q0 d3 1\n")
    assert read_qrels(path) == {"q1": {"d1": 2, "d2": 0, "d3": 1}, "q2": {"d9": -1}}


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("q1 0 d1 1\nq1 0 d2\n", 2, "expected 'query_id iteration doc_id relevance'"),
        ("q1 0 d1 1\nq1 0 d2 1 extra\n", 2, "expected 'query_id iteration doc_id relevance'"),
        ("q1 0 d1 1\n\nq1 0 d2 high\n", 3, "'high' is not an integer"),
        ("q1 0 d1 1\nq1 0 d1 2\n", 2, "repeated judgment"),
    ],
)
def test_read_qrels_errors_name_file_and_line(tmp_path, text, line, what):
    path = write(tmp_path, "qrels.txt", text)
    with pytest.raises(IndexerError) as info:
        read_qrels(path)
    assert f"qrels.txt:{line}:" in str(info.value)
    assert what in str(info.value)


# --- run writer ----------------------------------------------------------------------------------


def test_write_trec_run_lines():
    out = io.StringIO()
    write_trec_run(out, "q7", [("b", 12.5), ("a", 0.123456789), ("c", 0.123456781)], "bm25")
    assert out.getvalue().splitlines() == [
        "q7 Q0 b 1 12.50000000 bm25",
        "q7 Q0 a 2 0.12345679 bm25",  # distinct from the next at 8 decimals, not at 6
        "q7 Q0 c 3 0.12345678 bm25",
    ]


def test_write_trec_run_with_no_hits_writes_nothing():
    out = io.StringIO()
    write_trec_run(out, "q1", [], "run")
    assert out.getvalue() == ""


@pytest.mark.parametrize("qid, docid, run_name", [("q 1", "d", "r"), ("q", "d d", "r"), ("q", "d", ""), ("", "d", "r")])
def test_write_trec_run_refuses_ids_with_spaces(qid, docid, run_name):
    with pytest.raises(IndexerError):
        write_trec_run(io.StringIO(), qid, [(docid, 1.0)], run_name)


def test_written_run_reads_back_as_qrels_shaped_lines(tmp_path):
    out = io.StringIO()
    write_trec_run(out, "q1", [(d, 1.0 / (i + 1)) for i, d in enumerate(Q1_RUN)], "x")
    ranked = [line.split()[2] for line in out.getvalue().splitlines()]
    assert evaluate({"q1": ranked}, {"q1": Q1_QRELS}, ["map"]).mean["map"] == pytest.approx(1 / 3)


# --- properties ----------------------------------------------------------------------------------

DOCS = [f"d{i}" for i in range(12)]
PROPERTY_METRICS = ["ndcg", "ndcg@1", "ndcg@5", "map", "map@3", "recall@5", "p@1", "p@5", "mrr", "mrr@3"]

judgments = st.dictionaries(st.sampled_from(DOCS[:8]), st.integers(-1, 4), min_size=1).filter(
    lambda j: any(r >= 1 for r in j.values())
)


@given(judged=judgments, ranked=st.lists(st.sampled_from(DOCS), max_size=15))
def test_every_metric_lies_in_unit_interval(judged, ranked):
    got = scores({"q": ranked}, {"q": judged}, PROPERTY_METRICS)["q"]
    for metric, value in got.items():
        assert 0.0 <= value <= 1.0 + 1e-12, (metric, value)


@given(judged=judgments, tail=st.lists(st.sampled_from(DOCS), max_size=6), data=st.data())
def test_ideal_ranking_scores_one(judged, tail, data):
    relevant = [d for d, r in judged.items() if r >= 1]
    # any order that is non-increasing in grade is ideal; shuffle before a stable sort by grade
    shuffled = data.draw(st.permutations(relevant))
    ideal = sorted(shuffled, key=lambda d: -judged[d])
    got = scores({"q": ideal + tail}, {"q": judged}, ["ndcg", "ndcg@3", "map", "mrr"])["q"]
    assert got["ndcg"] == pytest.approx(1.0)
    assert got["ndcg@3"] == pytest.approx(1.0)
    assert got["map"] == pytest.approx(1.0)
    assert got["mrr"] == 1.0
    recall_at_r = f"recall@{len(relevant)}"
    assert scores({"q": ideal}, {"q": judged}, [recall_at_r])["q"][recall_at_r] == 1.0


@given(judged=judgments, ranked=st.lists(st.sampled_from(DOCS), max_size=15))
def test_a_non_ideal_ranking_never_beats_the_ideal(judged, ranked):
    ideal = sorted((d for d, r in judged.items() if r >= 1), key=lambda d: -judged[d])
    got = scores({"q": ranked}, {"q": judged}, ["ndcg", "map"])["q"]
    best = scores({"q": ideal}, {"q": judged}, ["ndcg", "map"])["q"]
    assert got["ndcg"] <= best["ndcg"] + 1e-12
    assert got["map"] <= best["map"] + 1e-12
