"""Tests for indexer.search and indexer.snippets: BM25 against a hand computation and bm25s, boolean
and phrase search against a naive reference on random corpora, ranking order, the batch API, the
`search` command (single, batch, TREC, JSON) and snippets, including sources that moved."""

from __future__ import annotations

import gzip
import importlib
import json
import math
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import random_docs, write_corpus

from indexer.analysis import Analyzer, AnalyzerConfig
from indexer.cli import cli
from indexer.errors import ArgumentError, QueryError
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.retrieval.searcher import Searcher, open_index, search
from indexer.retrieval.snippets import Snippet, best_passage

NO_STEM = AnalyzerConfig(stem="none")
ANALYZER = Analyzer(NO_STEM)


def build(tmp_path: Path, docs: dict[str, str], name: str = "corpus") -> Path:
    corpus = write_corpus(tmp_path / name, docs)
    index = tmp_path / f"{name}.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    return index


def all_hits(index: Path, query: str, **kw):
    with open_index(index) as reader:
        return Searcher(reader, **kw).search(query, k=reader.doc_count)


# --- BM25 ---------------------------------------------------------------------------------------

THREE = {"d0.txt": "apple banana apple", "d1.txt": "banana cherry", "d2.txt": "cherry cherry cherry date"}


def test_bm25_scores_equal_the_formula_worked_by_hand(tmp_path):
    index = build(tmp_path, THREE)
    k1, b = 1.2, 0.75
    n, avgdl = 3, (3 + 2 + 4) / 3

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def weight(tf, dl, df):
        return idf(df) * tf / (tf + k1 * (1 - b + b * dl / avgdl))

    # "apple cherry": apple is in d0 (tf 2, dl 3); cherry in d1 (tf 1, dl 2) and d2 (tf 3, dl 4)
    expected = {
        "d0.txt": weight(2, 3, 1),
        "d1.txt": weight(1, 2, 2),
        "d2.txt": weight(3, 4, 2),
    }
    result = all_hits(index, "apple cherry", k1=k1, b=b)
    assert result.total_hits == 3
    assert {h.doc: h.score for h in result.hits} == pytest.approx(expected, rel=1e-12)
    assert [h.doc for h in result.hits] == sorted(expected, key=lambda d: -expected[d])
    # a repeated query word counts twice; "date" alone: only d2
    twice = all_hits(index, "apple apple", k1=k1, b=b)
    assert twice.hits[0].score == pytest.approx(2 * expected["d0.txt"], rel=1e-12)
    assert [h.doc for h in all_hits(index, "date").hits] == ["d2.txt"]


def _corpus_tokens(index: Path, docs: dict[str, str]) -> list[list[str]]:
    """The analyzed tokens of each doc, in doc id order."""
    with open_index(index) as reader:
        return [ANALYZER.terms(docs[name]) for name in reader.doc_names()]


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.5, 0.75), (1.2, 0.0)])
def test_bm25_scores_equal_bm25s_lucene(tmp_path, k1, b):
    bm25s = pytest.importorskip("bm25s")
    docs = random_docs(seed=11, count=60, max_words=80)
    index = build(tmp_path, docs)
    tokens = _corpus_tokens(index, docs)
    model = bm25s.BM25(method="lucene", k1=k1, b=b)
    model.index(tokens, show_progress=False)
    rng = random.Random(3)
    vocab = sorted({t for doc in tokens for t in doc})
    queries = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 4))) for _ in range(25)]
    queries += ["merge merge sort", "café über naïve"]
    with open_index(index) as reader:
        searcher = Searcher(reader, k1, b)
        for query in queries:
            expected = np.asarray(model.get_scores(ANALYZER.terms(query)), dtype=np.float64)
            result = searcher.search(query, k=reader.doc_count)
            got = np.zeros(reader.doc_count)
            got[[h.doc_id for h in result.hits]] = [h.score for h in result.hits]
            assert result.total_hits == np.count_nonzero(expected), query
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=query)


def test_ties_are_broken_by_doc_id(tmp_path):
    docs = {f"{c}.txt": "alpha beta" for c in "xyzv"} | {"w.txt": "gamma", "a.txt": "alpha beta gamma delta"}
    index = build(tmp_path, docs)
    result = all_hits(index, "alpha")
    assert [h.doc for h in result.hits] == ["v.txt", "x.txt", "y.txt", "z.txt", "a.txt"]
    assert len({h.score for h in result.hits[:4]}) == 1
    with open_index(index) as reader:
        assert [h.doc for h in Searcher(reader).search("alpha", k=2).hits] == ["v.txt", "x.txt"]


def test_top_k_equals_a_full_sort(tmp_path):
    docs = random_docs(seed=5, count=80, max_words=30)
    index = build(tmp_path, docs)
    rng = random.Random(8)
    with open_index(index) as reader:
        searcher = Searcher(reader)
        for _ in range(20):
            query = " ".join(rng.sample(["merge", "sort", "run", "the", "river", "café", "disk"], rng.randint(1, 3)))
            full = searcher.search(query, k=reader.doc_count).hits
            assert [h.doc_id for h in full] == [h.doc_id for h in sorted(full, key=lambda h: (-h.score, h.doc_id))]
            assert [h.rank for h in full] == list(range(1, len(full) + 1))
            for k in (1, 3, 10):
                top = searcher.search(query, k=k).hits
                assert [(h.doc_id, h.score) for h in top] == [(h.doc_id, h.score) for h in full[:k]]


# --- boolean and phrase search against a naive reference -------------------------------------------

SMALL_VOCAB = ["red", "green", "blue", "cat", "dog", "fish", "the", "of"]


def _random_query(rng: random.Random, tokens: list[list[str]], depth: int = 0) -> tuple[str, set[int], Counter]:
    """A random query string, the doc ids it must match (naive: sets and token scans) and the
    terms BM25 scores it on, with their weights: every positive occurrence of a term counts,
    whatever operators, groups or phrases surround it."""

    def atom():
        if rng.random() < 0.3:
            words = [rng.choice(SMALL_VOCAB) for _ in range(rng.randint(2, 3))]
            docs = {d for d, toks in enumerate(tokens) for i in range(len(toks)) if toks[i : i + len(words)] == words}
            return f'"{" ".join(words)}"', docs, Counter(words)
        if depth < 1 and rng.random() < 0.3:
            query, docs, terms = _random_query(rng, tokens, depth + 1)
            return f"({query})", docs, terms
        word = rng.choice(SMALL_VOCAB)
        return word, {d for d, toks in enumerate(tokens) if word in toks}, Counter([word])

    (qa, da, ta), (qb, db, tb) = atom(), atom()
    form = rng.choice(["and", "or", "space", "not", "and_not", "plus", "minus", "and3"])
    if form == "and":
        return f"{qa} AND {qb}", da & db, ta + tb
    if form in ("or", "space"):  # the same operator
        return f"{qa} {'OR ' if form == 'or' else ''}{qb}", da | db, ta + tb
    if form in ("not", "and_not"):
        op = "NOT" if form == "not" else "AND NOT"
        return f"{qa} {op} {qb}", da - db, ta
    if form == "plus":
        return f"+{qa} {qb}", da, ta + tb
    if form == "minus":
        return f"{qa} -{qb}", da - db, ta
    qc, dc, tc = atom()
    return f"{qa} AND {qb} AND {qc}", da & db & dc, ta + tb + tc


def _brute_bm25(tokens: list[list[str]], doc: int, terms: Counter, k1=0.9, b=0.4) -> float:
    n, avgdl = len(tokens), sum(map(len, tokens)) / len(tokens)
    total = 0.0
    for term, times in terms.items():
        df = sum(term in t for t in tokens)
        tf = tokens[doc].count(term)
        if tf:
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            total += times * idf * tf / (tf + k1 * (1 - b + b * len(tokens[doc]) / avgdl))
    return total


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_boolean_and_phrase_results_equal_a_naive_reference(tmp_path, seed):
    docs = random_docs(seed=seed, count=50, max_words=25, vocab=SMALL_VOCAB)
    index = build(tmp_path, docs)
    tokens = _corpus_tokens(index, docs)
    rng = random.Random(seed * 100)
    with open_index(index) as reader:
        searcher = Searcher(reader)
        for _ in range(60):
            query, expected, terms = _random_query(rng, tokens)
            result = searcher.search(query, k=reader.doc_count)
            assert {h.doc_id for h in result.hits} == expected, query
            assert result.total_hits == len(expected), query
            for hit in result.hits:
                assert hit.score == pytest.approx(_brute_bm25(tokens, hit.doc_id, terms), rel=1e-9), query


def test_plain_queries_skip_the_parser_with_the_same_results(tmp_path):
    index = build(tmp_path, random_docs(seed=4, count=40))
    with open_index(index) as reader:
        searcher = Searcher(reader)
        for plain, parsed in [("merge sort-run", "(merge sort-run)"), ("run e-mail", "(run e-mail)")]:
            got = searcher.search(plain, k=100)
            want = searcher.search(parsed, k=100)
            assert [(h.doc_id, h.score) for h in got.hits] == [(h.doc_id, h.score) for h in want.hits]
        # without syntax, quotes and operators are words like any other
        as_words = searcher.search('"merge sort" AND -run', k=100, syntax=False)
        same = searcher.search("merge sort and run", k=100)
        assert [(h.doc_id, h.score) for h in as_words.hits] == [(h.doc_id, h.score) for h in same.hits]


def test_search_many_matches_single_searches_and_names_a_bad_query(tmp_path):
    index = build(tmp_path, random_docs(seed=9, count=30))
    queries = [("a", "merge sort"), ("b", '"parallel search"'), ("c", "run AND NOT disk"), ("d", "zzz")]
    with open_index(index) as reader:
        searcher = Searcher(reader)
        batch = list(searcher.search_many(queries, k=5))
        fresh = Searcher(reader)
        assert [qid for qid, _ in batch] == ["a", "b", "c", "d"]
        for (_, text), (_, result) in zip(queries, batch):
            assert result == fresh.search(text, k=5)
        assert batch[-1][1].hits == []
        with pytest.raises(QueryError, match=r"^query 'x2': unbalanced quote at column 1$"):
            searcher.search_many([("x1", "fine"), ("x2", '"oops')], k=5)


def test_an_offset_pages_through_the_ranking_with_snippets_for_that_page_only(tmp_path):
    index = build(tmp_path, random_docs(seed=5, count=40))
    with open_index(index) as reader:
        searcher = Searcher(reader)
        whole = searcher.search("merge OR run", k=30)
        made = []
        maker = searcher._snippets
        original = maker.snippet
        maker.snippet = lambda doc, terms: made.append(doc) or original(doc, terms)
        page = searcher.search("merge OR run", k=5, offset=10, snippets=True)
        assert [(h.rank, h.doc_id, h.score) for h in page.hits] == [
            (h.rank, h.doc_id, h.score) for h in whole.hits[10:15]
        ]
        assert made == [h.doc_id for h in page.hits]
        assert searcher.search("merge OR run", k=5, offset=10_000).hits == []
        with pytest.raises(ArgumentError, match="offset must be 0 or more"):
            searcher.search("merge", offset=-1)


# --- the search command ------------------------------------------------------------------------------


def invoke(runner, *args, ok=True):
    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_no_hit_query_exits_0_with_empty_results(runner, tmp_path):
    index = build(tmp_path, THREE)
    result = invoke(runner, "search", index, "nothingmatches", "--json")
    empty = {"query": "nothingmatches", "total_hits": 0, "total_hits_relation": "eq", "results": []}
    assert json.loads(result.stdout) == empty
    assert invoke(runner, "search", index, "zzz").stdout == ""


@pytest.mark.parametrize("query", ['"unclosed', "a AND", "(a", "NOT a"])
def test_a_malformed_query_exits_2_with_one_line(runner, tmp_path, query):
    index = build(tmp_path, THREE)
    result = invoke(runner, "search", index, query, ok=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: bad query: "), result.stderr


def test_single_query_json_and_text(runner, tmp_path):
    index = build(tmp_path, THREE)
    doc = json.loads(invoke(runner, "search", index, "cherry", "--json", "-k", "1").stdout)
    assert doc["total_hits"] == 2 and [r["doc"] for r in doc["results"]] == ["d2.txt"]
    text = invoke(runner, "search", index, "cherry")
    assert [line.split()[2] for line in text.stdout.splitlines()] == ["d2.txt", "d1.txt"]
    assert "2 of 2 matching documents" in text.stderr


QUERIES_TSV = "q1\tapple cherry\nq2\tbanana\n\nq3\tnothinghere\n"
QUERIES_JSONL = (
    '{"_id": "q1", "text": "apple cherry"}\n{"_id": "q2", "text": "banana"}\n{"id": "q3", "query": "nothinghere"}\n'
)


@pytest.mark.parametrize(("name", "content"), [("q.tsv", QUERIES_TSV), ("q.jsonl", QUERIES_JSONL)])
def test_batch_json_from_tsv_and_jsonl(runner, tmp_path, name, content):
    index = build(tmp_path, THREE)
    queries = tmp_path / name
    queries.write_text(content, encoding="utf-8")
    result = invoke(runner, "search", index, "--queries", queries, "--json", "-k", "2")
    doc = json.loads(result.stdout)
    assert [q["id"] for q in doc["queries"]] == ["q1", "q2", "q3"]
    for entry in doc["queries"]:
        single = json.loads(invoke(runner, "search", index, entry["query"], "--json", "-k", "2").stdout)
        assert {k: v for k, v in entry.items() if k != "id"} == single
    assert doc["queries"][2]["results"] == []
    plain = invoke(runner, "search", index, "--queries", queries)
    assert plain.stdout.splitlines()[0] == "query q1: apple cherry"
    assert "Searched 3 queries in" in plain.stderr and "queries/s" in plain.stderr


def test_trec_output_has_six_columns(runner, tmp_path):
    index = build(tmp_path, THREE)
    queries = tmp_path / "q.tsv"
    queries.write_text(QUERIES_TSV, encoding="utf-8")
    result = invoke(runner, "search", index, "--queries", queries, "--trec", "myrun", "-k", "2")
    rows = [line.split(" ") for line in result.stdout.splitlines()]
    assert all(len(row) == 6 and row[1] == "Q0" and row[5] == "myrun" for row in rows)
    expected = []
    for qid, query in (("q1", "apple cherry"), ("q2", "banana")):
        hits = all_hits(index, query).hits[:2]
        expected += [(qid, h.doc, str(h.rank), f"{h.score:.8f}") for h in hits]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == expected
    assert [r[2] for r in rows] == ["d0.txt", "d2.txt", "d1.txt", "d0.txt"]  # worked out by hand


def test_batch_usage_errors_exit_2(runner, tmp_path):
    index = build(tmp_path, THREE)
    queries = tmp_path / "q.tsv"
    queries.write_text(QUERIES_TSV + 'q9\t"unclosed\n', encoding="utf-8")
    for args in ([], ["apple", "--queries", queries], ["apple", "--trec", "r", "--json"]):
        result = invoke(runner, "search", index, *args, ok=False)
        assert result.exit_code == 2, args
    strict = invoke(runner, "search", index, "--queries", queries, "--trec", "r", "--syntax", "--strict", ok=False)
    assert strict.exit_code == 2 and strict.stdout == ""
    assert strict.stderr.strip().splitlines() == ["Error: bad query: query 'q9': unbalanced quote at column 1"]
    missing_tab = tmp_path / "bad.tsv"
    missing_tab.write_text("q1 no tab here\n", encoding="utf-8")
    result = invoke(runner, "search", index, "--queries", missing_tab, ok=False)
    assert result.exit_code == 1 and "bad.tsv:1: expected 'query_id<TAB>text'" in result.stderr


# --- snippets -------------------------------------------------------------------------------------------

FILLER = " ".join(f"filler{i}" for i in range(60))
LONG_DOC = f"Intro words here. {FILLER} The river bank, where bread floats. {FILLER} river again."


def test_best_passage_prefers_more_distinct_terms_then_the_earliest():
    weights = {"river": 1.0, "bread": 1.0}
    passage = Snippet(best_passage(LONG_DOC, weights, ANALYZER)).marked()
    assert passage.startswith("... filler58 filler59 The **river** bank, where **bread** floats.")
    assert passage.endswith(" ...")
    assert len(passage.split()) <= 32
    # a single term: the earliest window holding it
    only_river = Snippet(best_passage(LONG_DOC, {"river": 1.0}, ANALYZER)).marked()
    assert "The **river** bank" in only_river
    # weights decide between windows with the same number of terms
    rare_first = Snippet(best_passage(f"alpha {FILLER} beta", {"alpha": 0.1, "beta": 2.0}, ANALYZER)).marked()
    assert rare_first.endswith("**beta**")
    # whitespace and control characters never reach the terminal
    assert Snippet(best_passage("a\n\n\tb\x1b[31m c", {"b": 1.0}, ANALYZER)).marked() == "a **b** [31m c"


def _passage_reference(text, terms, analyzer):
    """best_passage the plain way: every word analyzed, every window start tried."""
    from indexer.analysis import WORD_RE
    from indexer.retrieval.snippets import LEAD, WINDOW

    text = analyzer.normalized(text)
    words = [
        (m.start(), m.end(), {analyzer.term(w) for w in WORD_RE.findall(m.group().lower())} & terms.keys())
        for m in WORD_RE.finditer(text)
    ]
    if not words:
        return None
    best, best_weight = -1, 0.0
    for i, (_, _, found) in enumerate(words):
        if found:
            inside = set().union(*(f for _, _, f in words[i : i + WINDOW - LEAD]))
            weight = math.fsum(terms[t] for t in inside)
            if best < 0 or weight > best_weight:
                best, best_weight = i, weight
    first = max(0, min(max(0, best - LEAD), len(words) - WINDOW))
    return [(text[a:b], bool(f)) for a, b, f in words[first : first + WINDOW]]


@pytest.mark.parametrize("seed", range(40))
def test_best_passage_equals_the_plain_reference(seed):
    rng = random.Random(seed)
    vocab = ["river", "rivers", "bread", "Bread", "café", "CAFÉ", "x", "ﬁle", "e\u0301", "merge", "sort", "the"]
    text = " ".join(
        rng.choice(vocab) if rng.random() < 0.3 else f"w{rng.randint(0, 50)}" for _ in range(rng.randint(0, 400))
    )
    analyzer = Analyzer(AnalyzerConfig()) if seed % 2 else ANALYZER
    terms = {analyzer.term(w.lower()): rng.choice([0.5, 1.0, 2.5]) for w in rng.sample(vocab, 3)}
    got = best_passage(text, terms, analyzer)
    expected = _passage_reference(text, terms, analyzer)
    words = [(part, marked) for part, marked in got if part.strip() and part.strip() != "..."]
    assert words == (expected or []), (text, terms)


def test_snippets_from_text_files(runner, tmp_path):
    index = build(tmp_path, {"long.txt": LONG_DOC, "short.txt": "bread and butter"})
    doc = json.loads(invoke(runner, "search", index, "river bread", "--snippets", "--json").stdout)
    snippets = {r["doc"]: r["snippet"] for r in doc["results"]}
    assert "The **river** bank, where **bread** floats." in snippets["long.txt"]
    assert snippets["short.txt"] == "**bread** and butter"
    text = invoke(runner, "search", index, "river bread", "--snippets")
    assert "     **bread** and butter" in text.stdout.splitlines()
    assert "\x1b[" not in text.stdout  # no ANSI codes when stdout is not a terminal


def test_snippets_from_jsonl_records(runner, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    records = [
        {"id": 7, "title": "Bread Basics", "text": "How to bake a loaf."},
        {"_id": "r2", "title": "Rivers", "text": "The river flows; bread does not.", "other": "river river"},
        {"id": "r3", "contents": "no title, a river"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    index = tmp_path / "docs.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    with open_index(index) as reader:
        result = Searcher(reader).search("bread river", k=5, snippets=True)
    snippets = {h.doc: h.snippet.marked() for h in result.hits}
    assert snippets == {
        "7": "**Bread** Basics How to bake a loaf",
        "r2": "Rivers The **river** flows; **bread** does not",
        "r3": "no title, a **river**",
    }
    assert all(h.snippet.missing_source is None for h in result.hits)


def test_moved_or_changed_sources_give_a_message_and_one_warning(runner, tmp_path):
    index = build(tmp_path, {"a.txt": "river one", "b.txt": "river two", "c.txt": "river three"})
    corpus = tmp_path / "corpus"
    (corpus / "b.txt").write_text("river two, and now longer", encoding="utf-8")
    changed = json.loads(invoke(runner, "search", index, "river", "--snippets", "--json").stdout)
    by_doc = {r["doc"]: r["snippet"] for r in changed["results"]}
    assert by_doc["a.txt"] == "**river** one"
    assert by_doc["b.txt"] == f"[source not available: {corpus / 'b.txt'} changed since indexing]"
    shutil.move(corpus, tmp_path / "elsewhere")
    result = invoke(runner, "search", index, "river", "--snippets")
    assert result.stdout.count("[source not available: ") == 3
    assert result.stdout.count("moved or deleted since indexing]") == 3
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "no snippet for 3 hits" in warnings[0]


def test_a_source_edited_in_place_to_the_same_length_is_not_shown(runner, tmp_path):
    index = build(tmp_path, {"a.txt": "river one", "b.txt": "river two"})
    (tmp_path / "corpus" / "b.txt").write_text("river owt", encoding="utf-8")  # same length, other words
    doc = json.loads(invoke(runner, "search", index, "river", "--snippets", "--json").stdout)
    by_doc = {r["doc"]: r["snippet"] for r in doc["results"]}
    assert by_doc["a.txt"] == "**river** one"
    assert by_doc["b.txt"].endswith("b.txt changed since indexing]")


def test_a_jsonl_record_that_moved_within_its_file_is_not_shown(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": f"river number {i}"}) for i in range(3)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = tmp_path / "docs.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    # same length, other ids: a record now at the indexed offset is not the indexed document
    corpus.write_text("\n".join(line.replace('"d', '"e') for line in lines) + "\n", encoding="utf-8")
    with open_index(index) as reader:
        hits = Searcher(reader).search("river", k=3, snippets=True).hits
    assert [h.snippet.missing_source for h in hits] == [str(corpus)] * 3


def test_search_function_opens_and_closes(tmp_path):
    index = build(tmp_path, THREE)
    assert [h.doc for h in search(index, "banana", k=1).hits] == ["d1.txt"]


def test_the_term_cache_is_bounded_and_changes_no_result(tmp_path, monkeypatch):
    search_module = importlib.import_module("indexer.retrieval.searcher")
    index = build(tmp_path, random_docs(seed=12, count=60))
    queries = ["merge sort", "run", "the of and", "disk memory worker", '"merge sort" OR run', "café"] * 2
    with open_index(index) as reader:
        expected = [Searcher(reader).search(q, k=20) for q in queries]
        monkeypatch.setattr(search_module, "CACHE_TERMS", 3)
        searcher = Searcher(reader)
        assert [searcher.search(q, k=20) for q in queries] == expected
        assert len(searcher._terms) <= 3


def test_snippets_on_a_terminal_use_ansi_bold(runner, tmp_path, monkeypatch):
    index = build(tmp_path, {"short.txt": "bread and butter"})
    monkeypatch.setattr("indexer.cli.render._stdout_is_terminal", lambda: True)
    result = runner.invoke(cli, ["search", str(index), "bread", "--snippets"], color=True, catch_exceptions=False)
    assert result.exit_code == 0
    line = result.stdout.splitlines()[1]
    assert "**" not in line and "\x1b[1m" in line and "bread\x1b[0m and butter" in line


def test_snippets_from_trec_and_gzip_sources(tmp_path):
    corpus = tmp_path / "mixed"
    corpus.mkdir()
    (corpus / "news.trec").write_text(
        "<DOC>\n<DOCNO> N1 </DOCNO>\n<TEXT>The river &amp; the bread.</TEXT>\n</DOC>\n"
        "<DOC><DOCNO>N2</DOCNO><TEXT>Only bread here.</TEXT></DOC>\n",
        encoding="utf-8",
    )
    records = [{"id": "g1", "title": "Gzipped", "text": "a river runs"}, {"id": "g2", "text": "bread, gzipped"}]
    with gzip.open(corpus / "more.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
    index = tmp_path / "mixed.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    with open_index(index) as reader:
        hits = Searcher(reader).search("river bread", k=10, snippets=True).hits
    assert {h.doc: h.snippet.marked() for h in hits} == {
        "N1": "The **river** & the **bread**",
        "N2": "Only **bread** here",
        "g1": "Gzipped a **river** runs",
        "g2": "**bread**, gzipped",
    }


# --- answers that must not be silently wrong ---------------------------------------------------------


def _ranking(index: Path, query: str, **kw) -> list[tuple[str, float]]:
    return [(h.doc, h.score) for h in all_hits(index, query, **kw).hits]


def test_or_between_words_ranks_exactly_like_a_space(tmp_path):
    docs = {"a.txt": "merge sort", "b.txt": "or or or merge", "c.txt": "sort this or that", "d.txt": "nothing"}
    index = build(tmp_path, docs)
    assert _ranking(index, "merge OR sort") == _ranking(index, "merge sort")
    assert _ranking(index, "(merge OR sort) nothing") == _ranking(index, "merge sort nothing")
    assert "b.txt" not in dict(_ranking(index, "sort OR nothing"))  # "or" is not searched as a word
    assert _ranking(index, "merge or sort")[0][0] == "b.txt"  # lower case: an ordinary word


def test_repeated_words_score_alike_with_or_without_operators(tmp_path):
    index = build(tmp_path, random_docs(seed=21, count=40))
    plain = _ranking(index, "merge sort merge")
    assert plain == _ranking(index, "merge (sort merge)")
    assert plain == _ranking(index, "merge OR sort OR merge")
    phrase = _ranking(index, '"merge sort" merge')
    with open_index(index) as reader:
        scores = dict(_ranking(index, "merge sort merge"))
        for doc, score in phrase:  # the phrase narrows the matches but scores its words like words
            assert score == pytest.approx(scores[doc], rel=1e-12)
        assert reader.doc_count


def test_a_phrase_with_a_stopword_matches_the_exact_text_only(tmp_path):
    docs = {
        "exact.txt": "take the global the lock now",
        "near.txt": "take the global lock now",
        "x.txt": "global a lock",
    }
    corpus = write_corpus(tmp_path / "corpus", docs)
    index = tmp_path / "stop.idx"
    config = AnalyzerConfig(stem="none", stopwords=("a", "the"))
    build_index([corpus], index, BuildOptions(processes=1, analyzer=config))
    with open_index(index) as reader:
        searcher = Searcher(reader)
        assert {h.doc for h in searcher.search('"global the lock"', k=10).hits} == {"exact.txt", "x.txt"}
        assert {h.doc for h in searcher.search('"global lock"', k=10).hits} == {"near.txt"}
        # a stopword at the edge of a phrase constrains nothing: it is dropped like a lone stopword
        assert {h.doc for h in searcher.search('"the global lock"', k=10).hits} == {"near.txt"}


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_composed_and_decomposed_letters_find_each_other(tmp_path, form):
    import unicodedata

    word = "r\u00e9sum\u00e9 na\u00efve"
    docs = {
        "nfc.txt": f"my {unicodedata.normalize('NFC', word)}",
        "nfd.txt": f"your {unicodedata.normalize('NFD', word)}",
    }
    index = build(tmp_path, docs)
    with open_index(index) as reader:
        searcher = Searcher(reader)
        query = unicodedata.normalize(form, "r\u00e9sum\u00e9")
        assert {h.doc for h in searcher.search(query, k=10).hits} == {"nfc.txt", "nfd.txt"}
        assert {h.doc for h in searcher.search(f'"{unicodedata.normalize(form, word)}"', k=10).hits} == {
            "nfc.txt",
            "nfd.txt",
        }
        assert reader.terms() == ["my", "naïve", "résumé", "your"]  # nothing split at an accent


def test_k_zero_returns_no_hits_and_counts_the_matches(tmp_path):
    index = build(tmp_path, THREE)
    with open_index(index) as reader:
        result = Searcher(reader).search("cherry", k=0)
    assert result.hits == [] and result.total_hits == 2


def test_a_query_without_searchable_words_says_so(runner, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "the cat"})
    index = tmp_path / "a.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=AnalyzerConfig(stopwords=("the",))))
    for query in ["the", "!!! ???", '"the"']:
        result = invoke(runner, "search", index, query)
        assert result.stdout == ""
        assert "no searchable words in the query" in result.stderr, query


def test_batch_queries_are_plain_words_and_a_malformed_one_never_stops_the_batch(runner, tmp_path):
    index = build(tmp_path, {"a.txt": "apple pie", "b.txt": "banana split", "c.txt": "apple banana"})
    queries = tmp_path / "q.tsv"
    queries.write_text('q1\tapple -banana\nq2\t(banana\nq3\t"apple\n', encoding="utf-8")
    plain = json.loads(invoke(runner, "search", index, "--queries", queries, "--json").stdout)
    # plain words by default, like eval: "-banana" is the word banana, "(" and a quote are no syntax
    assert [len(q["results"]) for q in plain["queries"]] == [3, 2, 2]
    parsed = invoke(runner, "search", index, "--queries", queries, "--syntax", "--json")
    doc = json.loads(parsed.stdout)
    assert [r["doc"] for r in doc["queries"][0]["results"]] == ["a.txt"]  # -banana excludes
    assert [q["results"] for q in doc["queries"][1:]] == [q["results"] for q in plain["queries"][1:]]
    warnings = [line for line in parsed.stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 2
    assert warnings[0].startswith("Warning: query q2: bad query (unbalanced parenthesis at column 1)")
    assert "searched as plain words" in warnings[0] and warnings[1].startswith("Warning: query q3: ")


def test_a_trec_run_is_deep_by_default_and_never_half_written(runner, tmp_path):
    docs = {f"d{i:04d}.txt": "apple" for i in range(1200)} | {"with space.txt": "apple pie"}
    index = build(tmp_path, docs)
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tpie\nq2\tapple\n", encoding="utf-8")
    refused = invoke(runner, "search", index, "--queries", queries, "--trec", "run", ok=False)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "'with space.txt' has whitespace" in refused.stderr and "--escape-ids" in refused.stderr
    run = invoke(runner, "search", index, "--queries", queries, "--trec", "run", "--escape-ids").stdout
    rows = [line.split(" ") for line in run.splitlines()]
    assert rows[0][:3] == ["q1", "Q0", "with%20space.txt"]
    assert sum(row[0] == "q2" for row in rows) == 1000  # depth 1000, as eval ranks
    assert (
        len(
            invoke(
                runner, "search", index, "--queries", queries, "--trec", "run", "-k", "5", "--escape-ids"
            ).stdout.splitlines()
        )
        == 6
    )


def test_a_newline_in_a_doc_id_cannot_break_a_line_of_output(runner, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"id": "two\nlines", "text": "apple"}) + "\n", encoding="utf-8")
    index = tmp_path / "docs.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=NO_STEM))
    text = invoke(runner, "search", index, "apple").stdout
    assert text.splitlines() == [f"  1  {all_hits(index, 'apple').hits[0].score:8.4f}  two\\nlines"]
    assert json.loads(invoke(runner, "search", index, "apple", "--json").stdout)["results"][0]["doc"] == "two\nlines"
    assert invoke(runner, "postings", index, "apple").stdout.startswith("two\\nlines\t1")


@pytest.mark.parametrize("command", ["search", "eval"])
@pytest.mark.parametrize(
    ("option", "value"), [("--k1", "nan"), ("--k1", "inf"), ("--k1", "-0.5"), ("--b", "1.5"), ("--b", "-inf")]
)
def test_bm25_parameters_that_are_not_finite_or_in_range_are_usage_errors(runner, tmp_path, command, option, value):
    index = build(tmp_path, THREE)
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tapple\n", encoding="utf-8")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d0.txt 1\n", encoding="utf-8")
    args = [index, "apple"] if command == "search" else [index, "--queries", queries, "--qrels", qrels]
    result = invoke(runner, command, *args, f"{option}={value}", ok=False)
    assert result.exit_code == 2 and result.stdout == ""
    assert "is not a finite number" in result.stderr


def test_the_library_raises_only_indexer_errors(tmp_path):
    from indexer.errors import IndexerError

    with pytest.raises(IndexerError, match="no such index file"):
        open_index(tmp_path / "missing.idx")
    with pytest.raises(IndexerError, match="no such index file"):
        search(tmp_path / "missing.idx", "apple")
    with pytest.raises(IndexerError):
        open_index(tmp_path)


# --- everyday use: paging, formats, ids only, explain, prefixes, batches on a pool --------------------


def test_offset_pages_through_the_same_ranking(tmp_path):
    index = build(tmp_path, random_docs(seed=31, count=60))
    with open_index(index) as reader:
        searcher = Searcher(reader)
        whole = searcher.search("merge run disk", k=30).hits
        pages = [searcher.search("merge run disk", k=7, offset=o).hits for o in range(0, 30, 7)]
    flat = [h for page in pages for h in page][:30]
    assert [(h.rank, h.doc, h.score) for h in flat] == [(h.rank, h.doc, h.score) for h in whole]


def test_explain_parts_add_up_to_the_score(tmp_path):
    index = build(tmp_path, random_docs(seed=32, count=60))
    with open_index(index) as reader:
        result = Searcher(reader, 1.2, 0.75).search("merge sort merge -disk", k=5, explain=True)
    assert result.hits
    for hit in result.hits:
        terms = {part.term for part in hit.explain}
        assert terms <= {"merge", "sort"}
        assert math.fsum(part.weight for part in hit.explain) == pytest.approx(hit.score, rel=1e-12)
        merge = next((p for p in hit.explain if p.term == "merge"), None)
        if merge is not None:
            assert merge.times == 2 and merge.tf >= 1 and merge.idf > 0 and merge.doc_length > 0


def test_a_prefix_matches_every_term_that_starts_with_it(tmp_path):
    docs = {"a.txt": "python programming", "b.txt": "pythonic code", "c.txt": "pyramid", "d.txt": "ruby"}
    index = build(tmp_path, docs)
    with open_index(index) as reader:
        searcher = Searcher(reader)
        assert {h.doc for h in searcher.search("pyth*", k=10).hits} == {"a.txt", "b.txt"}
        assert {h.doc for h in searcher.search("py*", k=10).hits} == {"a.txt", "b.txt", "c.txt"}
        assert {h.doc for h in searcher.search("py* -pyramid", k=10).hits} == {"a.txt", "b.txt"}
        assert {h.doc for h in searcher.search("pyth* AND code", k=10).hits} == {"b.txt"}
        none = searcher.search("zz* OR qq*", k=10)
        assert none.hits == [] and none.notes == ("no index term starts with zz*, qq*",)
        same = Searcher(reader, engine="exhaustive").search("py* ruby", k=10)
        assert [(h.doc, h.score) for h in searcher.search("py* ruby", k=10).hits] == [
            (h.doc, h.score) for h in same.hits
        ]


def test_a_prefix_of_too_many_terms_is_refused(tmp_path, monkeypatch):
    search_module = importlib.import_module("indexer.retrieval.searcher")
    monkeypatch.setattr(search_module, "MAX_EXPANSION", 3)
    index = build(tmp_path, {"a.txt": "pa pb pc pd pe"})
    with open_index(index) as reader, pytest.raises(QueryError, match=r"p\* matches more than 3 terms"):
        Searcher(reader).search("p*")


def test_files_with_matches_formats_and_color(runner, tmp_path, monkeypatch):
    index = build(tmp_path, {"a.txt": "apple pie", "b.txt": "apple", "c\nd.txt": "apple tart"})
    ids = invoke(runner, "search", index, "apple", "-l").stdout.splitlines()
    assert (
        sorted(ids) == ["a.txt", "b.txt", "c\\nd.txt"]
        and "matching" not in invoke(runner, "search", index, "x", "-l").stderr
    )
    jsonl = invoke(runner, "search", index, "apple", "--format", "jsonl").stdout.splitlines()
    assert len(jsonl) == 1 and json.loads(jsonl[0])["total_hits"] == 3
    assert (
        invoke(runner, "search", index, "apple", "--format", "json").stdout
        == invoke(runner, "search", index, "apple", "--json").stdout
    )
    trec = invoke(runner, "search", index, "pie", "--format", "trec", "--escape-ids").stdout.split()
    assert trec == ["1", "Q0", "a.txt", "1", trec[4], "indexer"]
    bad = invoke(runner, "search", index, "apple", "--json", "--format", "jsonl", ok=False)
    assert bad.exit_code == 2
    monkeypatch.setattr("indexer.cli.render._stdout_is_terminal", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = runner.invoke(cli, ["search", str(index), "pie", "--snippets"], color=True)
    assert "\x1b[" not in plain.stdout and "**pie**" in plain.stdout
    forced = runner.invoke(cli, ["search", str(index), "pie", "--snippets", "--color", "always"], color=True)
    assert "\x1b[1m" in forced.stdout


def test_a_batch_on_a_pool_gives_the_same_output_in_the_same_order(runner, tmp_path):
    index = build(tmp_path, random_docs(seed=33, count=80))
    rng = random.Random(3)
    queries = tmp_path / "q.tsv"
    words = ["merge", "sort", "run", "disk", "café", "river", "the", "zzz"]
    queries.write_text(
        "".join(f"q{i}\t{' '.join(rng.sample(words, rng.randint(1, 3)))}\n" for i in range(300)), encoding="utf-8"
    )
    one = invoke(runner, "search", index, "--queries", queries, "--json", "-k", "5").stdout
    assert json.loads(subprocess_search(index, queries, "--json", "-k", "5", "-p", "2")) == json.loads(one)
    for form in [(), ("--format", "jsonl"), ("--trec", "run"), ("-l", "-k", "3"), ("--json", "--offset", "2")]:
        assert subprocess_search(index, queries, *form, "-p", "2") == subprocess_search(index, queries, *form), form
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"q{i} 0 d{i % 80:03d}.txt 1\n" for i in range(300)), encoding="utf-8")
    with open_index(index) as reader:
        names = reader.doc_names()
    qrels.write_text("".join(f"q{i} 0 {names[i % 80]} 1\n" for i in range(300)), encoding="utf-8")
    eval_one = invoke(runner, "eval", index, "--queries", queries, "--qrels", qrels, "--json").stdout
    eval_two = invoke(runner, "eval", index, "--queries", queries, "--qrels", qrels, "--json", "-p", "2").stdout
    assert json.loads(eval_one) == json.loads(eval_two)


def subprocess_search(index: Path, queries: Path, *args: str) -> str:
    """A real `indexer search --queries` process (a pool needs a real process to fork from)."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("indexer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "indexer"]
    done = subprocess.run(
        [*command, "search", str(index), "--queries", str(queries), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_one_shot_search_imports_no_build_pool_or_writer_machinery(tmp_path):
    import subprocess
    import sys

    index = build(tmp_path, {"a.txt": "apple pie", "b.txt": "apple"})
    probe = (
        "import sys\n"
        "from indexer.cli import main\n"
        f"sys.argv = ['indexer', 'search', {str(index)!r}, 'apple']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "a.txt" in done.stdout
    loaded = set(done.stderr.split())
    for module in [
        "indexer.indexing.pipeline",
        "indexer.indexing.executors",
        "indexer.corpus.readers",
        "indexer.store.files",
        "indexer.workers",
        "indexer.evaluate",
        "multiprocessing",
        "concurrent.futures.process",
        "tqdm",
    ]:
        assert module not in loaded, module
    assert "indexer.retrieval.engine" in loaded


def test_a_phrase_on_an_index_without_positions_is_refused_not_guessed(runner, tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "merge sort is great", "b.txt": "sort then merge"})
    index = tmp_path / "x.idx"
    build_index([corpus], index, BuildOptions(processes=1, positions=False))
    for engine_name in ("blocks", "exhaustive"):
        with open_index(index) as reader, pytest.raises(QueryError, match="--no-positions"):
            Searcher(reader, engine=engine_name).search('"merge sort"')
    result = invoke(runner, "search", index, '"merge sort" OR river', ok=False)
    assert result.exit_code == 2 and "cannot match phrases" in result.stderr and not result.stdout
    assert [h["doc"] for h in json.loads(invoke(runner, "search", index, "merge sort", "--json").stdout)["results"]]


def test_color_always_colors_a_pipe_too(tmp_path):
    import subprocess
    import sys

    index = build(tmp_path, {"a.txt": "apple pie"})
    script = Path(sys.executable).with_name("indexer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "indexer"]
    args = [*command, "search", str(index), "pie", "--snippets"]
    colored = subprocess.run([*args, "--color", "always"], capture_output=True, text=True, timeout=60).stdout
    plain = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    assert "\x1b[" in colored and "**" not in colored
    assert "\x1b[" not in plain and "**pie**" in plain
