"""The query language: parse a query string into a small tree, then find the documents it matches.

search.py calls parse_query once, match_docs for the doc ids that match and query_terms for the
terms BM25 scores them on. Words stay raw in the tree; the caller's analyzer turns them into terms.

Syntax, a simplified form of Lucene's classic query syntax:
  cat dog           either word; a space and OR are the same operator
  cat AND dog       both; NOT binds tightest, then AND, then OR: `a b AND c` is `a OR (b AND c)`
  +cat -dog         cat required in its group, dog excluded from it; `a NOT b` is `a -b`
  "black cat"       the terms at consecutive positions
  (a OR b) AND c    grouping
  pyth*             every term that starts with "pyth" (a prefix: normalized, not stemmed)
AND, OR and NOT are operators only in upper case; `and` is an ordinary word. A `+` or `-` is a
prefix only at the start of a word, phrase or group: `e-mail` and a lone `-` are words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from indexer.errors import QueryError

Occur = Literal["should", "must", "must_not"]
Analyze = Callable[[str], list[tuple[int, str]]]  # raw text -> (word position, term) of its indexed words


@dataclass(frozen=True)
class Term:
    """A raw word as typed; analysis may turn it into no term (dropped), one, or a phrase of several."""

    word: str


@dataclass(frozen=True)
class Phrase:
    """The raw text between double quotes; its terms must occur at consecutive positions."""

    text: str


@dataclass(frozen=True)
class Clause:
    """One member of a Bool: optional ("should"), required ("must") or excluded ("must_not")."""

    occur: Occur
    node: Node


@dataclass(frozen=True)
class Bool:
    """A group with Lucene BooleanQuery semantics.

    It matches every doc matching all "must" clauses, or, when it has none, any "should" clause;
    then docs matching a "must_not" clause are removed. Optional clauses beside a required one
    restrict nothing: they only add to the score.
    """

    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class Prefix:
    """A word typed with a trailing `*`: every index term that starts with it (not stemmed)."""

    prefix: str


Node = Term | Phrase | Prefix | Bool
Expand = Callable[[str], list[str]]  # a raw prefix -> the index terms that start with it


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "phrase", "(", ")", "+", "-", "AND", "OR", "NOT" or "end"
    text: str
    column: int  # 1-based, for error messages


_OPERATORS = frozenset({"AND", "OR", "NOT"})
_WORD_END = re.compile(r'[\s()"]')
_ATOM_START = frozenset({"word", "phrase", "("})
_OPERAND_START = _ATOM_START | {"+", "-", "NOT"}


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    i = 0
    while i < len(text):
        char, column = text[i], i + 1
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, column))
            i += 1
        elif char == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise QueryError(f"unbalanced quote at column {column}")
            if not text[i + 1 : close].strip():
                raise QueryError(f"empty phrase at column {column}")
            tokens.append(_Token("phrase", text[i + 1 : close], column))
            i = close + 1
        elif char in "+-" and text[i + 1 : i + 2] not in ("", ")") and not text[i + 1].isspace():
            tokens.append(_Token(char, char, column))
            i += 1
        else:
            match = _WORD_END.search(text, i)
            end = match.start() if match else len(text)
            word = text[i:end]
            tokens.append(_Token(word if word in _OPERATORS else "word", word, column))
            i = end
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


MAX_NESTING = 50  # parentheses; deeper queries are refused rather than exhausting the stack


class _Parser:
    """Recursive descent over the tokens; one method per precedence level.

    group       := conjunction (("OR")? conjunction)*
    conjunction := unary ("AND" unary)*
    unary       := ("NOT" | "+" | "-")? atom
    atom        := word | phrase | "(" group ")"
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._at = 0
        self._depth = 0

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _take(self) -> _Token:
        self._at += 1
        return self._tokens[self._at - 1]

    def _operand_after(self, op: _Token, allowed: frozenset[str]) -> None:
        following = self._peek().kind
        if following in ("end", ")"):
            raise QueryError(f"'{op.text}' at column {op.column} has nothing on its right")
        if following not in allowed:
            raise QueryError(f"'{op.text}' at column {op.column} must be followed by a word, phrase or group")

    def group(self, opening: _Token | None) -> Node:
        clauses: list[Clause] = []
        while self._peek().kind not in ("end", ")"):
            token = self._peek()
            if token.kind in ("AND", "OR") and not clauses:
                raise QueryError(f"'{token.text}' at column {token.column} has nothing on its left")
            if token.kind == "OR":
                self._take()
                self._operand_after(token, _OPERAND_START)
            clauses.append(self.conjunction())
        if opening is None and self._peek().kind == ")":
            raise QueryError(f"unbalanced parenthesis at column {self._peek().column}")
        if not clauses:  # "(" at the end of the query: the group never closes
            raise QueryError(f"unbalanced parenthesis at column {opening.column}")
        if all(clause.occur == "must_not" for clause in clauses):
            where = "query" if opening is None else f"group at column {opening.column}"
            raise QueryError(f"{where} has only negated terms; add a word to search for")
        if len(clauses) == 1:
            return clauses[0].node  # a lone "should" or "must" clause is its own node
        return Bool(tuple(clauses))

    def conjunction(self) -> Clause:
        operands = [self.unary()]
        first_and = self._peek()
        while self._peek().kind == "AND":
            self._operand_after(self._take(), _OPERAND_START)
            operands.append(self.unary())
        if len(operands) == 1:
            return operands[0]
        if all(operand.occur == "must_not" for operand in operands):
            raise QueryError(f"'AND' at column {first_and.column} joins only negated terms; add a word to search for")
        required = tuple(
            operand if operand.occur == "must_not" else Clause("must", operand.node) for operand in operands
        )
        return Clause("should", Bool(required))

    def unary(self) -> Clause:
        token = self._peek()
        if token.kind not in ("NOT", "+", "-"):
            return Clause("should", self.atom())
        self._take()
        self._operand_after(token, _ATOM_START)
        return Clause("must" if token.kind == "+" else "must_not", self.atom())

    def atom(self) -> Node:
        token = self._take()
        if token.kind == "word":
            if len(token.text) > 1 and token.text.endswith("*") and not token.text.endswith("**"):
                return Prefix(token.text[:-1])
            return Term(token.text)
        if token.kind == "phrase":
            return Phrase(token.text)
        assert token.kind == "(", token  # callers check for an operand first
        if self._peek().kind == ")":
            raise QueryError(f"empty parentheses at column {token.column}")
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise QueryError(f"parentheses nested more than {MAX_NESTING} deep at column {token.column}")
        node = self.group(token)
        self._depth -= 1
        if self._take().kind != ")":
            raise QueryError(f"unbalanced parenthesis at column {token.column}")
        return node


# Quotes and parentheses, + or - at the start of a word, * at the end of one: the only marks the
# parser reads besides the operator words.
_SYNTAX = re.compile(r'["()]|(?<!\S)[+-]|[^\s*]\*(?=\s|$)')


def looks_plain(text: str) -> bool:
    """Whether `text` is plain words for the parser (no operator word, quote, parenthesis,
    leading + or - or trailing *): then it parses to a group of optional words, and searching
    can skip the parser. Ten times cheaper than parsing."""
    return bool(text.strip()) and not _SYNTAX.search(text) and _OPERATORS.isdisjoint(text.split())


def parse_query(text: str) -> Node:
    """Parse a query string into a tree of Term, Phrase and Bool nodes.

    A group holding a single required or optional clause collapses to that clause's node, so
    `cat` and `(+cat)` both give Term("cat"). Words are kept exactly as typed.
    Raises QueryError, naming the 1-based column, for unbalanced quotes or parentheses, an empty
    phrase or group, an operator with nothing on one side, and a query, group or AND chain made
    only of negations (which could match nothing).
    """
    if not text.strip():
        raise QueryError("empty query")
    return _Parser(_tokenize(text)).group(None)


def query_terms(node: Node, analyze: Analyze, expand: Expand | None = None) -> list[str]:
    """Every term of the non-excluded words, phrases and prefixes, in query order, repeats included.

    Nothing under a "must_not" clause is included, at any depth. These are the terms BM25 scores:
    a term that occurs twice counts twice, whatever the operators, groups or phrases around it
    (as a Lucene BooleanQuery adds a repeated clause twice), so `merge sort merge` and
    `merge (sort merge)` score alike. A prefix scores every term it expands to.
    """
    terms: list[str] = []

    def visit(node: Node) -> None:
        if isinstance(node, Bool):
            for clause in node.clauses:
                if clause.occur != "must_not":
                    visit(clause.node)
        elif isinstance(node, Prefix):
            terms.extend(expand(node.prefix) if expand is not None else ())
        else:
            terms.extend(term for _, term in analyze(_raw_text(node)))

    visit(node)
    return terms


def prefixes(node: Node) -> list[str]:
    """The raw prefixes of `node`'s Prefix nodes, in query order."""
    if isinstance(node, Prefix):
        return [node.prefix]
    if isinstance(node, Bool):
        return [p for clause in node.clauses for p in prefixes(clause.node)]
    return []


def is_plain(node: Node) -> bool:
    """Whether `node` is plain words: a word, or a group of optional words (no phrase, no
    required or excluded clause, no nested group). Every scored document of such a query matches."""
    if isinstance(node, Term):
        return True
    return isinstance(node, Bool) and all(c.occur == "should" and isinstance(c.node, Term) for c in node.clauses)


# ---------------------------------------------------------------------------------------------
# Matching


class Postings(Protocol):
    docs: np.ndarray  # uint32, sorted ascending, unique
    tfs: np.ndarray  # uint32, one per doc

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, positions): docs[i]'s sorted positions are positions[offsets[i]:offsets[i+1]]."""
        ...


class PostingSource(Protocol):
    doc_count: int

    def postings(self, term: str) -> Postings | None:
        """The term's postings, or None when the index does not have the term."""
        ...


_NO_DOCS = np.empty(0, dtype=np.int64)  # shared inside; match_docs hands out a fresh one


def match_docs(node: Node, source: PostingSource, analyze: Analyze, expand: Expand | None = None) -> np.ndarray:
    """The ids of the docs that node matches: a sorted, unique np.int64 array.

    `analyze` turns a raw word or phrase text into (position, term) pairs. A word giving several
    terms (`e-mail`) is matched as a phrase; a stopword inside a phrase is a gap of one position.
    A word or phrase giving none (a stopword) is dropped from its group; a query left with nothing
    matches no doc, and so does a group left with only exclusions, as in Lucene. A term missing
    from the index matches no doc. A prefix matches the docs of any term `expand` gives for it.
    """
    docs = _Matcher(source, analyze, expand).match(node)
    return np.empty(0, dtype=np.int64) if docs is None or not len(docs) else docs


def _raw_text(node: Term | Phrase) -> str:
    return node.word if isinstance(node, Term) else node.text


class _Matcher:
    def __init__(self, source: PostingSource, analyze: Analyze, expand: Expand | None = None) -> None:
        self._source = source
        self._analyze = analyze
        self._expand = expand
        self._postings: dict[str, Postings | None] = {}

    def _lookup(self, term: str) -> Postings | None:
        if term not in self._postings:
            self._postings[term] = self._source.postings(term)
        return self._postings[term]

    def match(self, node: Node) -> np.ndarray | None:
        """Sorted unique int64 doc ids, or None when analysis left the node without terms."""
        if isinstance(node, Bool):
            return self._match_bool(node)
        if isinstance(node, Prefix):
            found = [self._lookup(t) for t in (self._expand(node.prefix) if self._expand else [])]
            docs = [p.docs.astype(np.int64) for p in found if p is not None]
            return _union(docs) if docs else _NO_DOCS
        terms = self._analyze(_raw_text(node))
        if not terms:
            return None
        if len(terms) == 1:
            postings = self._lookup(terms[0][1])
            return _NO_DOCS if postings is None else postings.docs.astype(np.int64)
        return self._match_phrase(terms)

    def _match_bool(self, node: Bool) -> np.ndarray | None:
        found: dict[str, list[np.ndarray]] = {"should": [], "must": [], "must_not": []}
        for clause in node.clauses:
            docs = self.match(clause.node)
            if docs is not None:
                found[clause.occur].append(docs)
        if not any(found.values()):
            return None
        if found["must"]:
            docs = _intersect(found["must"])
        elif found["should"]:
            docs = _union(found["should"])
        else:
            return _NO_DOCS  # only exclusions survived analysis
        if found["must_not"] and len(docs):
            docs = np.setdiff1d(docs, _union(found["must_not"]), assume_unique=True)
        return docs

    def _match_phrase(self, positioned: list[tuple[int, str]]) -> np.ndarray:
        first = positioned[0][0]
        terms = [(at - first, term) for at, term in positioned]  # offsets from the phrase's first term
        distinct = list(dict.fromkeys(term for _, term in terms))
        postings = [self._lookup(term) for term in distinct]
        if any(p is None for p in postings):
            return _NO_DOCS
        candidates = _intersect([p.docs.astype(np.int64) for p in postings])
        if not len(candidates):
            return _NO_DOCS
        occurrences = {t: _occurrences(p, candidates) for t, p in zip(distinct, postings)}
        return phrase_docs(terms, occurrences)


def phrase_docs(terms: list[tuple[int, str]], occurrences: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The docs where the phrase occurs: `terms` are (offset in the phrase, term), `occurrences`
    each term's (doc, position) arrays. Each occurrence of the term at offset i votes for the
    phrase starting at (doc, position - i); a phrase occurs where every offset votes for the same
    start. A start is one int64 key, doc * 2**32 + start, so the key arrays are sorted and unique."""
    starts = None
    for offset, term in sorted(terms, key=lambda it: len(occurrences[it[1]][0])):
        docs, positions = occurrences[term]
        keep = positions >= offset
        keys = (docs[keep] << 32) + (positions[keep] - offset)
        starts = keys if starts is None else np.intersect1d(starts, keys, assume_unique=True)
        if not len(starts):
            return np.zeros(0, np.int64)
    return np.unique(starts >> 32)


def occurrences_of(docs: np.ndarray, starts: np.ndarray, lengths: np.ndarray, positions: np.ndarray):
    """(doc, position) int64 arrays of every occurrence: doc i's positions are
    positions[starts[i] : starts[i] + lengths[i]], gathered without a loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    first_of_row = np.cumsum(lengths) - lengths
    flat = np.repeat(starts - first_of_row, lengths) + np.arange(int(lengths.sum()))
    return np.repeat(np.asarray(docs, dtype=np.int64), lengths), positions[flat].astype(np.int64)


def _occurrences(postings: Postings, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(doc id, position) int64 arrays of the term's occurrences in docs, a subset of its docs."""
    offsets, positions = postings.positions()
    rows = np.searchsorted(postings.docs, docs)
    return occurrences_of(docs, offsets[rows], offsets[rows + 1] - offsets[rows], positions)


def _intersect(arrays: list[np.ndarray]) -> np.ndarray:
    arrays = sorted(arrays, key=len)  # start from the rarest
    result = arrays[0]
    for other in arrays[1:]:
        if not len(result):
            break
        result = np.intersect1d(result, other, assume_unique=True)
    return result


def _union(arrays: list[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    return np.unique(np.concatenate(arrays))
