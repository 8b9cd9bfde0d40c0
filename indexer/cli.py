"""The command-line interface: parse options, make one library call, render the result.

Results go to stdout (plain or one JSON document); progress, warnings and errors go to stderr.
Exit codes: 0 success (a search with no hits included), 1 a failed operation, 2 a usage error or a
malformed query.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from indexer import __version__
from indexer.analysis import MAX_TERM_CHARS_DEFAULT, AnalyzerConfig, check_stemmer, resolve_stopwords
from indexer.build import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY, BuildOptions, build_index, is_kept
from indexer.corpus import FORMATS, ID_FIELDS, TEXT_FIELDS, ReadOptions, parse_size
from indexer.errors import IndexerError, QueryError
from indexer.evaluate import (
    escape_trec_id,
    judgment_coverage,
    parse_metrics,
    read_qrels,
    read_queries,
    write_trec_run,
)
from indexer.executors import DaskExecutor
from indexer.format import SECTION_NAMES
from indexer.scoring import DEFAULT_B, DEFAULT_K1
from indexer.search import Searcher, evaluate_index, open_index
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
    except BrokenPipeError:
        raise  # the reader went away (`| head`): Click exits quietly
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise click.ClickException(f"{where}{err.strerror or err}") from None


class _StdoutFailed(click.ClickException):
    """Results could not be written to standard output (closed, or on a full disk)."""

    def __init__(self, err: OSError | None, after: str = ""):
        self.error = err
        why = "it is closed" if err is None else (err.strerror or str(err))
        super().__init__(f"cannot write to standard output ({why}){after}")


def out(text: str = "", nl: bool = True) -> None:
    """Print results on stdout; a closed or full stdout is one clear error, not a traceback.
    A reader that went away (`| head`) stays quiet, as Click makes it."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise _StdoutFailed(None)
    try:
        click.echo(text, nl=nl)
    except BrokenPipeError:
        raise
    except OSError as err:
        raise _StdoutFailed(err) from None


def _flush_stdout(after: str = "") -> None:
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        raise _StdoutFailed(err, after) from None


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


class Bm25Param(click.ParamType):
    """A finite float in [low, high]: NaN and infinity are refused, not silently accepted."""

    name = "float"

    def __init__(self, low: float, high: float = math.inf):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            where = f"from {self.low:g} to {self.high:g}" if math.isfinite(self.high) else f"{self.low:g} or more"
            self.fail(f"{value!r} is not a finite number {where}", param, ctx)
        return number


def _stem_option(ctx, param, value: str) -> str:
    try:
        check_stemmer(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None
    return value


def _encoding_option(ctx, param, value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter(
            f"unknown encoding {value!r}; give a codec name such as utf-8, latin-1 or cp1252"
        ) from None
    return value


def _stopwords_option(ctx, param, value: str) -> tuple[str, ...]:
    try:
        return resolve_stopwords(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None


# shared by the commands that read an index
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
index_argument = click.argument("index", type=EXISTING_FILE)


def bm25_options(command):
    """--k1 and --b, for the commands that rank."""
    command = click.option(
        "--b", "b", type=Bm25Param(0, 1), default=DEFAULT_B, show_default=True, help="BM25 length normalization."
    )(command)
    return click.option(
        "--k1",
        type=Bm25Param(0),
        default=DEFAULT_K1,
        show_default=True,
        help="BM25 term-frequency saturation.",
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indexer")
def cli() -> None:
    """Build an inverted index of a folder of text in parallel, and search it."""


# ---------------------------------------------------------------------------------------------
# build


@cli.command(short_help="Index folders or files (text, JSONL, TREC, .gz) into one file.")
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Index file to write [default: <corpus name>.idx]."
)
@click.option("-p", "--processes", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
@click.option("--sequential", is_flag=True, help="Run everything in this process (same as -p 1).")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the tasks on a Dask cluster: tcp://host:8786, or local:N for N local workers (needs indexer[dask]).",
)
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
@click.option(
    "--stem", default="english", show_default=True, callback=_stem_option, help="Stemmer: none or a Snowball language."
)
@click.option(
    "--stopwords",
    default="none",
    show_default=True,
    callback=_stopwords_option,
    help="none, english, or a file of words.",
)
@click.option(
    "--max-term-length",
    type=click.IntRange(min=1),
    default=MAX_TERM_CHARS_DEFAULT,
    show_default=True,
    help="Words longer than this many characters are not indexed.",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format. auto: .jsonl/.ndjson/.json are JSONL, .trec/.sgml and files starting with <DOC> "
    "are TREC, the rest text; .gz is decompressed in every format.",
)
@click.option(
    "--id-field",
    "id_fields",
    multiple=True,
    metavar="NAME",
    help=f"JSONL field holding the document id; repeatable, first present wins [default: {', '.join(ID_FIELDS)}].",
)
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    metavar="NAME",
    help=f"JSONL field to index; repeatable, joined in order [default: {', '.join(TEXT_FIELDS)}].",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    callback=_encoding_option,
    help="Encoding of the input; bytes that do not decode are replaced and counted.",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Index only files whose path (relative to CORPUS) or name matches; repeatable. * also matches /.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files and folders whose relative path or name matches; repeatable.",
)
@click.option("--strict", is_flag=True, help="Fail (exit 1, no index written) on any skipped or repaired input.")
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
    scheduler,
    chunk_size,
    memory,
    tmp_dir,
    stem,
    stopwords,
    max_term_length,
    input_format,
    id_fields,
    text_fields,
    encoding,
    include,
    exclude,
    strict,
    positions,
    as_json,
    quiet,
    progress,
):
    """Index the documents under CORPUS (folders or files: text, JSONL, TREC, .gz) into one index file.

    Example: indexer build notes/ -o notes.idx -p 4
    """
    if sequential and processes not in (None, 1):
        raise click.UsageError("--sequential and -p N > 1 contradict each other; give one of them")
    if scheduler and (sequential or processes):
        raise click.UsageError("--scheduler runs on the cluster's workers; leave out -p and --sequential")
    if output is None:
        output = Path(_default_index_name(corpus[0]))
    if scheduler:  # workers on other machines resolve relative paths against their own folder
        corpus, output = tuple(p.absolute() for p in corpus), output.absolute()
        tmp_dir = tmp_dir and tmp_dir.absolute()
    with reported_errors(), _dask_executor(scheduler) as executor:
        options = BuildOptions(
            processes=1 if sequential else processes,
            chunk_size=chunk_size,
            memory=memory,
            positions=positions,
            analyzer=AnalyzerConfig(stem=stem, stopwords=stopwords, max_term_chars=max_term_length),
            read=ReadOptions(
                format=input_format,
                id_fields=id_fields or ID_FIELDS,
                text_fields=text_fields or TEXT_FIELDS,
                encoding=encoding,
                include=include,
                exclude=exclude,
                strict=strict,
            ),
            tmp_dir=tmp_dir,
        )
        show_bar = progress if progress is not None else sys.stderr.isatty()
        with _progress_bar(enabled=show_bar and not quiet and not as_json) as on_progress, interrupts(output):
            stats = build_index(list(corpus), output, options, on_progress=on_progress, executor=executor)
    for path in stats.leftovers_removed:
        click.echo(f"Removed {path}: left by an interrupted build", err=True)
    for kept in (False, True):
        reasons = {r: n for r, n in stats.skipped_by_reason.items() if is_kept(r) == kept}
        if reasons:
            details = ", ".join(f"{n} {r} (first: {stats.skipped_examples[r][0]})" for r, n in reasons.items())
            what = "indexed with repairs" if kept else "skipped"
            click.echo(f"Warning: {sum(reasons.values())} {what}: {details}", err=True)
    if as_json:
        written = f"; the index was written to {stats.index}"
        try:
            out(json.dumps(stats.to_dict()))
        except _StdoutFailed as err:
            raise _StdoutFailed(err.error, written) from None
        _flush_stdout(written)
    elif not quiet:
        mb = stats.bytes_read / 1e6
        click.echo(
            f"Indexed {stats.documents:,} document{'s' if stats.documents != 1 else ''}: "
            f"{stats.terms:,} terms, {stats.postings:,} postings, "
            f"{stats.tokens:,} tokens, {mb:,.1f} MB in {stats.seconds:.2f} s ({mb / stats.seconds:,.1f} MB/s) "
            f"with {stats.processes} process{'es' if stats.processes > 1 else ''} -> {stats.index}",
            err=True,
        )


class _Interrupted(click.ClickException):
    """A build stopped by a signal: one line, exit status 128 + the signal's number."""

    def __init__(self, signum: int, output: Path):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received; {output} was left as it was and temporary files were removed")
        self.exit_code = 128 + signum

    def show(self, file=None) -> None:
        click.echo(f"Aborted: {self.message}", err=True)


class _Signal(BaseException):
    """Raised in the main thread by a signal handler, like KeyboardInterrupt, so cleanups run."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `timeout` and `kill`, a closed terminal


@contextmanager
def interrupts(output: Path):
    """Make Ctrl-C, SIGTERM and SIGHUP stop the block like an exception (its cleanups run), then
    exit with 128 + the signal's number. A second signal during the cleanup is ignored, so the
    cleanup finishes."""

    def stop(signum, frame):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise _Signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    except _Signal as caught:
        raise _Interrupted(caught.signum, output) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _dask_executor(address: str | None):
    """A DaskExecutor for --scheduler ADDRESS, closed on the way out; None without the option."""
    if address is None:
        yield None
        return
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
            unit = {
                "invert": dict(unit="B", unit_scale=True, unit_divisor=1000),
                "merge": dict(unit=" ranges"),
                "combine": dict(unit=" groups"),
            }[p.stage]
            bars[p.stage] = tqdm(
                total=p.total, desc=p.stage.capitalize().ljust(6), file=sys.stderr, leave=False, **unit
            )
        bar = bars[p.stage]
        if p.done < bar.n or p.total != bar.total:  # the stage started again (another combining level)
            bar.reset(total=p.total)
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


@cli.command(short_help="Rank documents for a query or a batch of queries (BM25, boolean, phrases).")
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
                _render_results([("1", result)], as_json, run_name, batch=False)
                if not as_json:
                    click.echo(f"{len(result.hits)} of {result.total_hits:,} matching documents", err=True)
                return
            started = time.perf_counter()
            results = searcher.search_many(queries, k, snippets, syntax=syntax, strict=strict)
            _render_results(results, as_json, run_name, batch=True)
            seconds = time.perf_counter() - started
    _flush_stdout()
    if not as_json:
        rate = len(queries) / max(seconds, 1e-9)
        click.echo(f"Searched {len(queries):,} queries in {seconds:.3f} s ({rate:,.1f} queries/s)", err=True)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_line(text: str) -> str:
    """`text` safe for one line of output: control characters (a newline in a file name) as
    backslash escapes, \\n, \\t, \\r or \\xNN; everything else as it is."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(m[0], f"\\x{ord(m[0]):02x}"), text)


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


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _render_results(results, as_json: bool, run_name: str | None, batch: bool) -> None:
    """Print (query id, SearchResult) pairs as they come: TREC lines, plain text, or one JSON
    document. Notes (a query searched as plain words, no searchable words) go to stderr."""
    missing: list[str] = []
    documents = []
    color = _stdout_is_terminal()
    for qid, result in results:
        for note in result.notes:
            click.echo(f"Warning: {f'query {qid}: ' if batch else ''}{note}", err=True)
        missing += [h.snippet.missing_source for h in result.hits if h.snippet and h.snippet.missing_source]
        if run_name is not None:
            lines = io.StringIO()
            write_trec_run(lines, qid, [(escape_trec_id(h.doc), h.score) for h in result.hits], run_name)
            out(lines.getvalue(), nl=False)
        elif as_json:
            documents.append({"id": qid, **result.to_dict()} if batch else result.to_dict())
        else:
            if batch:
                out(f"query {escape_line(qid)}: {escape_line(result.query)}")
            for hit in result.hits:
                out(f"{hit.rank:>3}  {hit.score:8.4f}  {escape_line(hit.doc)}")
                if hit.snippet is not None:
                    text = "".join(
                        (click.style(part, bold=True, fg="yellow") if color else f"**{part}**") if marked else part
                        for part, marked in hit.snippet.parts
                    )
                    out(f"     {text}")
    if as_json:
        out(json.dumps({"queries": documents} if batch else documents[0]))
    if missing:
        click.echo(
            f"Warning: no snippet for {len(missing)} hit{'s' if len(missing) > 1 else ''}: source files moved or "
            f"changed since the build (first: {missing[0]}); rebuild the index with 'indexer build'",
            err=True,
        )


# ---------------------------------------------------------------------------------------------
# eval

DEFAULT_METRICS = "ndcg@10,map,recall@100,mrr@10"


def _metrics_option(ctx, param, value: str) -> list[str]:
    try:
        return parse_metrics(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None


@cli.command(name="eval", short_help="Score the ranking against relevance judgments (nDCG, MAP, recall).")
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
def eval_command(index, queries_file, qrels_file, metrics, per_query, depth, k1, b, syntax, as_json):
    """Run every query on INDEX and score the ranking against relevance judgments.

    Example: indexer eval cranfield.idx --queries queries.tsv --qrels qrels.txt --metrics ndcg@10,map
    """
    with reported_errors():
        queries = read_queries(queries_file)
        qrels = read_qrels(qrels_file)
        with open_index(index) as reader:
            judged_queries, judged_docs = judgment_coverage(queries, qrels, reader.doc_names())
            if not judged_queries:
                click.echo(f"Warning: no query id in {queries_file} has judgments in {qrels_file}", err=True)
            if not judged_docs:
                click.echo(f"Warning: no document judged in {qrels_file} is in {index}; wrong index?", err=True)
            evaluation = evaluate_index(reader, queries, qrels, metrics, depth=depth, k1=k1, b=b, syntax=syntax)
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


# ---------------------------------------------------------------------------------------------
# postings, stats, verify


@cli.command(short_help="Show the posting list of one term.")
@index_argument
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
        out(json.dumps({"term": terms[0], "df": len(rows), "postings": rows}))
        return
    for row in rows:
        out("\t".join([escape_line(row["doc"]), str(row["tf"]), " ".join(map(str, row.get("positions", [])))]).rstrip())
    click.echo(f"term {terms[0]!r}: df {len(rows):,}", err=True)


@cli.command(short_help="Show what an index holds: counts, sizes, analyzer settings.")
@index_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(index, as_json):
    """Show what INDEX holds: documents, terms, sizes, analyzer settings.

    Example: indexer stats notes.idx --json
    """
    with reported_errors():
        info = index_stats(index)
    if as_json:
        out(json.dumps(info))
        return
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        out(f"{key.replace('_', ' '):<{width}}  {value}")


@cli.command(short_help="Check every section checksum of an index.")
@index_argument
def verify(index):
    """Check every section checksum of INDEX; exit 1 naming the damaged sections.

    Example: indexer verify notes.idx
    """
    with reported_errors(), open_index(index) as reader:
        damaged = reader.verify()
        sections = len(reader.sections)
    if damaged:
        raise click.ClickException(f"{index}: damaged sections: {', '.join(damaged)}; rebuild it with 'indexer build'")
    out(f"{index}: OK ({sections} sections: {', '.join(SECTION_NAMES.values())})")


@cli.command(short_help="Compare build speed, memory and size across process counts.")
@click.argument("corpus", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-p", "--processes", "counts", default="1,2", show_default=True, help="Process counts to compare, e.g. 1,2,4,8."
)
@click.option("--chunk-size", type=SIZE, default=DEFAULT_CHUNK_SIZE, help="Bytes of input per task.  [default: 4MB]")
@click.option("--memory", type=SIZE, default=DEFAULT_MEMORY, help="Memory budget of each build.  [default: 1GB]")
@click.option("--positions/--no-positions", default=True, show_default=True, help="Store token positions.")
@click.option("--tmp-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the trial indexes go.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench(corpus, counts, chunk_size, memory, positions, tmp_dir, as_json):
    """Build CORPUS with each process count and compare speed, memory and index size.

    Example: indexer bench bench/data/synthetic-200MB -p 1,2,4
    """
    from indexer.bench import run_bench

    try:
        process_counts = [int(c) for c in counts.split(",")]
        if not process_counts or min(process_counts) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{counts!r} is not a list of process counts like 1,2,4", param_hint="-p") from None
    options = BuildOptions(chunk_size=chunk_size, memory=memory, positions=positions)
    with reported_errors():
        report = run_bench(list(corpus), process_counts, options, tmp_dir)
    if as_json:
        out(json.dumps(report.to_dict()))
        return
    mb = report.bytes_read / 1e6
    out(
        f"corpus {report.corpus}: {report.documents:,} documents, {mb:,.1f} MB, {report.tokens:,} tokens, "
        f"{report.postings:,} postings"
    )
    out(f"re.findall(r'\\w+', text.lower()) alone: {report.findall_mb_per_s:.1f} MB/s")
    out(f"open the index + a two-term query: {report.open_and_query_ms:.1f} ms")
    out("processes  seconds    MB/s  speedup  vs findall  serial share  peak RSS MB  bytes/posting  bytes/token")
    for row in report.rows:
        if row.processes != row.requested:
            click.echo(f"(-p {row.requested} used {row.processes}: the corpus has only that many chunks)", err=True)
        rss = f"{row.peak_rss_bytes / 1e6:11,.0f}" if row.peak_rss_bytes is not None else "          -"
        out(
            f"{row.processes:>9}  {row.seconds:7.2f}  {row.mb_per_s:6.1f}  {row.speedup:7.2f}  "
            f"{row.mb_per_s / report.findall_mb_per_s:10.2f}  {row.serial_share:12.1%}  {rss}  "
            f"{row.bytes_per_posting:13.2f}  {row.bytes_per_token:11.2f}"
        )


# ---------------------------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the CLI; an unexpected error is one line (traceback with INDEXER_DEBUG=1).
    Output still buffered at the end is flushed here, so that a full or closed stdout is reported
    as one line and exit 1, rather than by the interpreter on its way out."""
    try:
        cli.main(prog_name="indexer")
        code = 0
    except SystemExit as done:
        code = done.code
    except Exception as err:  # a bug: keep the one-line contract, but say how to see more
        if os.environ.get("INDEXER_DEBUG"):
            raise
        click.echo(
            f"Error: internal error: {type(err).__name__}: {err} (set INDEXER_DEBUG=1 for a traceback)", err=True
        )
        code = 1
    try:
        _flush_stdout()
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except _StdoutFailed as err:
        err.show()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush
        code = code or err.exit_code
    sys.exit(code)
