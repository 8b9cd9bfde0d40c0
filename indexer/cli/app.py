"""The Click group of the command-line interface and the body of `indexer.cli.main`.

Each command lives in its own module, imported only when that command runs (or when --help lists
them all), so `indexer search` never loads the build machinery. The conventions every command
follows are in indexer.cli.common.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from indexer import __version__
from indexer.cli.common import Interrupted, ReaderGone, StdoutFailed, flush_stdout

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


PIPE_CLOSED = 128 + signal.SIGPIPE  # the reader went away: what a shell shows for `cat` in `cat | head`


def run() -> None:
    """Run the CLI with the error contract: a usage or library error is one line and its exit
    code; Ctrl-C is "Aborted" and 130; a reader that went away (`| head`) ends the command quietly
    with 141, as SIGPIPE ends `cat` or `grep`; an unexpected error is one line (a traceback with
    INDEXER_DEBUG=1). Output still buffered at the end is flushed here, so that a full or closed
    stdout is reported as one line and exit 1, rather than by the interpreter on its way out."""
    stdout_gone = False
    try:
        cli.main(prog_name="indexer", standalone_mode=False)
        code = 0
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.ClickException as err:
        err.show()
        code = err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        stopped = Interrupted(signal.SIGINT)
        stopped.show()
        code = stopped.exit_code
    except (ReaderGone, BrokenPipeError):
        code = PIPE_CLOSED
        stdout_gone = True
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
    except ReaderGone:
        code, stdout_gone = PIPE_CLOSED, True
    except StdoutFailed as err:
        err.show()
        code, stdout_gone = code or err.exit_code, True
    if stdout_gone and sys.stdout is not None:
        try:  # nothing more can reach stdout: the interpreter's last flush must not complain
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    sys.exit(code)
