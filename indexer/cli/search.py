"""`indexer search`: one query or a batch, ranked; text, JSON or a TREC run on stdout."""

from __future__ import annotations

import time
from pathlib import Path

import click

from indexer.cli.common import (
    bm25_options,
    flush_stdout,
    index_argument,
    reported_errors,
    stopped_by_signals,
)
from indexer.cli.render import FORMATS, Renderer, use_color, write_rendered
from indexer.retrieval.searcher import Searcher, open_index


@click.command(short_help="Rank documents for a query or a batch of queries (BM25, boolean, phrases).")
@index_argument
@click.argument("query", nargs=-1)
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Run every query of a file instead (- reads standard input): TSV (id<TAB>text) or JSONL.",
)
@click.option(
    "-k",
    "--top-k",
    type=click.IntRange(min=0),
    help="Results per query.  [default: 10; 1000 with --trec; every match with -l]",
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many results first (paging).")
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
@click.option("--explain", is_flag=True, help="Show each hit's score as its terms' parts (tf, df, idf, length).")
@click.option("--count", is_flag=True, help="Count every match exactly (else a lower bound where pruning skips).")
@click.option(
    "-l", "--files-with-matches", "ids_only", is_flag=True, help="Print only the matching doc ids, one a line."
)
@click.option("--format", "form", type=click.Choice(FORMATS), default="text", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: one JSON document.")
@click.option("--trec", "run_name", metavar="RUN_NAME", help="Print a TREC run (--format trec) named RUN_NAME.")
@click.option(
    "--escape-ids",
    is_flag=True,
    help="With --trec: write doc ids that contain whitespace with it percent-encoded (a space as %20, % as %25).",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Highlight snippet terms: auto on a terminal unless NO_COLOR is set.",
)
@click.option(
    "-p", "--processes", type=click.IntRange(min=1), default=1, show_default=True, help="Workers for --queries."
)
def search(index, query, queries_file, top_k, offset, k1, b, **options):
    """Rank the documents in INDEX for QUERY, or for every query in --queries FILE, with BM25.

    Plain words rank any document that has one of them; AND, OR, NOT, +word, -word,
    "exact phrases", prefixes (pyth*) and parentheses narrow the matches. Queries of a --queries
    file are plain words unless --syntax is given; a malformed one is then searched as plain
    words, with a warning.

    Example: indexer search notes.idx '"merge sort" AND parallel' -k 5 --snippets
    """
    form, run_name = _output_format(options)
    query = " ".join(query) if query else None  # the words of an unquoted query, as one query
    if (query is None) == (queries_file is None):
        raise click.UsageError("give either a QUERY or --queries FILE" + (", not both" if query is not None else ""))
    if queries_file is None and (options["syntax"] or options["strict"]):
        raise click.UsageError("--syntax and --strict are for --queries batches (a QUERY is parsed unless --plain)")
    if options["plain"] and options["syntax"]:
        raise click.UsageError("--plain and --syntax contradict each other: give one")
    if options["ids_only"] and (options["snippets"] or options["explain"]):
        raise click.UsageError("-l prints doc ids only: leave out --snippets and --explain")
    if options["processes"] > 1 and queries_file is None:
        raise click.UsageError("-p is for --queries batches")
    wanted = dict(snippets=options["snippets"], count=options["count"], offset=offset, explain=options["explain"])
    with reported_errors(), stopped_by_signals():
        queries = None
        if queries_file is not None:  # a batch: only then import what batches need
            from indexer.evaluate import read_queries
            from indexer.retrieval.batch import search_batch

            queries = read_queries(queries_file)
        with open_index(index) as reader:
            if form == "trec" and not options["escape_ids"]:
                _check_trec_ids(reader, index)
            k = _depth(top_k, form, options["ids_only"], reader.doc_count)
            color = use_color(options["color"])
            if queries is None:
                result = Searcher(reader, k1, b).search(query, k=k, syntax=not options["plain"], **wanted)
                single = Renderer(form, run_name, False, color, options["ids_only"])
                write_rendered([single([("1", result)])], single)
                if form == "text" and not options["ids_only"]:
                    total = f"{'at least ' if result.total_hits_relation == 'gte' else ''}{result.total_hits:,}"
                    click.echo(f"{len(result.hits)} of {total} matching documents", err=True)
                return
        started = time.perf_counter()
        batch = dict(syntax=options["syntax"], strict=options["strict"], k=k, **wanted)
        renderer = Renderer(form, run_name, True, color, options["ids_only"])
        write_rendered(search_batch(index, queries, options["processes"], k1, b, renderer, **batch), renderer)
        seconds = time.perf_counter() - started
    flush_stdout()
    rate = len(queries) / max(seconds, 1e-9)  # on stderr, whatever the format on stdout
    click.echo(f"Searched {len(queries):,} queries in {seconds:.3f} s ({rate:,.1f} queries/s)", err=True)


def _output_format(options: dict) -> tuple[str, str | None]:
    """(format, TREC run name) from --format, --json, --trec, checking they agree."""
    form, run_name = options["form"], options["run_name"]
    if options["as_json"]:
        if form not in ("text", "json") or run_name is not None:
            raise click.UsageError("--json is --format json: give one format")
        form = "json"
    if run_name is not None:
        if form not in ("text", "trec"):
            raise click.UsageError(f"--trec cannot be combined with --format {form}")
        _check_trec_token("run name", run_name)
        form = "trec"
    if form == "trec":
        run_name = run_name or "indexer"
        if options["snippets"] or options["explain"]:
            raise click.UsageError("--trec cannot be combined with --snippets or --explain")
    if options["escape_ids"] and form != "trec":
        raise click.UsageError("--escape-ids is for --trec runs")
    if options["ids_only"] and form != "text":
        raise click.UsageError("-l prints doc ids only: leave out --format, --json and --trec")
    return form, run_name


def _depth(top_k: int | None, form: str, ids_only: bool, documents: int) -> int:
    if top_k is not None:
        return top_k
    if ids_only:
        return documents  # every match, as grep -l lists every matching file
    return TREC_DEPTH if form == "trec" else 10


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
