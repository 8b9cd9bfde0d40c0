"""`indexer update`, `add`, `delete` and `optimize`: change an index without rebuilding it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from indexer.cli.common import SIZE, index_argument, reported_errors
from indexer.cli.writing import interrupts, print_summary_json, progress_bar, report_cleanup_and_skips
from indexer.indexing.allocator import tune_allocator
from indexer.indexing.pipeline import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY
from indexer.indexing.update import (
    UpdateOptions,
    UpdateStats,
    delete_documents,
    optimize_index,
    update_index,
)


def _work_options(command):
    for decorator in reversed(
        [
            click.option(
                "-p", "--processes", type=click.IntRange(min=1), help="Worker processes [default: one per CPU]."
            ),
            click.option(
                "--chunk-size", type=SIZE, default=DEFAULT_CHUNK_SIZE, help="Bytes of input per task.  [default: 4MB]"
            ),
            click.option(
                "--memory", type=SIZE, default=DEFAULT_MEMORY, help="Memory budget, e.g. 1GB.  [default: 1GB]"
            ),
            click.option(
                "--tmp-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Folder for temporary files [default: beside the index].",
            ),
            click.option("--no-merge", is_flag=True, help="Leave the segments as they are (no merge policy)."),
        ]
    ):
        command = decorator(command)
    return command


def _quiet_options(command):
    command = click.option(
        "--progress/--no-progress", default=None, help="Force the progress bar on or off [default: on a terminal]."
    )(command)
    command = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")(command)
    return click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")(
        command
    )


def _options(processes, chunk_size, memory, tmp_dir, no_merge) -> UpdateOptions:
    return UpdateOptions(processes=processes, chunk_size=chunk_size, memory=memory, tmp_dir=tmp_dir, merge=not no_merge)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _report(stats: UpdateStats, as_json: bool, quiet: bool, what: str = "update") -> None:
    report_cleanup_and_skips(stats.leftovers_removed, stats.skipped_by_reason, stats.skipped_examples)
    if as_json:
        print_summary_json(stats.to_dict(), stats.index)
        return
    if quiet:
        return
    now = f"{_plural(stats.documents, 'document')} in {_plural(stats.segments, 'segment')} [{stats.seconds:.2f} s]"
    merged = ""
    if stats.merged_segments == 1:
        merged = "; a segment rewritten without its deleted documents"
    elif stats.merged_segments:
        merged = f"; {stats.merged_segments} segments merged"
    if what == "delete" and not stats.documents_deleted:
        return  # the error naming the ids not found says it all
    if what == "delete":
        line = f"Deleted {_plural(stats.documents_deleted, 'document')} from {stats.index}{merged}; {now}"
    elif what == "optimize":
        line = f"Optimized {stats.index}{merged or '; nothing to merge'}; {now}"
    elif stats.up_to_date:
        line = f"{stats.index} is up to date ({_plural(stats.unchanged, 'file')} unchanged) [{stats.seconds:.2f} s]"
    else:
        files = ", ".join(
            f"{n:,} {label}"
            for n, label in ((stats.added, "added"), (stats.changed, "changed"), (stats.removed, "removed"))
        )
        files += f", {stats.unchanged:,} unchanged"
        line = (
            f"Updated {stats.index}: files {files}; {_plural(stats.documents_added, 'document')} indexed, "
            f"{stats.documents_deleted:,} deleted{merged}; {now}"
        )
    click.echo(line, err=True)


def _run(index: Path, work, as_json: bool, quiet: bool, progress) -> UpdateStats:
    show = (progress if progress is not None else sys.stderr.isatty()) and not quiet and not as_json
    tune_allocator()  # as `indexer build` does: this process may invert and merge too
    with reported_errors(), progress_bar(enabled=show) as on_progress, interrupts(index):
        return work(on_progress)


@click.command(short_help="Bring an index up to date with its corpus: index what is new or changed.")
@index_argument
@_work_options
@_quiet_options
def update(index, processes, chunk_size, memory, tmp_dir, no_merge, as_json, quiet, progress):
    """Re-scan the corpus INDEX was built from, index new and changed files, delete removed ones.

    The corpus paths and read options are those the index records; unchanged files (same size
    and mtime) cost nothing. Scores afterwards equal those of a fresh build.

    Example: indexer update notes.idx
    """
    options = _options(processes, chunk_size, memory, tmp_dir, no_merge)
    stats = _run(
        index, lambda on_progress: update_index(index, options, on_progress=on_progress), as_json, quiet, progress
    )
    _report(stats, as_json, quiet)


@click.command(short_help="Index the files under paths into an index (new or changed ones).")
@index_argument
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_work_options
@_quiet_options
def add(index, paths, processes, chunk_size, memory, tmp_dir, no_merge, as_json, quiet, progress):
    """Index the new and changed files under PATHS into INDEX, and forget those under PATHS that are gone.

    A path outside the corpus INDEX records is added to it, so that `indexer update` follows it too.

    Example: indexer add notes.idx notes/2026/
    """
    options = _options(processes, chunk_size, memory, tmp_dir, no_merge)
    work = lambda on_progress: update_index(index, options, list(paths), on_progress)
    stats = _run(index, work, as_json, quiet, progress)
    _report(stats, as_json, quiet)


@click.command(short_help="Delete documents from an index by id.")
@index_argument
@click.option("--id", "ids", multiple=True, required=True, metavar="ID", help="A document id to delete; repeatable.")
@click.option("--no-merge", is_flag=True, help="Leave the segments as they are (no merge policy).")
@_quiet_options
def delete(index, ids, no_merge, as_json, quiet, progress):
    """Delete the documents with these ids from INDEX; exit 1 naming the ids it did not find.

    Example: indexer delete notes.idx --id drafts/old.txt --id drafts/older.txt
    """
    work = lambda on_progress: delete_documents(index, list(ids), UpdateOptions(merge=not no_merge))
    stats = _run(index, work, as_json, quiet, progress)
    _report(stats, as_json, quiet, "delete")
    if stats.not_found:
        missing = ", ".join(repr(i) for i in stats.not_found)
        raise click.ClickException(f"{index}: no live document has the id {missing}")


@click.command(short_help="Merge an index's segments, dropping deleted documents.")
@index_argument
@click.option(
    "--max-segments", type=click.IntRange(min=1), default=1, show_default=True, help="Segments to keep at most."
)
@click.option(
    "--tmp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for temporary files [default: beside the index].",
)
@_quiet_options
def optimize(index, max_segments, tmp_dir, as_json, quiet, progress):
    """Merge the segments of INDEX into at most --max-segments, without their deleted documents.

    Example: indexer optimize notes.idx --max-segments 1
    """
    work = lambda on_progress: optimize_index(index, max_segments, UpdateOptions(tmp_dir=tmp_dir))
    stats = _run(index, work, as_json, quiet, progress)
    _report(stats, as_json, quiet, "optimize")
