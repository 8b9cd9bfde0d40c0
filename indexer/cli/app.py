"""The Click group of the command-line interface and the body of `indexer.cli.main`.

Each command lives in its own module, imported only when that command runs (or when --help lists
them all), so `indexer search` never loads the build machinery. The conventions every command
follows are in indexer.cli.common.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from indexer import __version__
from indexer.cli.common import StdoutFailed, flush_stdout

# command name -> (module, function)
COMMANDS = {
    "build": ("indexer.cli.build", "build"),
    "update": ("indexer.cli.update", "update"),
    "add": ("indexer.cli.update", "add"),
    "delete": ("indexer.cli.update", "delete"),
    "optimize": ("indexer.cli.update", "optimize"),
    "search": ("indexer.cli.search", "search"),
    "postings": ("indexer.cli.inspect", "postings"),
    "stats": ("indexer.cli.inspect", "stats"),
    "verify": ("indexer.cli.inspect", "verify"),
    "export": ("indexer.cli.export", "export"),
    "eval": ("indexer.cli.evaluate", "eval_command"),
    "bench": ("indexer.cli.bench", "bench"),
    "serve": ("indexer.cli.serve", "serve"),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indexer")
def cli() -> None:
    """Build an inverted index of a folder of text in parallel, and search it."""


def run() -> None:
    """Run the CLI; an unexpected error is one line (traceback with INDEXER_DEBUG=1).
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
        flush_stdout()
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except StdoutFailed as err:
        err.show()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush
        code = code or err.exit_code
    sys.exit(code)
