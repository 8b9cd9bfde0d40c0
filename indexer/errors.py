"""Errors the user can act on.

Every failure the library reports is an IndexerError; the CLI turns them into one-line messages.
All classes take a single message argument so that they survive pickling across the process pool.
"""


class IndexerError(Exception):
    """A failure the user can act on; its message says what is wrong and what to do."""


class CorpusError(IndexerError):
    """Nothing to index, or input that cannot be read."""


class IndexFormatError(IndexerError):
    """Not an index file, or a truncated or damaged one."""


class IndexNotFoundError(IndexerError):
    """No index file where one was expected."""


class UnsupportedVersionError(IndexFormatError):
    """An index written in a format version this release cannot read."""


class ArgumentError(IndexerError):
    """A parameter out of its range (k1, b, k, ...), given through the Python API."""


class QueryError(IndexerError):
    """A query that cannot be parsed."""


class WorkerError(IndexerError):
    """A worker process failed or died during a build."""
