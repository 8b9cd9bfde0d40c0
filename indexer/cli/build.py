"""`indexer build`: options -> BuildOptions -> build_index, with a progress bar and signal handling."""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.cli.common import StdoutFailed, flush_stdout, out, reported_errors
from indexer.cli.options import (
    analyzer_from,
    analyzer_options,
    output_options,
    read_options,
    read_options_from,
    run_from,
    run_options,
)
from indexer.corpus.skips import SkipReason
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

    Example: indexer build notes/ -o notes.idx -p 4
    """
    run = run_from(params)
    scheduler = run.pop("scheduler")
    if output is None:
        output = Path(_default_index_name(corpus[0]))
    if scheduler:  # workers on other machines resolve relative paths against their own folder
        corpus, output = tuple(p.absolute() for p in corpus), output.absolute()
    options = BuildOptions(**run, positions=positions, analyzer=analyzer_from(params), read=read_options_from(params))
    tune_allocator()  # this process builds (sequentially, or the parent's part of a parallel build)
    with reported_errors(), _dask_executor(scheduler) as executor:
        show_bar = progress if progress is not None else sys.stderr.isatty()
        with _progress_bar(enabled=show_bar and not quiet and not as_json) as on_progress, interrupts(output):
            stats = build_index(list(corpus), output, options, on_progress=on_progress, executor=executor)
    for path in stats.leftovers_removed:
        click.echo(f"Removed {path}: left by an interrupted build", err=True)
    for kept in (False, True):
        reasons = {SkipReason(r): n for r, n in stats.skipped_by_reason.items() if SkipReason(r).kept == kept}
        if reasons:
            details = ", ".join(
                f"{n} {r.label} (first: {stats.skipped_examples[r.code][0]})" for r, n in reasons.items()
            )
            what = "indexed with repairs" if kept else "skipped"
            click.echo(f"Warning: {sum(reasons.values())} {what}: {details}", err=True)
    if as_json:
        written = f"; the index was written to {stats.index}"
        try:
            out(json.dumps(stats.to_dict()))
        except StdoutFailed as err:
            raise StdoutFailed(err.error, written) from None
        flush_stdout(written)
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
