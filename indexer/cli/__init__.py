"""The command-line interface: parse options, make one library call, render the result.

The Click group and its commands live in indexer.cli.app, imported when `main` runs: the
`indexer` console script imports `main` from here, and so does every pool worker, which re-imports
its parent's main script before it takes work; importing this package loads nothing else.
"""

from __future__ import annotations


def main() -> None:
    """Entry point of `indexer` and `python -m indexer`."""
    try:
        from indexer.cli.app import run
    except KeyboardInterrupt:  # Ctrl-C while the interpreter imports: the same line as later on
        import sys

        sys.stderr.write("Aborted: SIGINT received\n")
        sys.exit(130)
    run()


def __getattr__(name: str):
    if name == "cli":  # `from indexer.cli import cli`: the Click group itself
        from indexer.cli.app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
