"""`indexer build`: options -> BuildOptions -> build_index, with a progress bar and signal handling."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.cli.common import reported_errors
from indexer.cli.options import (
    analyzer_from,
    analyzer_options,
    output_options,
    read_options,
    read_options_from,
    run_from,
    run_options,
)
from indexer.cli.writing import interrupts, print_summary_json, progress_bar, report_cleanup_and_skips
from indexer.corpus.readers import STDIN
from indexer.indexing.allocator import tune_allocator
from indexer.indexing.pipeline import BuildOptions, build_index


@click.command(short_help="Index folders or files (text, JSONL, TREC, .gz) into one file.")
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Index file to write [default: <corpus name>.idx]."
)
@run_options
@analyzer_options
@read_options
@click.option(
    "--positions/--no-positions",
    default=True,
    show_default=True,
    help="Store token positions (phrase queries need them).",
)
@output_options
def build(corpus, output, positions, as_json, quiet, progress, **params):
    """Index the documents under CORPUS (folders or files: text, JSONL, TREC, .gz) into one index file.

    CORPUS "-" reads standard input: JSONL, TREC, or (--format text or lines) one document per
    line, named stdin:<line>; gzip data is decompressed.

    Example: indexer build notes/ -o notes.idx -p 4

    From a pipe: zcat dump.jsonl.gz | indexer build - -o dump.idx
    """
    run = run_from(params)
    scheduler = run.pop("scheduler")
    from_stdin = STDIN in map(str, corpus)
    if from_stdin and output is None:
        raise click.UsageError("give -o/--output: an index of standard input has no name to take")
    if from_stdin and sys.stdin.isatty() and not quiet:
        click.echo("Reading documents from standard input (end with Ctrl-D)...", err=True)
    if output is None:
        output = Path(_default_index_name(corpus[0]))
    if scheduler:  # workers on other machines resolve relative paths against their own folder
        corpus, output = tuple(p.absolute() for p in corpus), output.absolute()
    options = BuildOptions(**run, positions=positions, analyzer=analyzer_from(params), read=read_options_from(params))
    tune_allocator()  # this process builds (sequentially, or the parent's part of a parallel build)
    with reported_errors(), _dask_executor(scheduler) as executor:
        show_bar = progress if progress is not None else sys.stderr.isatty()
        with progress_bar(enabled=show_bar and not quiet and not as_json) as on_progress, interrupts(output):
            stats = build_index(list(corpus), output, options, on_progress=on_progress, executor=executor)
    report_cleanup_and_skips(stats.leftovers_removed, stats.skipped_by_reason, stats.skipped_examples)
    if as_json:
        print_summary_json(stats.to_dict(), stats.index)
    elif not quiet:
        mb = stats.bytes_read / 1e6
        click.echo(
            f"Indexed {stats.documents:,} document{'s' if stats.documents != 1 else ''}: "
            f"{stats.terms:,} terms, {stats.postings:,} postings, "
            f"{stats.tokens:,} tokens, {mb:,.1f} MB in {stats.seconds:.2f} s ({mb / stats.seconds:,.1f} MB/s) "
            f"with {stats.processes} process{'es' if stats.processes > 1 else ''} -> {stats.index}",
            err=True,
        )


@contextmanager
def _dask_executor(address: str | None):
    """A DaskExecutor for --scheduler ADDRESS, closed on the way out; None without the option."""
    if address is None:
        yield None
        return
    from indexer.indexing.executors import DaskExecutor  # the dask extra is imported only when asked for

    executor = DaskExecutor(address)
    try:
        yield executor
    finally:
        executor.close()


def _default_index_name(corpus: Path) -> str:
    name = corpus.resolve().name or "index"
    for suffix in (".gz", ".jsonl", ".ndjson", ".trec", ".txt"):
        name = name.removesuffix(suffix)
    return f"{name}.idx"
