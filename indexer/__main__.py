"""`python -m indexer` runs the command-line interface."""

from indexer.cli import main

main()
