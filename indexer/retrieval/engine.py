"""Engines: a prepared query on an open index -> the top k documents and their scores.

`BlockEngine` answers from the blocks, segment by segment, with the scores of the whole collection
(CollectionStats, live df). A query of plain words ranks its candidates with block-max pruning: the
blocks' bounds (largest tf, shortest document) bound the score of every doc range, ranges are
scored best bound first, and a range whose bound is below the k-th score found so far is never
decoded. Other queries match first, the rarest required clause first and the others only in the
blocks that hold its documents, then score what matched. `ExhaustiveEngine` decodes every posting
of every query term and scores every matching document: it is the oracle the block engine must
equal (same documents, same scores to the last bit, same order).

A document's score is the sum of its terms' weights, added in the query's term order, in both
engines; so is every bound. Ties are broken by the lower doc id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.retrieval.query import Bool, Node, Phrase, Term, match_docs
from indexer.retrieval.scoring import BM25
from indexer.retrieval.stats import CollectionStats
from indexer.retrieval.terms import QueryTerm, SegmentTerm, decode, look_up, positions_of
from indexer.store.index import IndexReader

SAFETY = 1 + 1e-9  # bounds are raised by this much against rounding: a skip is never wrong
FIRST_ROUND_DOCS = 4  # x k: the best ranges scored first hold about this many documents
ROUND_GROWTH = 4  # each later round scores up to this many times more ranges than the one before
EXHAUSTIVE_BELOW = 2048  # postings: a query this small is scored whole, which is cheaper


@dataclass(frozen=True)
class Prepared:
    """A query ready to run: its tree (None: plain words) and its scoring terms, each with how many
    times it occurs, in order of first occurrence. `analyze` gives a raw word's (position, term)s."""

    node: Node | None
    weights: dict[str, int]
    analyze: Callable


@dataclass(frozen=True)
class Ranking:
    docs: np.ndarray  # global doc ids, best first
    scores: np.ndarray
    total: int  # matching documents: exact, or a lower bound when not `exact`
    exact: bool
    idfs: dict[str, float]


def top_k(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (docs, scores): highest score first, ties by lower doc id."""
    if k <= 0:
        return docs[:0], scores[:0]
    if len(docs) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:k]
    return docs[order], scores[order]


def accumulate(docs: list[np.ndarray], contributions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sum each doc's contributions, term after term in the given order: (sorted docs, scores)."""
    if not docs:
        return np.zeros(0, np.int64), np.zeros(0)
    all_docs = np.concatenate(docs)
    unique, inverse = np.unique(all_docs, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), np.concatenate(contributions), minlength=len(unique))


class _Scoring:
    """The scorer, the collection's statistics and the query's terms with their idf."""

    def __init__(self, reader: IndexReader, scorer: BM25, query: Prepared, lookup: Callable):
        self.reader, self.scorer = reader, scorer
        self.stats = CollectionStats(reader.doc_count, reader.meta.tokens)
        self.terms: list[tuple[QueryTerm, int, float]] = []  # (term, times, idf) in query order
        self.idfs: dict[str, float] = {}
        for term, times in query.weights.items():
            found = lookup(term)
            if found is None:
                self.idfs[term] = 0.0
                continue
            idf = float(scorer.idf(found.df, self.stats))
            self.idfs[term] = idf
            self.terms.append((found, times, idf))

    def contributions(self, segment: int, docs: np.ndarray, tfs: np.ndarray, idf: float, times: int) -> np.ndarray:
        """A term's share of the scores of docs (local ids) with these tfs."""
        lengths = self.reader.segments[segment].doc_lengths[docs]
        weights = self.scorer.weights(tfs, self.scorer.norms(lengths, self.stats), idf)
        return weights if times == 1 else weights * times


class BlockEngine:
    """Ranks from the blocks with pruning; see the module's docstring."""

    def __init__(self, reader: IndexReader, scorer: BM25, lookup: Callable | None = None):
        self.reader, self.scorer = reader, scorer
        self.lookup = lookup or (lambda term: look_up(reader, term))

    def run(self, query: Prepared, k: int, exact_count: bool = False) -> Ranking:
        scoring = _Scoring(self.reader, self.scorer, query, self.lookup)
        best_docs, best_scores = np.zeros(0, np.int64), np.zeros(0)
        total, exact = 0, True
        for n in range(len(self.reader.segments)):
            parts = [(term.in_segment(n), times, idf) for term, times, idf in scoring.terms]
            parts = [(p, times, idf) for p, times, idf in parts if p is not None]
            if query.node is None and not parts:
                continue
            theta = best_scores[-1] if len(best_scores) >= k > 0 else 0.0
            if query.node is None:
                docs, scores, found, complete = self._plain(scoring, n, parts, k, theta, exact_count)
            else:
                docs, scores, found, complete = self._boolean(scoring, n, parts, query, k)
            total += found
            exact = exact and complete
            docs = docs + self.reader.bases[n]
            best_docs, best_scores = top_k(np.concatenate((best_docs, docs)), np.concatenate((best_scores, scores)), k)
        return Ranking(best_docs, best_scores, total, exact, scoring.idfs)

    # -- plain words: block-max pruning -----------------------------------------------------------

    def _plain(self, scoring: _Scoring, n: int, parts, k: int, theta: float, exact_count: bool):
        segment = self.reader.segments[n]
        deleted = self.reader.deletions[n].docs
        postings = sum(p.df for p, _, _ in parts)
        big = [i for i, (p, _, _) in enumerate(parts) if p.nblocks > 1]
        if exact_count or k <= 0 or postings < EXHAUSTIVE_BELOW or not big:
            docs, scores = self._score_all(scoring, n, [(p, None, times, idf) for p, times, idf in parts])
            docs, scores = _drop_deleted(docs, scores, deleted)
            kept_docs, kept_scores = top_k(docs, scores, k)
            return kept_docs, kept_scores, len(docs), True
        # small terms are decoded whole: their docs and exact weights bound their doc ranges exactly
        small = [i for i in range(len(parts)) if i not in big]
        small_docs, small_scores = np.zeros(0, np.int64), np.zeros(0)
        if small:
            small_docs, small_scores = self._score_all(
                scoring, n, [(parts[i][0], None, parts[i][1], parts[i][2]) for i in small]
            )
        # doc ranges: between the block ends of the big terms; each range lies in one block per term
        lasts = [parts[i][0].blocks["last"] for i in big]
        bounds = np.unique(np.concatenate([*lasts, small_docs[-1:], [segment.doc_count - 1]]))
        bound = np.zeros(len(bounds))
        covering = []  # per big term: the block covering each range (== nblocks: beyond its last)
        for i, last in zip(big, lasts):
            part, times, idf = parts[i]
            ub = scoring.scorer.upper_bound(*part.impacts, idf, scoring.stats) * times
            where = np.searchsorted(last, bounds)
            inside = where < len(last)
            bound[inside] += ub[where[inside]]
            covering.append(where)
        if len(small_docs):  # the best small-term score within each range
            at = np.searchsorted(bounds, small_docs)
            best_small = np.zeros(len(bounds))
            np.maximum.at(best_small, at, small_scores)
            bound += best_small
        bound *= SAFETY
        lows = np.concatenate(([0], bounds[:-1] + 1))
        todo = np.argsort(-bound, kind="stable")
        todo = todo[bound[todo] > 0]  # a range bounded by 0 holds no match
        candidates = len(todo)
        best_docs, best_scores, seen = np.zeros(0, np.int64), np.zeros(0), [np.zeros(0, np.int64)]
        widths = np.cumsum(bounds[todo] - lows[todo] + 1)
        batch_size = int(np.searchsorted(widths, FIRST_ROUND_DOCS * k)) + 1  # the best ranges, about 4k docs
        scored = 0
        while True:
            todo = todo[bound[todo] >= theta]  # a range bounded below the k-th score cannot enter
            if not len(todo):
                break
            batch, todo = np.sort(todo[:batch_size]), todo[batch_size:]
            batch_size *= ROUND_GROWTH
            docs, scores = self._score_ranges(scoring, n, parts, big, covering, batch, lows[batch], bounds[batch])
            docs, scores = _drop_deleted(docs, scores, deleted)
            seen.append(docs)
            scored += len(batch)
            best_docs, best_scores = top_k(np.concatenate((best_docs, docs)), np.concatenate((best_scores, scores)), k)
            if len(best_scores) >= k:
                theta = max(theta, float(best_scores[-1]))
        live_small = _drop_deleted(small_docs, small_docs, deleted)[0]
        matched = len(np.union1d(np.concatenate(seen), live_small))  # every doc of a small term matches
        return best_docs, best_scores, matched, scored == candidates

    def _score_all(self, scoring: _Scoring, n: int, chosen):
        """Exact scores of every doc in the chosen blocks (None: all) of the given terms."""
        segment = self.reader.segments[n]
        docs, tfs, per_term = decode(segment, [(p, which) for p, which, _, _ in chosen])
        cuts = np.concatenate(([0], np.cumsum(per_term)))
        term_docs, contributions = [], []
        for j, (_, _, times, idf) in enumerate(chosen):
            d, t = docs[cuts[j] : cuts[j + 1]], tfs[cuts[j] : cuts[j + 1]]
            term_docs.append(d)
            contributions.append(scoring.contributions(n, d, t, idf, times))
        return accumulate(term_docs, contributions)

    def _score_ranges(self, scoring, n, parts, big, covering, ranges, lows, highs):
        """Exact scores of every matching doc in the chosen doc ranges [lows, highs]."""
        chosen = []
        for i, (part, times, idf) in enumerate(parts):
            if i in big:
                where = covering[big.index(i)][ranges]
                which = np.unique(where[where < part.nblocks])
                chosen.append((part, which, times, idf))
            else:
                chosen.append((part, None, times, idf))
        segment = self.reader.segments[n]
        docs, tfs, per_term = decode(segment, [(p, which) for p, which, _, _ in chosen])
        spot = np.searchsorted(highs, docs)
        keep = spot < len(highs)
        keep[keep] = lows[spot[keep]] <= docs[keep]
        cuts = np.concatenate(([0], np.cumsum(per_term)))
        term_docs, contributions = [], []
        for j, (_, _, times, idf) in enumerate(chosen):
            mask = keep[cuts[j] : cuts[j + 1]]
            d, t = docs[cuts[j] : cuts[j + 1]][mask], tfs[cuts[j] : cuts[j + 1]][mask]
            term_docs.append(d)
            contributions.append(scoring.contributions(n, d, t, idf, times))
        return accumulate(term_docs, contributions)

    # -- everything else: match, then score what matched ------------------------------------------

    def _boolean(self, scoring: _Scoring, n: int, parts, query: Prepared, k: int):
        matcher = _Matcher(self, n, query.analyze)
        matched = matcher.match(query.node)
        matched = np.zeros(0, np.int64) if matched is None else matched
        matched = _drop_deleted(matched, matched, self.reader.deletions[n].docs)[0]
        if not len(matched) or not parts:
            return matched[:0], np.zeros(0), len(matched), True
        term_docs, contributions = [], []
        for part, times, idf in parts:
            docs, tfs = matcher.restricted(part, matched)
            term_docs.append(docs)
            contributions.append(scoring.contributions(n, docs, tfs, idf, times))
        docs, scores = accumulate(term_docs, contributions)
        if len(docs) < len(matched):  # a match without a scoring term scores 0 (it still matches)
            docs = np.concatenate((docs, np.setdiff1d(matched, docs, assume_unique=True)))
            scores = np.concatenate((scores, np.zeros(len(docs) - len(scores))))
        best_docs, best_scores = top_k(docs, scores, k)
        return best_docs, best_scores, len(matched), True


def _drop_deleted(docs: np.ndarray, scores: np.ndarray, deleted: np.ndarray):
    if not len(deleted) or not len(docs):
        return docs, scores
    at = np.searchsorted(deleted, docs)
    gone = at < len(deleted)
    gone[gone] = deleted[at[gone]] == docs[gone]
    return docs[~gone], scores[~gone]


class _Matcher:
    """Lucene BooleanQuery semantics on one segment's blocks: a clause is evaluated only within the
    documents the clauses before it left (the rarest required clause goes first)."""

    def __init__(self, engine: BlockEngine, segment: int, analyze: Callable):
        self.engine, self.n, self.analyze = engine, segment, analyze
        self.segment = engine.reader.segments[segment]

    def part(self, term: str) -> SegmentTerm | None:
        found = self.engine.lookup(term)
        return None if found is None else found.in_segment(self.n)

    def restricted(self, part: SegmentTerm, within: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(docs, tfs) of a term, only in `within` (sorted docs; None: everywhere): only the blocks
        that can hold those docs are decoded."""
        which = None
        if within is not None and part.nblocks > 1:
            which = np.unique(np.searchsorted(part.blocks["last"], within))
            which = which[which < part.nblocks]
        docs, tfs, _ = decode(self.segment, [(part, which)])
        if within is not None:
            keep = np.isin(docs, within, assume_unique=True)
            docs, tfs = docs[keep], tfs[keep]
        return docs, tfs

    def cost(self, node: Node) -> int:
        """Postings a node's evaluation may decode (to order required clauses, cheapest first)."""
        if isinstance(node, Bool):
            costs = [self.cost(c.node) for c in node.clauses if c.occur != "must_not"]
            musts = [self.cost(c.node) for c in node.clauses if c.occur == "must"]
            return min(musts) if musts else sum(costs)
        terms = self.analyze(node.word if isinstance(node, Term) else node.text)
        found = [self.part(t) for _, t in terms]
        return min((p.df if p is not None else 0) for p in found) if found else 1 << 62

    def match(self, node: Node, within: np.ndarray | None = None) -> np.ndarray | None:
        """Sorted local doc ids the node matches within `within`, or None when analysis left the
        node without terms (it then restricts nothing)."""
        if isinstance(node, Bool):
            return self._match_bool(node, within)
        terms = self.analyze(node.word if isinstance(node, Term) else node.text)
        if not terms:
            return None
        if len(terms) == 1:
            part = self.part(terms[0][1])
            return np.zeros(0, np.int64) if part is None else self.restricted(part, within)[0]
        return self._match_phrase(terms, within)

    def _match_bool(self, node: Bool, within: np.ndarray | None) -> np.ndarray | None:
        musts = sorted((c.node for c in node.clauses if c.occur == "must"), key=self.cost)
        shoulds = [c.node for c in node.clauses if c.occur == "should"]
        nots = [c.node for c in node.clauses if c.occur == "must_not"]
        docs, any_result = within, False
        for clause in musts:
            found = self.match(clause, docs)
            if found is not None:
                docs, any_result = found, True
                if not len(docs):
                    return docs
        if not any_result:
            found = [f for f in (self.match(c, within) for c in shoulds) if f is not None]
            if found:
                docs, any_result = (found[0] if len(found) == 1 else np.unique(np.concatenate(found))), True
            elif not [f for f in (self.match(c, within) for c in nots) if f is not None]:
                return None
            else:
                return np.zeros(0, np.int64)  # only exclusions survived analysis: nothing matches
        for clause in nots:
            if not len(docs):
                break
            gone = self.match(clause, docs)
            if gone is not None and len(gone):
                docs = np.setdiff1d(docs, gone, assume_unique=True)
        return docs

    def _match_phrase(self, terms: list[tuple[int, str]], within: np.ndarray | None) -> np.ndarray:
        first_position = terms[0][0]
        offsets = [(at - first_position, term) for at, term in terms]
        distinct = list(dict.fromkeys(term for _, term in offsets))
        parts = [self.part(t) for t in distinct]
        if any(p is None for p in parts):
            return np.zeros(0, np.int64)
        candidates = within
        for part in sorted(parts, key=lambda p: p.df):  # rarest first, the others within its docs
            candidates = self.restricted(part, candidates)[0]
            if not len(candidates):
                return candidates
        occurrences = {}
        for term, part in zip(distinct, parts):
            which = None
            if part.nblocks > 1:
                which = np.unique(np.searchsorted(part.blocks["last"], candidates))
                which = which[which < part.nblocks]
            docs, tfs, starts, positions = positions_of(self.segment, part, which)
            rows = np.flatnonzero(np.isin(docs, candidates, assume_unique=True))
            lengths = tfs[rows]
            first = np.repeat(starts[rows] - (np.cumsum(lengths) - lengths), lengths)
            flat = first + np.arange(int(lengths.sum()))
            occurrences[term] = (np.repeat(docs[rows], lengths), positions[flat])
        starts_found = None
        for offset, term in sorted(offsets, key=lambda it: len(occurrences[it[1]][0])):
            docs, positions = occurrences[term]
            keep = positions >= offset
            keys = (docs[keep] << 32) + (positions[keep] - offset)
            starts_found = keys if starts_found is None else np.intersect1d(starts_found, keys, assume_unique=True)
            if not len(starts_found):
                return np.zeros(0, np.int64)
        return np.unique(starts_found >> 32)


class ExhaustiveEngine:
    """Decodes every posting of every query term in the whole index and scores every matching
    document: the oracle of the block engine (and what version 1 did)."""

    def __init__(self, reader: IndexReader, scorer: BM25):
        self.reader, self.scorer = reader, scorer
        self._postings: dict[str, object] = {}

    def postings(self, term: str):
        if term not in self._postings:
            self._postings[term] = self.reader.postings(term)
        return self._postings[term]

    @property
    def doc_count(self) -> int:
        return self.reader.doc_count

    def run(self, query: Prepared, k: int, exact_count: bool = True) -> Ranking:
        stats = CollectionStats(self.reader.doc_count, self.reader.meta.tokens)
        norms_all = self.reader.doc_lengths
        term_docs, contributions, idfs = [], [], {}
        for term, times in query.weights.items():
            found = self.postings(term)
            if found is None:
                idfs[term] = 0.0
                continue
            idf = float(self.scorer.idf(len(found.docs), stats))
            idfs[term] = idf
            weights = self.scorer.weights(found.tfs, self.scorer.norms(norms_all[found.docs], stats), idf)
            term_docs.append(found.docs.astype(np.int64))
            contributions.append(weights if times == 1 else weights * times)
        docs, scores = accumulate(term_docs, contributions)
        if query.node is not None:
            matched = match_docs(query.node, self, query.analyze)
            keep = np.isin(docs, matched, assume_unique=True)
            docs, scores = docs[keep], scores[keep]
            total = len(matched)
        else:
            total = len(docs)
        best_docs, best_scores = top_k(docs, scores, k)
        return Ranking(best_docs, best_scores, total, True, idfs)


__all__ = ["BlockEngine", "ExhaustiveEngine", "Phrase", "Prepared", "Ranking"]
