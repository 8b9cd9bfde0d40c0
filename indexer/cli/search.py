"""`indexer search`: one query or a batch, ranked; text, JSON or a TREC run on stdout."""

from __future__ import annotations

import time
from pathlib import Path

import click

from indexer.cli.common import EXISTING_FILE, bm25_options, flush_stdout, index_argument, reported_errors
from indexer.cli.render import render_results
from indexer.evaluate import read_queries
from indexer.retrieval.searcher import Searcher, open_index


@click.command(short_help="Rank documents for a query or a batch of queries (BM25, boolean, phrases).")
@index_argument
@click.argument("query", required=False)
@click.option(
    "--queries",
    "queries_file",
    type=EXISTING_FILE,
    help="Run every query of a file instead: TSV (id<TAB>text) or JSONL.",
)
@click.option(
    "-k",
    "--top-k",
    type=click.IntRange(min=0),
    help="Results per query.  [default: 10; 1000 with --trec]",
)
@bm25_options
@click.option("--plain", is_flag=True, help="Take QUERY as plain words: no operators, phrases or groups.")
@click.option(
    "--syntax",
    is_flag=True,
    help="Parse the queries of --queries with the query language [default: plain words, as test collections need].",
)
@click.option(
    "--strict",
    is_flag=True,
    help="With --queries --syntax: a malformed query is an error (exit 2, no output) instead of a warning.",
)
@click.option("--snippets", is_flag=True, help="Show each hit's best passage, query terms highlighted.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--trec", "run_name", metavar="RUN_NAME", help="Print a TREC run: qid Q0 doc rank score RUN_NAME.")
@click.option(
    "--escape-ids",
    is_flag=True,
    help="With --trec: write doc ids that contain whitespace with it percent-encoded (a space as %20, % as %25).",
)
def search(index, query, queries_file, top_k, k1, b, plain, syntax, strict, snippets, as_json, run_name, escape_ids):
    """Rank the documents in INDEX for QUERY, or for every query in --queries FILE, with BM25.

    Plain words rank any document that has one of them; AND, OR, NOT, +word, -word,
    "exact phrases" and parentheses narrow the matches. Queries of a --queries file are plain
    words unless --syntax is given; a malformed one is then searched as plain words, with a warning.

    Example: indexer search notes.idx '"merge sort" AND parallel' -k 5 --snippets
    """
    if (query is None) == (queries_file is None):
        raise click.UsageError("give either a QUERY or --queries FILE" + (", not both" if query is not None else ""))
    if run_name is not None and (as_json or snippets):
        raise click.UsageError(f"--trec cannot be combined with {'--json' if as_json else '--snippets'}")
    if escape_ids and run_name is None:
        raise click.UsageError("--escape-ids is for --trec runs")
    if run_name is not None:
        _check_trec_token("run name", run_name)
    k = top_k if top_k is not None else (TREC_DEPTH if run_name is not None else 10)
    with reported_errors():
        queries = read_queries(queries_file) if queries_file is not None else None
        with open_index(index) as reader:
            if run_name is not None and not escape_ids:
                _check_trec_ids(reader, index)
            searcher = Searcher(reader, k1, b)
            if queries is None:
                result = searcher.search(query, k=k, snippets=snippets, syntax=not plain)
                render_results([("1", result)], as_json, run_name, batch=False)
                if not as_json:
                    click.echo(f"{len(result.hits)} of {result.total_hits:,} matching documents", err=True)
                return
            started = time.perf_counter()
            results = searcher.search_many(queries, k, snippets, syntax=syntax, strict=strict)
            render_results(results, as_json, run_name, batch=True)
            seconds = time.perf_counter() - started
    flush_stdout()
    if not as_json:
        rate = len(queries) / max(seconds, 1e-9)
        click.echo(f"Searched {len(queries):,} queries in {seconds:.3f} s ({rate:,.1f} queries/s)", err=True)


TREC_DEPTH = 1000  # hits per query in a TREC run unless -k says otherwise, as `eval` ranks


def _check_trec_token(label: str, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise click.BadParameter(f"{label} {value!r} cannot be written to a TREC run: empty or has whitespace")


def _check_trec_ids(reader, index: Path) -> None:
    """Refuse before any output an index whose doc ids cannot be TREC run columns."""
    bad = reader.first_doc_name_with_whitespace()
    if bad is not None:
        raise click.ClickException(
            f"{index}: doc id {bad!r} has whitespace and cannot be written to a TREC run; "
            "add --escape-ids to write such ids percent-encoded"
        )
