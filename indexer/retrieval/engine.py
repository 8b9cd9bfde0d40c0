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

from indexer.errors import QueryError
from indexer.retrieval.query import Bool, Node, Phrase, Prefix, Term, match_docs, occurrences_of, phrase_docs
from indexer.retrieval.scoring import BM25
from indexer.retrieval.stats import CollectionStats
from indexer.retrieval.terms import QueryTerm, SegmentTerm, decode, look_up, positions_of
from indexer.store.index import IndexReader

SAFETY = 1 + 1e-9  # bounds are raised by this much against rounding: a skip is never wrong
EXHAUSTIVE_BELOW = 2048  # postings: a query this small is scored whole, which is cheaper


@dataclass(frozen=True)
class Prepared:
    """A query ready to run: its tree (None: plain words) and its scoring terms, each with how many
    times it occurs, in order of first occurrence. `analyze` gives a raw word's (position, term)s,
    `expand` a prefix's terms."""

    node: Node | None
    weights: dict[str, int]
    analyze: Callable
    expand: Callable | None = None


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
    """Sum each doc's contributions, term after term in the given order: (sorted docs, scores).
    A stable sort keeps each doc's contributions in term order, so every engine adds them alike."""
    if not docs:
        return np.zeros(0, np.int64), np.zeros(0)
    if len(docs) == 1:
        return docs[0], contributions[0]
    return _accumulate_flat(np.concatenate(docs), np.concatenate(contributions))


def _accumulate_flat(all_docs: np.ndarray, contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """accumulate() of the terms' docs and contributions laid end to end, term after term."""
    order = np.argsort(all_docs, kind="stable")
    ordered = all_docs[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if len(ordered) else order
    return ordered[starts], np.add.reduceat(contributions[order], starts) if len(order) else order


def _sum_in_order(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return accumulate([d for d, _ in pairs], [w for _, w in pairs])


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of an ascending array."""
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _within(pair: tuple[np.ndarray, np.ndarray], docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (docs, weights) pair restricted to `docs` (sorted)."""
    got, weights = pair
    if not len(docs) or not len(got):
        return got[:0], weights[:0]
    at = np.minimum(np.searchsorted(docs, got), len(docs) - 1)
    keep = docs[at] == got
    return got[keep], weights[keep]


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

    # -- plain words: MaxScore over blocks -------------------------------------------------------

    def _plain(self, scoring: _Scoring, n: int, parts, k: int, theta: float, exact_count: bool):
        """Top k of a disjunction in segment n. Terms are ordered by their best possible weight;
        the highest are decoded whole (essential), and only while the others' bounds could still
        lift a document without an essential term into the top k. Then each remaining term, best
        bound first, is decoded only in the blocks that hold a candidate whose score, with the
        blocks' bounds of the terms still to come, could still reach the k-th score so far."""
        deleted = self.reader.deletions[n].docs
        if exact_count or k <= 0 or sum(p.df for p, _, _ in parts) < EXHAUSTIVE_BELOW:
            chosen = [(i, p, None, times, idf) for i, (p, times, idf) in enumerate(parts)]
            all_docs, weights, _ = self._decode_flat(scoring, n, chosen)
            summed = _accumulate_flat(all_docs, weights) if len(parts) > 1 else (all_docs, weights)
            docs, scores = _drop_deleted(*summed, deleted)
            best_docs, best_scores = top_k(docs, scores, k)
            return best_docs, best_scores, len(docs), True
        # each term's bound: exact for a term of one block (decoded now), its blocks' best otherwise
        small = [(i, p, None, t, idf) for i, (p, t, idf) in enumerate(parts) if p.nblocks == 1]
        decoded = {i: got for i, got in zip((c[0] for c in small), self._decode(scoring, n, small))}
        bounds, block_bounds = [], {}
        for i, (part, times, idf) in enumerate(parts):
            if i in decoded:
                bounds.append(float(decoded[i][1].max(initial=0.0)))
            else:
                ub = scoring.scorer.upper_bound(*part.impacts, idf, scoring.stats) * times * SAFETY
                block_bounds[i] = ub
                bounds.append(float(ub.max()))
        order = sorted(range(len(parts)), key=lambda i: bounds[i], reverse=True)
        # essential terms, best bound first, until the rest together cannot reach the k-th score
        essential, rest = [], list(order)
        while rest:  # (deleted documents are dropped first: their scores must never raise theta)
            candidates, partial = _drop_deleted(*_sum_in_order([decoded[i] for i in essential]), deleted)
            if essential:
                if len(partial) >= k:
                    theta = max(theta, float(np.partition(partial, len(partial) - k)[len(partial) - k]))
                if sum(bounds[i] for i in rest) < theta:
                    break
            i = rest.pop(0)
            essential.append(i)
            if i not in decoded:
                decoded[i] = self._decode(scoring, n, [(i, parts[i][0], None, parts[i][1], parts[i][2])])[0]
        candidates, partial = _drop_deleted(*_sum_in_order([decoded[i] for i in essential]), deleted)
        matched_at_least = len(candidates)
        # the others, best bound first, only where a candidate can still make it
        for step, i in enumerate(rest):
            still = rest[step:]
            room = np.zeros(len(candidates))
            for j in still:  # what the terms still to come can add to each candidate, at most
                room += self._block_bound(parts[j][0], block_bounds.get(j), bounds[j], candidates)
            if len(partial) >= k:
                theta = max(theta, float(np.partition(partial, len(partial) - k)[len(partial) - k]))
            alive = partial + room >= theta
            candidates, partial = candidates[alive], partial[alive]
            if not len(candidates):
                break
            part, times, idf = parts[i]
            which = None
            if part.nblocks > 1:
                which = _sorted_unique(np.searchsorted(part.blocks["last"], candidates))
                which = which[which < part.nblocks]
            got = decoded.get(i) or self._decode(scoring, n, [(i, part, which, times, idf)])[0]
            docs, weights = _within(got, candidates)
            decoded[i] = (docs, weights)
            at = np.searchsorted(candidates, docs)
            partial = partial.copy()
            partial[at] += weights
        if not len(candidates):
            return np.zeros(0, np.int64), np.zeros(0), matched_at_least, False
        # exact scores of the survivors: every term's weights added in the query's order
        docs, scores = _sum_in_order([_within(decoded[i], candidates) for i in sorted(decoded)])
        best_docs, best_scores = top_k(docs, scores, k)
        return best_docs, best_scores, matched_at_least, not rest

    def _block_bound(self, part: SegmentTerm, block_bound, bound: float, docs: np.ndarray) -> np.ndarray:
        """The most a term can add to each of `docs`: its bound in the block holding the doc."""
        if block_bound is None:
            return np.full(len(docs), bound)
        at = np.searchsorted(part.blocks["last"], docs)
        inside = at < part.nblocks
        room = np.zeros(len(docs))
        room[inside] = block_bound[at[inside]]
        return room

    def _decode(self, scoring: _Scoring, n: int, chosen) -> list[tuple[np.ndarray, np.ndarray]]:
        """(docs, weights) of the chosen blocks (None: all) of the given terms, decoded in one pass."""
        if not chosen:
            return []
        docs, weights, cuts = self._decode_flat(scoring, n, chosen)
        return [(docs[a:b], weights[a:b]) for a, b in zip(cuts, cuts[1:])]

    def _decode_flat(self, scoring: _Scoring, n: int, chosen) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(docs, weights, cuts): the chosen blocks' postings, term after term, term j's at
        [cuts[j], cuts[j + 1]), weighed in one pass (the same operations, element by element, as
        weighing each term on its own)."""
        segment = self.reader.segments[n]
        docs, tfs, per_term = decode(segment, [(p, which) for _, p, which, _, _ in chosen])
        counts = per_term.tolist()
        if len(chosen) == 1:
            _, _, _, times, idf = chosen[0]
            return docs, scoring.contributions(n, docs, tfs, idf, times), [0, counts[0]]
        idfs = np.repeat([idf for *_, idf in chosen], per_term)
        weights = scoring.contributions(n, docs, tfs, idfs, 1)
        if any(times != 1 for _, _, _, times, _ in chosen):
            weights = weights * np.repeat(np.array([times for _, _, _, times, _ in chosen], np.float64), per_term)
        cuts = [0]
        for c in counts:
            cuts.append(cuts[-1] + c)
        return docs, weights, cuts

    # -- everything else: match, then score what matched ------------------------------------------

    def _boolean(self, scoring: _Scoring, n: int, parts, query: Prepared, k: int):
        matcher = _Matcher(self, n, query.analyze, query.expand)
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

    def __init__(self, engine: BlockEngine, segment: int, analyze: Callable, expand: Callable | None = None):
        self.engine, self.n, self.analyze, self.expand = engine, segment, analyze, expand
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
        if isinstance(node, Prefix):
            return sum(p.df for p in map(self.part, self.expand(node.prefix) if self.expand else []) if p is not None)
        terms = self.analyze(node.word if isinstance(node, Term) else node.text)
        found = [self.part(t) for _, t in terms]
        return min((p.df if p is not None else 0) for p in found) if found else 1 << 62

    def match(self, node: Node, within: np.ndarray | None = None) -> np.ndarray | None:
        """Sorted local doc ids the node matches within `within`, or None when analysis left the
        node without terms (it then restricts nothing)."""
        if isinstance(node, Bool):
            return self._match_bool(node, within)
        if isinstance(node, Prefix):
            parts = [p for p in map(self.part, self.expand(node.prefix) if self.expand else []) if p is not None]
            found = [self.restricted(p, within)[0] for p in parts]
            return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
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
        if not self.engine.reader.has_positions:
            raise QueryError(
                f"{self.engine.reader.path.name} was built with --no-positions, so it cannot match phrases; "
                "search the words without quotes, or rebuild the index with positions"
            )
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
            occurrences[term] = occurrences_of(docs[rows], starts[rows], tfs[rows], positions)
        return phrase_docs(offsets, occurrences)


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
            matched = match_docs(query.node, self, query.analyze, query.expand)
            keep = np.isin(docs, matched, assume_unique=True)
            docs, scores = docs[keep], scores[keep]
            total = len(matched)
        else:
            total = len(docs)
        best_docs, best_scores = top_k(docs, scores, k)
        return Ranking(best_docs, best_scores, total, True, idfs)


__all__ = ["BlockEngine", "ExhaustiveEngine", "Phrase", "Prepared", "Ranking"]
