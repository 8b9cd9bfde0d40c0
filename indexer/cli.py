"""The command-line interface: parse options, make one library call, render the result.

Results go to stdout (plain or one JSON document); progress, warnings and errors go to stderr.
Exit codes: 0 success (a search with no hits included), 1 a failed operation, 2 a usage error or a
malformed query.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from indexer import __version__
from indexer.analysis import AnalyzerConfig, resolve_stopwords
from indexer.build import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY, BuildOptions, build_index
from indexer.corpus import parse_size
from indexer.errors import IndexerError, QueryError
from indexer.format import SECTION_NAMES
from indexer.scoring import DEFAULT_B, DEFAULT_K1
from indexer.search import Searcher, open_index
from indexer.stats import index_stats

EXIT_USAGE = 2


@contextmanager
def reported_errors():
    """Turn the library's errors into one-line messages with the documented exit codes."""
    try:
        yield
    except QueryError as err:
        raise _QueryFailed(str(err)) from None
    except IndexerError as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise click.ClickException(f"{where}{err.strerror or err}") from None


class _QueryFailed(click.ClickException):
    """A malformed query: one line, exit 2 like other usage errors."""

    exit_code = EXIT_USAGE

    def format_message(self) -> str:
        return f"bad query: {self.message}"


class SizeType(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a size like 4MB, 512KB or 1GB", param, ctx)


SIZE = SizeType()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indexer")
def cli() -> None:
    """Build an inverted index of a folder of text in parallel, and search it."""


# ---------------------------------------------------------------------------------------------
# build


@cli.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Index file to write [default: <corpus name>.idx]."
)
@click.option("-p", "--processes", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
@click.option("--sequential", is_flag=True, help="Run everything in this process (same as -p 1).")
@click.option(
    "--chunk-size", type=SIZE, default=DEFAULT_CHUNK_SIZE, help="Bytes of input per task, e.g. 4MB.  [default: 4MB]"
)
@click.option(
    "--memory", type=SIZE, default=DEFAULT_MEMORY, help="Memory budget of the whole build, e.g. 1GB.  [default: 1GB]"
)
@click.option(
    "--tmp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for temporary runs [default: beside the output].",
)
@click.option("--stem", default="english", show_default=True, help="Stemmer: none or a Snowball language.")
@click.option("--stopwords", default="none", show_default=True, help="none, english, or a file of words.")
@click.option(
    "--positions/--no-positions",
    default=True,
    show_default=True,
    help="Store token positions (phrase queries need them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Force the progress bar on or off [default: on when stderr is a terminal].",
)
def build(
    corpus,
    output,
    processes,
    sequential,
    chunk_size,
    memory,
    tmp_dir,
    stem,
    stopwords,
    positions,
    as_json,
    quiet,
    progress,
):
    """Index the text files under CORPUS (folders or files) into one index file.

    Example: indexer build notes/ -o notes.idx -p 4
    """
    if sequential and processes not in (None, 1):
        raise click.UsageError("--sequential and -p N > 1 contradict each other; give one of them")
    if output is None:
        output = Path(_default_index_name(corpus[0]))
    with reported_errors():
        options = BuildOptions(
            processes=1 if sequential else processes,
            chunk_size=chunk_size,
            memory=memory,
            positions=positions,
            analyzer=AnalyzerConfig(stem=stem, stopwords=resolve_stopwords(stopwords)),
            tmp_dir=tmp_dir,
        )
        show_bar = progress if progress is not None else sys.stderr.isatty()
        with _progress_bar(enabled=show_bar and not quiet and not as_json) as on_progress:
            stats = build_index(list(corpus), output, options, on_progress=on_progress)
    if stats.skipped and not as_json:
        details = ", ".join(
            f"{n} {reason} (first: {stats.skipped_examples[reason][0]})"
            for reason, n in stats.skipped_by_reason.items()
        )
        click.echo(f"Warning: {stats.skipped} skipped: {details}", err=True)
    if as_json:
        click.echo(json.dumps(stats.to_dict()))
    elif not quiet:
        mb = stats.bytes_read / 1e6
        click.echo(
            f"Indexed {stats.documents:,} documents: {stats.terms:,} terms, {stats.postings:,} postings, "
            f"{stats.tokens:,} tokens, {mb:,.1f} MB in {stats.seconds:.2f} s ({mb / stats.seconds:,.1f} MB/s) "
            f"with {stats.processes} process{'es' if stats.processes > 1 else ''} -> {stats.index}",
            err=True,
        )


def _default_index_name(corpus: Path) -> str:
    name = corpus.resolve().name or "index"
    for suffix in (".gz", ".jsonl", ".ndjson", ".trec", ".txt"):
        name = name.removesuffix(suffix)
    return f"{name}.idx"


@contextmanager
def _progress_bar(enabled: bool):
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_progress(p) -> None:
        if p.stage not in bars:
            if bars:
                for bar in bars.values():
                    bar.close()
            unit = {"invert": dict(unit="B", unit_scale=True, unit_divisor=1000), "merge": dict(unit=" ranges")}[
                p.stage
            ]
            bars[p.stage] = tqdm(
                total=p.total, desc=p.stage.capitalize().ljust(6), file=sys.stderr, leave=False, **unit
            )
        bar = bars[p.stage]
        bar.update(p.done - bar.n)
        if p.documents:
            bar.set_postfix(docs=f"{p.documents:,}", refresh=False)

    try:
        yield on_progress
    finally:
        for bar in bars.values():
            bar.close()


# ---------------------------------------------------------------------------------------------
# search


@cli.command()
@click.argument("index", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("query")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Number of results.")
@click.option(
    "--k1", type=click.FloatRange(min=0), default=DEFAULT_K1, show_default=True, help="BM25 term-frequency saturation."
)
@click.option(
    "--b", "b", type=click.FloatRange(0, 1), default=DEFAULT_B, show_default=True, help="BM25 length normalization."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def search(index, query, top_k, k1, b, as_json):
    """Rank the documents in INDEX for QUERY with BM25.

    Plain words rank any document that has one of them; AND, OR, NOT, +word, -word,
    "exact phrases" and parentheses narrow the matches.

    Example: indexer search notes.idx '"merge sort" AND parallel' -k 5
    """
    with reported_errors(), open_index(index) as reader:
        result = Searcher(reader, k1, b).search(query, k=top_k)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    for hit in result.hits:
        click.echo(f"{hit.rank:>3}  {hit.score:8.4f}  {hit.doc}")
    click.echo(f"{len(result.hits)} of {result.total_hits:,} matching documents", err=True)


# ---------------------------------------------------------------------------------------------
# postings, stats, verify


@cli.command()
@click.argument("index", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("term")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def postings(index, term, as_json):
    """Show the posting list of TERM (analyzed like a query word) in INDEX.

    Example: indexer postings notes.idx running
    """
    with reported_errors(), open_index(index) as reader:
        searcher = Searcher(reader)
        terms = searcher.analyzer.terms(term)
        if len(terms) != 1:
            what = (
                "is not indexed (a stopword or too long?)" if not terms else f"analyzes to {len(terms)} terms {terms}"
            )
            raise click.UsageError(f"{term!r} {what}; give one word")
        found = reader.postings(terms[0])
        rows = []
        if found is not None:
            offsets, positions = found.positions() if reader.has_positions else (None, None)
            for i, (doc, tf) in enumerate(zip(found.docs.tolist(), found.tfs.tolist())):
                row = {"doc": reader.doc_name(doc), "tf": tf}
                if offsets is not None:
                    row["positions"] = positions[offsets[i] : offsets[i + 1]].tolist()
                rows.append(row)
    if as_json:
        click.echo(json.dumps({"term": terms[0], "df": len(rows), "postings": rows}))
        return
    for row in rows:
        click.echo("\t".join([row["doc"], str(row["tf"]), " ".join(map(str, row.get("positions", [])))]).rstrip())
    click.echo(f"term {terms[0]!r}: df {len(rows):,}", err=True)


@cli.command()
@click.argument("index", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(index, as_json):
    """Show what INDEX holds: documents, terms, sizes, analyzer settings.

    Example: indexer stats notes.idx --json
    """
    with reported_errors():
        info = index_stats(index)
    if as_json:
        click.echo(json.dumps(info))
        return
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        click.echo(f"{key.replace('_', ' '):<{width}}  {value}")


@cli.command()
@click.argument("index", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify(index):
    """Check every section checksum of INDEX; exit 1 naming the damaged sections.

    Example: indexer verify notes.idx
    """
    with reported_errors(), open_index(index) as reader:
        damaged = reader.verify()
        sections = len(reader.sections)
    if damaged:
        raise click.ClickException(f"{index}: damaged sections: {', '.join(damaged)}; rebuild it with 'indexer build'")
    click.echo(f"{index}: OK ({sections} sections: {', '.join(SECTION_NAMES.values())})")


# ---------------------------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the CLI; an unexpected error is one line (traceback with INDEXER_DEBUG=1)."""
    try:
        cli.main(prog_name="indexer")
    except SystemExit:
        raise
    except Exception as err:  # a bug: keep the one-line contract, but say how to see more
        if os.environ.get("INDEXER_DEBUG"):
            raise
        click.echo(
            f"Error: internal error: {type(err).__name__}: {err} (set INDEXER_DEBUG=1 for a traceback)", err=True
        )
        sys.exit(1)
