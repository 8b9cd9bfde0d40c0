"""`indexer eval`: run a query file on an index and score it against relevance judgments."""

from __future__ import annotations

import json

import click

from indexer.cli.common import EXISTING_FILE, bm25_options, index_argument, out, reported_errors, stopped_by_signals
from indexer.errors import IndexerError
from indexer.evaluate import evaluate, judgment_coverage, parse_metrics, ranked_ids, read_qrels, read_queries
from indexer.retrieval.batch import search_batch
from indexer.retrieval.searcher import open_index

DEFAULT_METRICS = "ndcg@10,map,recall@100,mrr@10"


def _metrics_option(ctx, param, value: str) -> list[str]:
    try:
        return parse_metrics(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None


@click.command(name="eval", short_help="Score the ranking against relevance judgments (nDCG, MAP, recall).")
@index_argument
@click.option(
    "--queries",
    "queries_file",
    required=True,
    type=EXISTING_FILE,
    help="Queries: TSV (id<TAB>text) or JSONL.",
)
@click.option(
    "--qrels",
    "qrels_file",
    required=True,
    type=EXISTING_FILE,
    help="TREC relevance judgments: qid 0 doc relevance.",
)
@click.option(
    "--metrics",
    default=DEFAULT_METRICS,
    show_default=True,
    callback=_metrics_option,
    help="Comma-separated: ndcg@k, ndcg, map, map@k, recall@k, p@k, mrr@k, mrr.",
)
@click.option("--per-query", is_flag=True, help="Also show every query's scores.")
@click.option("-k", "--depth", type=click.IntRange(min=1), default=1000, show_default=True, help="Hits per query.")
@bm25_options
@click.option("--syntax", is_flag=True, help="Parse queries with the query language [default: plain words].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("-p", "--processes", type=click.IntRange(min=1), default=1, show_default=True, help="Search workers.")
def eval_command(index, queries_file, qrels_file, metrics, per_query, depth, k1, b, syntax, as_json, processes):
    """Run every query on INDEX and score the ranking against relevance judgments.

    Example: indexer eval cranfield.idx --queries queries.tsv --qrels qrels.txt --metrics ndcg@10,map
    """
    with reported_errors(), stopped_by_signals():
        queries = read_queries(queries_file)
        qrels = read_qrels(qrels_file)
        with open_index(index) as reader:
            judged_queries, judged_docs = judgment_coverage(queries, qrels, reader.doc_names())
            if not judged_queries:
                click.echo(f"Warning: no query id in {queries_file} has judgments in {qrels_file}", err=True)
            if not judged_docs:
                click.echo(f"Warning: no document judged in {qrels_file} is in {index}; wrong index?", err=True)
        chunks = search_batch(index, queries, processes, k1, b, ranked_ids, k=depth, syntax=syntax)
        evaluation = evaluate(dict(pair for chunk in chunks for pair in chunk), qrels, metrics)
    if as_json:
        out(json.dumps({"mean": evaluation.mean, "per_query": evaluation.per_query, "queries": evaluation.queries}))
        return
    if per_query:
        width = max(5, *map(len, evaluation.per_query))
        out("query".ljust(width) + "".join(f"  {m:>10}" for m in metrics))
        for qid, scores in evaluation.per_query.items():
            out(qid.ljust(width) + "".join(f"  {scores[m]:10.4f}" for m in metrics))
        out("mean".ljust(width) + "".join(f"  {evaluation.mean[m]:10.4f}" for m in metrics))
    else:
        width = max(map(len, metrics))
        for m in metrics:
            out(f"{m:<{width}}  {evaluation.mean[m]:.4f}")
    click.echo(f"{evaluation.queries:,} queries evaluated at depth {depth}", err=True)
