"""Retrieval evaluation: the last step after search, scoring ranked runs against relevance judgments.

Reads query files (TSV or JSONL) and TREC qrels, writes TREC run lines, and computes nDCG, AP,
recall, precision and reciprocal rank following trec_eval's definitions; `evaluate_index` runs a
batch of queries on an index and scores it. Pure apart from the readers, which only read the file
they are given.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from indexer.errors import IndexerError
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1
from indexer.retrieval.searcher import Searcher
from indexer.store.index import IndexReader

# Metric name -> whether a cutoff "@k" is required (True), optional (False).
_METRICS = {"ndcg": False, "map": False, "mrr": False, "recall": True, "p": True}
_SUPPORTED = "ndcg@k, ndcg, map, map@k, recall@k, p@k, mrr@k, mrr (k a positive integer)"
_ID_KEYS = ("_id", "id", "query_id")
_TEXT_KEYS = ("text", "query", "title")


@dataclass(frozen=True)
class Evaluation:
    """Scores of one run: per evaluated query, their means, and how many queries were averaged."""

    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]
    queries: int


def _read_lines(path: Path) -> list[str]:
    """The lines of a text file; the path "-" is standard input."""
    try:
        if str(path) == "-":
            return sys.stdin.buffer.read().decode("utf-8-sig").splitlines()
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as err:
        raise IndexerError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise IndexerError(f"{path}: cannot read file ({err.strerror or err})") from err


def _json_query(path: Path, lineno: int, line: str) -> tuple[str, str]:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise IndexerError(f"{where}: invalid JSON ({err.msg})") from err
    if not isinstance(obj, dict):
        raise IndexerError(f"{where}: expected a JSON object per line")
    qid = next((obj[k] for k in _ID_KEYS if k in obj), None)
    text = next((obj[k] for k in _TEXT_KEYS if k in obj), None)
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid.strip():
        raise IndexerError(f"{where}: missing query id (a non-empty '_id', 'id' or 'query_id')")
    if not isinstance(text, str):
        raise IndexerError(f"{where}: missing query text (a string 'text', 'query' or 'title')")
    return qid.strip(), text.strip()


def read_queries(path: Path) -> list[tuple[str, str]]:
    """Read queries as (query id, text) pairs in file order.

    TSV (`query_id<TAB>text`, blank lines skipped) or JSONL (one object per line; id from `_id`,
    `id` or `query_id`, text from `text`, `query` or `title`). JSONL is chosen by a `.jsonl` or
    `.json` suffix or by the first non-blank character being `{`. The path "-" reads standard input.
    Raises IndexerError naming file and line for unreadable, malformed or duplicate entries.
    """
    lines = _read_lines(path)
    first = next((ln.lstrip()[:1] for ln in lines if ln.strip()), "")
    as_json = path.suffix.lower() in (".jsonl", ".json") or first == "{"
    queries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if as_json:
            qid, text = _json_query(path, lineno, line)
        else:
            qid, sep, text = line.partition("\t")
            qid, text = qid.strip(), text.strip()
            if not sep or not qid:
                raise IndexerError(f"{path}:{lineno}: expected 'query_id<TAB>text'")
        if not text:
            raise IndexerError(f"{path}:{lineno}: query {qid!r} has empty text")
        if qid in seen:
            raise IndexerError(f"{path}:{lineno}: duplicate query id {qid!r} (first on line {seen[qid]})")
        seen[qid] = lineno
        queries.append((qid, text))
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read TREC qrels (`query_id iteration doc_id relevance`, whitespace separated).

    Returns {query id: {doc id: relevance}}; relevance may be 0 or negative (non-relevant).
    Raises IndexerError naming file and line for malformed lines or a repeated judgment.
    """
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise IndexerError(
                f"{path}:{lineno}: expected 'query_id iteration doc_id relevance', got {len(fields)} fields"
            )
        qid, _, docid, rel_text = fields
        try:
            rel = int(rel_text)
        except ValueError:
            raise IndexerError(f"{path}:{lineno}: relevance {rel_text!r} is not an integer") from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise IndexerError(f"{path}:{lineno}: repeated judgment for query {qid!r} doc {docid!r}")
        judged[docid] = rel
    return qrels


def write_trec_run(
    out: TextIO, qid: str, hits: Sequence[tuple[str, float]], run_name: str, first_rank: int = 1
) -> None:
    """Write one query's hits as TREC run lines `qid Q0 doc_id rank score run_name`.

    Ranks start at `first_rank` (1; more for a later page) in the order given; scores get 8
    decimals so near-ties stay distinct. Raises IndexerError if an id or the run name is empty or
    contains whitespace.
    """
    for label, value in (("query id", qid), ("run name", run_name)):
        _check_token(label, value)
    for rank, (docid, score) in enumerate(hits, start=first_rank):
        _check_token("doc id", docid)
        out.write(f"{qid} Q0 {docid} {rank} {score:.8f} {run_name}\n")


def escape_trec_id(doc_id: str) -> str:
    """A doc id as a TREC run column: whitespace percent-encoded (a space is %20), and % itself
    (%25) so that the escaping can be undone. An id without whitespace is returned as it is."""
    if not any(c.isspace() for c in doc_id):
        return doc_id
    return "".join(
        "".join(f"%{byte:02X}" for byte in c.encode("utf-8")) if c.isspace() or c == "%" else c for c in doc_id
    )


def _check_token(label: str, value: str) -> None:
    if not value or len(value.split()) != 1 or value.strip() != value:
        raise IndexerError(f"{label} {value!r} cannot be written to a TREC run: empty or has spaces")


def _parse_metric(item: str) -> tuple[str, int | None]:
    text = item.strip().lower()
    name, at, cutoff = text.partition("@")
    if name not in _METRICS:
        raise IndexerError(f"unknown metric {item.strip()!r}; supported: {_SUPPORTED}")
    if not at:
        if _METRICS[name]:
            raise IndexerError(f"metric {item.strip()!r} needs a cutoff; supported: {_SUPPORTED}")
        return name, None
    if not (cutoff.isascii() and cutoff.isdigit()) or int(cutoff) < 1:
        raise IndexerError(f"metric {item.strip()!r}: bad cutoff; supported: {_SUPPORTED}")
    return name, int(cutoff)


def _metric_key(name: str, k: int | None) -> str:
    return name if k is None else f"{name}@{k}"


def parse_metrics(spec: str) -> list[str]:
    """Parse a comma-separated metric list such as "ndcg@10,map,recall@100".

    Returns normalised names (lower case, no spaces, cutoffs without leading zeros), each once,
    in the order given. Raises IndexerError listing the supported metrics on anything unknown.
    """
    keys: list[str] = []
    for item in spec.split(","):
        key = _metric_key(*_parse_metric(item))
        if key not in keys:
            keys.append(key)
    return keys


def _dcg(gains: Sequence[int]) -> float:
    # trec_eval ndcg / ndcg_cut: linear gain, discount log2(rank + 1) with rank from 1.
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def _score(name: str, k: int | None, rels: list[int], judged: Mapping[str, int]) -> float:
    """One metric for one query; rels are the judgments of the ranked docs (0 if unjudged)."""
    num_rel = sum(1 for r in judged.values() if r >= 1)
    top = rels if k is None else rels[:k]
    if name == "ndcg":
        ideal = sorted((r for r in judged.values() if r > 0), reverse=True)
        ideal = ideal if k is None else ideal[:k]
        return _dcg(top) / _dcg(ideal)
    if name == "map":
        found, total = 0, 0.0
        for rank, rel in enumerate(top, start=1):
            if rel >= 1:
                found += 1
                total += found / rank
        return total / num_rel
    if name == "recall":
        return sum(1 for r in top if r >= 1) / num_rel
    if name == "p":
        assert k is not None
        return sum(1 for r in top if r >= 1) / k
    assert name == "mrr"
    return next((1.0 / rank for rank, rel in enumerate(top, start=1) if rel >= 1), 0.0)


def evaluate(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str],
) -> Evaluation:
    """Score a run against qrels, trec_eval style.

    run maps query id -> doc ids in rank order (used as given; repeats after the first ignored).
    Evaluated queries are those in qrels with at least one doc of relevance >= 1; one missing
    from the run scores 0 everywhere; run queries without qrels are ignored. Unjudged docs are
    non-relevant. Metric names are as parse_metrics accepts; results are keyed by its normal form.
    Raises IndexerError for an unknown metric or when no query has a relevant document.
    """
    parsed = [_parse_metric(m) for m in metrics]
    keys = [_metric_key(name, k) for name, k in parsed]
    per_query: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        if not any(r >= 1 for r in judged.values()):
            continue
        ranked = list(dict.fromkeys(run.get(qid, ())))
        rels = [judged.get(doc, 0) for doc in ranked]
        per_query[qid] = {key: _score(name, k, rels, judged) for key, (name, k) in zip(keys, parsed)}
    if not per_query:
        raise IndexerError("no query in the qrels has a relevant document; nothing to evaluate")
    mean = {key: math.fsum(s[key] for s in per_query.values()) / len(per_query) for key in keys}
    return Evaluation(per_query=per_query, mean=mean, queries=len(per_query))


def judgment_coverage(
    queries: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]], doc_names: Iterable[str]
) -> tuple[int, int]:
    """(queries that have judgments, judged documents that are in the index): a zero means the
    queries, qrels and index do not belong together, and every metric would be 0."""
    judged = {doc for docs in qrels.values() for doc in docs}
    return len({qid for qid, _ in queries} & set(qrels)), len(judged & set(doc_names))


def evaluate_index(
    reader: IndexReader,
    queries: Iterable[tuple[str, str]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str],
    depth: int = 1000,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
    syntax: bool = False,
) -> Evaluation:
    """Run every (query id, text) to `depth` hits on `reader` and score the run against `qrels`.

    Queries are plain words unless `syntax` (test-collection queries are natural language, with
    stray quotes and parentheses). Metrics are names as indexer.evaluate.parse_metrics accepts
    ("ndcg@10", "map", ...), checked before any query runs. Raises IndexerError for an unknown
    metric or qrels without a relevant document, QueryError naming the query id for a malformed
    query (with `syntax`).
    """
    for metric in metrics:
        parse_metrics(metric)
    searcher = Searcher(reader, k1, b)
    results = searcher.search_many(queries, depth, syntax=syntax)
    run = {qid: [hit.doc for hit in result.hits] for qid, result in results}
    return evaluate(run, qrels, metrics)


def ranked_ids(results) -> list[tuple[str, list[str]]]:
    """(query id, doc ids best first) of (query id, SearchResult) pairs: what evaluation needs,
    made in a batch search worker (see retrieval.batch)."""
    return [(qid, [hit.doc for hit in result.hits]) for qid, result in results]
