"""`indexer export`: an index's postings as CIFF (for PISA, Anserini, Terrier) or JSONL."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.cli.common import ReaderGone, StdoutFailed, index_argument, reported_errors
from indexer.cli.writing import interrupts
from indexer.export import FORMATS, export_index


@click.command(short_help="Write an index's postings as CIFF or JSONL.")
@index_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="ciff: the Common Index File Format (protobuf; no positions); jsonl: one JSON line per term.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (replaced atomically) [default: stdout].",
)
@click.option("--description", help="CIFF only: the header's description [default: version and analyzer].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
def export(index, fmt, output, description, quiet):
    """Write the postings of INDEX as CIFF (read by PISA, Anserini, Terrier) or as JSONL.

    Example: indexer export notes.idx --format ciff -o notes.ciff
    """
    if description is not None and fmt != "ciff":
        raise click.UsageError("--description is for --format ciff only")
    if output is None and fmt == "ciff" and stdout_is_terminal():
        raise click.ClickException("refusing to write binary CIFF to a terminal; give -o FILE or redirect stdout")
    started = time.perf_counter()
    with reported_errors(), _progress(enabled=not quiet and sys.stderr.isatty()) as on_progress:
        if output is None:
            stdout = _Stdout()
            stats = export_index(index, stdout, fmt, description, on_progress)
            stdout.flush()
        else:
            with interrupts(output):
                stats = export_index(index, output, fmt, description, on_progress)
    if not quiet:
        where = output if output is not None else "stdout"
        click.echo(
            f"Exported {stats.terms:,} terms, {stats.documents:,} documents and {stats.postings:,} postings "
            f"as {fmt.upper()} to {where} ({stats.bytes / 1e6:,.1f} MB) in {time.perf_counter() - started:.2f} s",
            err=True,
        )


def stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


class _Stdout:
    """Standard output as a binary stream; a closed or full stdout is one clear error."""

    def _stream(self):
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise StdoutFailed(None)
        return sys.stdout.buffer

    def write(self, data) -> int:
        try:
            return self._stream().write(data)
        except BrokenPipeError:
            raise ReaderGone() from None
        except OSError as err:
            raise StdoutFailed(err) from None

    def flush(self) -> None:
        try:
            self._stream().flush()
        except BrokenPipeError:
            raise ReaderGone() from None
        except OSError as err:
            raise StdoutFailed(err) from None


@contextmanager
def _progress(enabled: bool):
    """A bar of terms written, on stderr, fed by the export's on_progress(done, total)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc="Export", unit=" terms", unit_scale=True, file=sys.stderr, leave=False) as bar:

        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield on_progress
