"""`indexer bench`: build a corpus with several process counts and compare speed, memory and size."""

from __future__ import annotations

import json
from pathlib import Path

import click

from indexer.cli.common import SIZE, out, reported_errors
from indexer.indexing.pipeline import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY, BuildOptions


@click.command(short_help="Compare build speed, memory and size across process counts.")
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
    from indexer.indexing.allocator import tune_allocator

    try:
        process_counts = [int(c) for c in counts.split(",")]
        if not process_counts or min(process_counts) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{counts!r} is not a list of process counts like 1,2,4", param_hint="-p") from None
    options = BuildOptions(chunk_size=chunk_size, memory=memory, positions=positions)
    tune_allocator()  # as `indexer build` does, so that the figures are those of a build
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
