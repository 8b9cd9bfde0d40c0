"""What the commands that write an index share: signals that stop them cleanly, the progress
bar, the warnings about leftovers and skipped input, and the JSON summary."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.cli.common import StdoutFailed, flush_stdout, out, stopped_by_signals
from indexer.corpus.skips import SkipReason


def report_cleanup_and_skips(leftovers: list[str], skipped: dict[str, int], examples: dict[str, list[str]]) -> None:
    """On stderr: the leftovers of killed builds that were removed, and what was skipped or repaired."""
    for path in leftovers:
        click.echo(f"Removed {path}: left by an interrupted build", err=True)
    for kept in (False, True):
        reasons = {SkipReason(r): n for r, n in skipped.items() if SkipReason(r).kept == kept}
        if reasons:
            details = ", ".join(f"{n} {r.label} (first: {examples[r.code][0]})" for r, n in reasons.items())
            what = "indexed with repairs" if kept else "skipped"
            click.echo(f"Warning: {sum(reasons.values())} {what}: {details}", err=True)


def print_summary_json(summary: dict, index: str) -> None:
    """The summary as one JSON document on stdout; if stdout fails, the error says the index was written."""
    written = f"; the index was written to {index}"
    try:
        out(json.dumps(summary))
    except StdoutFailed as err:
        raise StdoutFailed(err.error, written) from None
    flush_stdout(written)


@contextmanager
def interrupts(output: Path):
    """Ctrl-C, SIGTERM and SIGHUP stop the block like an exception (its cleanups run), then exit
    with 128 + the signal's number, saying that `output` was left as it was."""
    with stopped_by_signals(f"{output} was left as it was and temporary files were removed"):
        yield


@contextmanager
def progress_bar(enabled: bool):
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
