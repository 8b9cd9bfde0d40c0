"""Tests for indexer.query: the parser on hand-written queries and every error, then match_docs
against a naive reference (Python sets, phrase scans over token lists) on random corpora."""

import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import IndexerError, QueryError
from indexer.retrieval.query import (
    Bool,
    Clause,
    Phrase,
    Term,
    match_docs,
    parse_query,
    query_terms,
)


def analyze(text: str) -> list[tuple[int, str]]:
    return list(enumerate(re.findall(r"\w+", text.lower())))


def without(*stopwords):
    """An analyzer that drops `stopwords` but keeps counting their positions, as the index does."""
    return lambda text: [(i, t) for i, t in analyze(text) if t not in stopwords]


def should(node):
    return Clause("should", node)


def must(node):
    return Clause("must", node)


def must_not(node):
    return Clause("must_not", node)


def words(*ws):
    return [Term(w) for w in ws]


a, b, c, d = words("a", "b", "c", "d")
c_and_d = Bool((must(c), must(d)))


# --- parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("cat", Term("cat")),
        ("  cat  ", Term("cat")),
        ("a b", Bool((should(a), should(b)))),
        ("a OR b", Bool((should(a), should(b)))),
        ("a AND b", Bool((must(a), must(b)))),
        ("a AND b AND c", Bool((must(a), must(b), must(c)))),
        # AND binds tighter than OR and juxtaposition
        ("a b AND c", Bool((should(a), should(Bool((must(b), must(c))))))),
        ("a AND b OR c", Bool((should(Bool((must(a), must(b)))), should(c)))),
        ("a OR b AND c d", Bool((should(a), should(Bool((must(b), must(c)))), should(d)))),
        # NOT binds tighter than AND; after a clause it excludes from the group
        ("a NOT b", Bool((should(a), must_not(b)))),
        ("a b NOT c", Bool((should(a), should(b), must_not(c)))),
        ("a AND NOT b", Bool((must(a), must_not(b)))),
        ("NOT a AND b", Bool((must_not(a), must(b)))),
        ("NOT a b", Bool((must_not(a), should(b)))),
        ("a NOT b AND c", Bool((should(a), should(Bool((must_not(b), must(c))))))),
        # prefixes
        ("+a b -c", Bool((must(a), should(b), must_not(c)))),
        ("+a AND b", Bool((must(a), must(b)))),
        ("-a AND b", Bool((must_not(a), must(b)))),
        ("+a", a),
        ("a -(b c)", Bool((should(a), must_not(Bool((should(b), should(c))))))),
        ('+"a b" -"c"', Bool((must(Phrase("a b")), must_not(Phrase("c"))))),
        # + and - elsewhere are part of a word, or a word of their own
        ("e-mail", Term("e-mail")),
        ("c++ a-", Bool((should(Term("c++")), should(Term("a-"))))),
        ("a - b", Bool((should(a), should(Term("-")), should(b)))),
        ("a +", Bool((should(a), should(Term("+"))))),
        ("(a -)", Bool((should(a), should(Term("-"))))),
        # operators are upper case only
        ("a and b", Bool((should(a), should(Term("and")), should(b)))),
        ("Not or", Bool((should(Term("Not")), should(Term("or"))))),
        # groups
        ("(a)", a),
        ("((a))", a),
        ("(+a)", a),
        ("(a b) AND c", Bool((must(Bool((should(a), should(b)))), must(c)))),
        ("a (b OR (c AND d))", Bool((should(a), should(Bool((should(b), should(c_and_d))))))),
        ("a(b)", Bool((should(a), should(b)))),
        # phrases keep their raw text
        ('"to be"', Phrase("to be")),
        ('" To  Be "', Phrase(" To  Be ")),
        ('a"b c"d', Bool((should(a), should(Phrase("b c")), should(d)))),
        ('"a AND (b"', Phrase("a AND (b")),
    ],
)
def test_parse_query_builds_the_expected_tree(query, tree):
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ('a "b c', "unbalanced quote at column 3"),
        ('"a" "b', "unbalanced quote at column 5"),
        ('a ""', "empty phrase at column 3"),
        ('"  "', "empty phrase at column 1"),
        ("(a", "unbalanced parenthesis at column 1"),
        ("a (b (c)", "unbalanced parenthesis at column 3"),
        ("a)", "unbalanced parenthesis at column 2"),
        (")", "unbalanced parenthesis at column 1"),
        ("(a))", "unbalanced parenthesis at column 4"),
        ("a ()", "empty parentheses at column 3"),
        ("a b AND", "'AND' at column 5 has nothing on its right"),
        ("(a AND) b", "'AND' at column 4 has nothing on its right"),
        ("AND a", "'AND' at column 1 has nothing on its left"),
        ("a (OR b)", "'OR' at column 4 has nothing on its left"),
        ("a OR", "'OR' at column 3 has nothing on its right"),
        ("a OR OR b", "'OR' at column 3 must be followed by a word, phrase or group"),
        ("a AND OR b", "'AND' at column 3 must be followed by a word, phrase or group"),
        ("a NOT", "'NOT' at column 3 has nothing on its right"),
        ("a NOT AND b", "'NOT' at column 3 must be followed by a word, phrase or group"),
        ("a NOT NOT b", "'NOT' at column 3 must be followed by a word, phrase or group"),
        ("a NOT -b", "'NOT' at column 3 must be followed by a word, phrase or group"),
        ("a +-b", "'+' at column 3 must be followed by a word, phrase or group"),
        ("a +AND b", "'+' at column 3 must be followed by a word, phrase or group"),
        ("NOT a", "query has only negated terms; add a word to search for"),
        ("-a NOT b -(c d)", "query has only negated terms; add a word to search for"),
        ("a (-b)", "group at column 3 has only negated terms; add a word to search for"),
        ("NOT a AND -b", "'AND' at column 7 joins only negated terms; add a word to search for"),
    ],
)
def test_parse_query_reports_the_problem_and_its_column(query, message):
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert str(caught.value) == message
    assert isinstance(caught.value, IndexerError)


def test_query_terms_lists_every_positive_occurrence_in_query_order():
    node = parse_query('Cat "black cat" -dog NOT (x y) +e-mail (z AND -w) cat')
    assert query_terms(node, analyze) == ["cat", "black", "cat", "e", "mail", "z", "cat"]


def test_query_terms_skips_words_without_terms():
    node = parse_query('the cat "of the" dog')
    assert query_terms(node, without("the", "of")) == ["cat", "dog"]


def test_a_stopword_inside_a_phrase_is_a_gap_of_one_position():
    corpus = [line.split() for line in ["global the lock", "global lock", "global a lock", "the global lock"]]
    # "the" and "a" are dropped at analysis, but their positions are counted in the index too
    source = FakeSource(corpus)
    found = match_docs(parse_query('"global the lock"'), source, without("the", "a"))
    assert found.tolist() == [0, 2]  # any one dropped word fills the gap, as in Lucene
    assert match_docs(parse_query('"global lock"'), source, without("the", "a")).tolist() == [1, 3]
    assert match_docs(parse_query('"the global"'), source, without("the", "a")).tolist() == [0, 1, 2, 3]


# --- a fake index and a naive reference ------------------------------------------------------


@dataclass(frozen=True)
class FakePostings:
    docs: np.ndarray
    tfs: np.ndarray
    offsets: np.ndarray
    flat: np.ndarray

    def positions(self):
        return self.offsets, self.flat


class FakeSource:
    """The postings of an in-memory corpus, a list of token lists, in the index's array layout."""

    def __init__(self, corpus: list[list[str]]) -> None:
        self.doc_count = len(corpus)
        where: dict[str, dict[int, list[int]]] = {}
        for doc, tokens in enumerate(corpus):
            for position, token in enumerate(tokens):
                where.setdefault(token, {}).setdefault(doc, []).append(position)
        self._postings = {}
        for term, by_doc in where.items():
            docs = sorted(by_doc)
            lengths = [len(by_doc[doc]) for doc in docs]
            self._postings[term] = FakePostings(
                docs=np.array(docs, dtype=np.uint32),
                tfs=np.array(lengths, dtype=np.uint32),
                offsets=np.cumsum([0, *lengths], dtype=np.int64),
                flat=np.array([p for doc in docs for p in by_doc[doc]], dtype=np.uint32),
            )

    def postings(self, term):
        return self._postings.get(term)


def reference_phrase(corpus, terms) -> set[int]:
    n = len(terms)
    return {
        doc for doc, tokens in enumerate(corpus) if any(tokens[i : i + n] == terms for i in range(len(tokens) - n + 1))
    }


def reference_match(node, corpus) -> set[int] | None:
    """Lucene BooleanQuery semantics on sets; None for a node whose words all analyze to nothing."""
    if isinstance(node, Term | Phrase):
        terms = [t for _, t in analyze(node.word if isinstance(node, Term) else node.text)]
        return reference_phrase(corpus, terms) if terms else None
    found = {"should": [], "must": [], "must_not": []}
    for clause in node.clauses:
        docs = reference_match(clause.node, corpus)
        if docs is not None:
            found[clause.occur].append(docs)
    if not any(found.values()):
        return None
    if found["must"]:
        result = set.intersection(*found["must"])
    elif found["should"]:
        result = set.union(*found["should"])
    else:
        result = set()
    return result - set().union(*found["must_not"])


def check_matches(node, corpus, expected):
    got = match_docs(node, FakeSource(corpus), analyze)
    assert got.dtype == np.int64
    assert got.tolist() == sorted(expected)


# --- match_docs on hand-made corpora -----------------------------------------------------------

HAMLET_LINES = [
    "to be or not to be",
    "to be or to be",
    "be to or not to be",
    "not to be or not to be",
    "to be",
    "",
]
HAMLET = [line.split() for line in HAMLET_LINES]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"to be or not to be"', {0, 3}),
        ('"to be"', {0, 1, 2, 3, 4}),
        ('"be to"', {2}),
        ('"not to be"', {0, 2, 3}),
        ('"to to"', set()),
        ('"to be" -"not to"', {1, 4}),
        ("to AND or AND NOT not", {1}),
        ("+or be", {0, 1, 2, 3}),
        ("+or +not", {0, 2, 3}),
        ("be NOT or", {4}),
        ("(be -or) OR (not -to)", {4}),
        ("missing", set()),
        ('"to missing"', set()),
        ("missing OR to", {0, 1, 2, 3, 4}),
        ("+missing to", set()),
        ("to-be", {0, 1, 2, 3, 4}),  # one word, two terms: a phrase
        ("be-to", {2}),
        ("!!", set()),  # no terms: dropped, and nothing is left
        ("!! -to", set()),  # only an exclusion is left: nothing matches, as in Lucene
        ("+!! or", {0, 1, 2, 3}),  # a dropped required word restricts nothing
        ('"!! or ??"', {0, 1, 2, 3}),
    ],
)
def test_match_docs_on_a_hand_made_corpus(query, expected):
    check_matches(parse_query(query), HAMLET, expected)
    assert reference_match(parse_query(query), HAMLET) in (expected, None)


def test_phrase_never_matches_across_doc_boundaries():
    # doc 0 has "a" at the last possible position, doc 1 has "b" at position 0: "a b" is in
    # neither, though (doc 1, position 0 - 1) and (doc 0, 2**32 - 1) are neighbours as numbers
    last = 2**32 - 1
    table = {
        "a": FakePostings(*_arrays([0, 1], [[last], [3]])),
        "b": FakePostings(*_arrays([0, 1], [[5], [0]])),
    }
    source = FakeSource([])
    source._postings = table
    assert match_docs(Phrase("a b"), source, analyze).tolist() == []
    table["b"] = FakePostings(*_arrays([0, 1], [[5], [0, 4]]))
    assert match_docs(Phrase("a b"), source, analyze).tolist() == [1]


def _arrays(docs, positions):
    lengths = [len(p) for p in positions]
    return (
        np.array(docs, dtype=np.uint32),
        np.array(lengths, dtype=np.uint32),
        np.cumsum([0, *lengths], dtype=np.int64),
        np.array([p for ps in positions for p in ps], dtype=np.uint32),
    )


def test_match_docs_reads_positions_only_for_phrases():
    class NoPositions(FakePostings):
        def positions(self):
            raise AssertionError("positions read for a query without phrases")

    source = FakeSource(HAMLET)
    source._postings = {t: NoPositions(**vars(p)) for t, p in source._postings.items()}
    got = match_docs(parse_query("+to be -not"), source, analyze)
    assert got.tolist() == [1, 4]


# --- match_docs against the reference on random corpora -----------------------------------------

VOCAB = ["to", "be", "or", "not", "and", "cat", "dog", "x"]
vocab_words = st.sampled_from(VOCAB)
corpora = st.lists(st.lists(vocab_words, max_size=12), min_size=1, max_size=12)
raw_words = st.one_of(
    vocab_words,
    vocab_words.map(str.title),  # "Not", "Or", "And": words, not operators
    st.tuples(vocab_words, vocab_words).map("-".join),  # two terms: a phrase
    st.sampled_from(["zzz", "!!"]),  # a term not in the index; no term at all
)
phrase_texts = st.lists(st.one_of(vocab_words, st.just("zzz"), st.just("!!")), min_size=1, max_size=4)
leaves = st.one_of(raw_words.map(Term), phrase_texts.map(" ".join).map(Phrase))


def _bools(children):
    clause = st.builds(Clause, st.sampled_from(["should", "must", "must_not"]), children)
    positive = st.builds(Clause, st.sampled_from(["should", "must"]), children)
    groups = st.tuples(positive, st.lists(clause, max_size=3)).flatmap(
        lambda first_rest: st.permutations([first_rest[0], *first_rest[1]])
    )
    return groups.map(lambda clauses: Bool(tuple(clauses)))


trees = st.recursive(leaves, _bools, max_leaves=12)
PREFIX = {"should": "", "must": "+", "must_not": "-"}


def render(node) -> str:
    """The query string for a tree, every group in parentheses and every clause with its prefix."""
    if isinstance(node, Term):
        return node.word
    if isinstance(node, Phrase):
        return f'"{node.text}"'
    return "(" + " ".join(PREFIX[c.occur] + render(c.node) for c in node.clauses) + ")"


@settings(max_examples=400, deadline=None)
@given(corpus=corpora, tree=trees)
def test_match_docs_agrees_with_the_set_reference(corpus, tree):
    expected = reference_match(tree, corpus) or set()
    check_matches(tree, corpus, expected)
    check_matches(parse_query(render(tree)), corpus, expected)


@settings(max_examples=300, deadline=None)
@given(
    corpus=st.lists(st.lists(st.sampled_from("abc"), max_size=15), min_size=1, max_size=8),
    phrase=st.lists(st.sampled_from("abc"), min_size=1, max_size=5),
)
def test_phrases_agree_with_a_scan_of_each_doc(corpus, phrase):
    # three words only, so phrases with repeated terms often occur
    check_matches(Phrase(" ".join(phrase)), corpus, reference_phrase(corpus, phrase))


def reference_flat(items, corpus) -> set[int] | None:
    """The documented precedence, applied directly to a flat query; None where it must be refused.

    items: (connector, prefix, word); connector " ", " OR " or " AND " joins it to the item before.
    """

    def docs(word):
        return {doc for doc, tokens in enumerate(corpus) if word in tokens}

    chains: list[list[tuple[str, str]]] = []  # runs of operands joined by AND
    for i, (connector, prefix, word) in enumerate(items):
        if i == 0 or connector != " AND ":
            chains.append([])
        chains[-1].append((prefix, word))
    found = {"should": [], "must": [], "must_not": []}
    for chain in chains:
        if len(chain) == 1:
            prefix, word = chain[0]
            found[{"": "should", "+": "must"}.get(prefix, "must_not")].append(docs(word))
            continue
        wanted = [docs(w) for p, w in chain if p not in ("-", "NOT ")]
        unwanted = [docs(w) for p, w in chain if p in ("-", "NOT ")]
        if not wanted:
            return None
        found["should"].append(set.intersection(*wanted) - set().union(*unwanted))
    if found["must"]:
        result = set.intersection(*found["must"])
    elif found["should"]:
        result = set.union(*found["should"])
    else:
        return None
    return result - set().union(*found["must_not"])


flat_items = st.lists(
    st.tuples(
        st.sampled_from([" ", " OR ", " AND "]),
        st.sampled_from(["", "", "+", "-", "NOT "]),
        st.sampled_from(VOCAB[:5]),
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=400, deadline=None)
@given(corpus=corpora, items=flat_items)
def test_operator_precedence_agrees_with_the_reference(corpus, items):
    query = "".join((connector if i else "") + prefix + word for i, (connector, prefix, word) in enumerate(items))
    expected = reference_flat(items, corpus)
    if expected is None:
        with pytest.raises(QueryError, match="only negated terms"):
            parse_query(query)
    else:
        check_matches(parse_query(query), corpus, expected)


def test_lone_open_parenthesis_is_unbalanced():
    with pytest.raises(QueryError, match="unbalanced parenthesis at column 1"):
        parse_query("(")


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(QueryError, match="nested more than"):
        parse_query("(" * 300 + "a" + ")" * 300)
    assert parse_query("(" * 20 + "a" + ")" * 20) == Term("a")
