"""Batch search on a pool: the queries of a file answered by worker processes that each open the
index once (the mapped file is shared through the page cache), results in query order, the same
as one process gives them. A `render` function turns each task's results into what the caller
wants (output text, a ranking) inside the worker, so the parent only collects: pickling a
thousand hits per query back and formatting them in one process would cap the speedup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import TypeVar

from indexer.errors import IndexerError, QueryError
from indexer.retrieval.query import looks_plain, parse_query
from indexer.retrieval.searcher import Searcher, SearchResult, open_index

QUERIES_PER_TASK = 64
T = TypeVar("T")

_worker: dict = {}  # in a worker: its open index and Searcher


def search_batch(
    index: Path,
    queries: list[tuple[str, str]],
    processes: int,
    k1: float,
    b: float,
    render: Callable[[list[tuple[str, SearchResult]]], T] | None = None,
    **options,
) -> Iterator[T]:
    """The queries answered by `processes` workers (1: here), in order: without `render`, one
    (query id, result) pair each; with it, render(pairs) for each run of up to QUERIES_PER_TASK
    queries (a picklable function: it runs in the workers). `options` are Searcher.search_many's;
    with syntax and strict, a malformed query raises QueryError naming it before any result, as
    search_many does."""
    if options.get("syntax") and options.get("strict", True):
        for qid, text in queries:
            try:
                if not looks_plain(text):
                    parse_query(text)
            except QueryError as err:
                raise QueryError(f"query {qid!r}: {err}") from None
    if processes <= 1 or len(queries) <= QUERIES_PER_TASK:
        with open_index(index) as reader:
            answers = Searcher(reader, k1, b).search_many(queries, **options)
            if render is None:
                yield from answers
            else:
                while task := list(islice(answers, QUERIES_PER_TASK)):
                    yield render(task)
        return
    from concurrent.futures.process import BrokenProcessPool

    from indexer.workers import process_pool, stop_pool

    pool = process_pool(processes, ["indexer.retrieval.batch"], _open, (str(index), k1, b))
    finished = False
    try:
        tasks = [queries[i : i + QUERIES_PER_TASK] for i in range(0, len(queries), QUERIES_PER_TASK)]
        futures = [pool.submit(_answer, task, options, render) for task in tasks]
        for future in futures:
            try:
                answer = future.result()
                if render is None:
                    yield from answer
                else:
                    yield answer
            except BrokenProcessPool:
                raise IndexerError(
                    "a search worker process died (out of memory?); retry with fewer processes"
                ) from None
        pool.shutdown(wait=True)
        finished = True
    finally:
        if not finished:  # an error, an interrupt, or the caller stopped reading: workers stop now
            stop_pool(pool)


def _open(index: str, k1: float, b: float) -> None:
    reader = open_index(Path(index))
    _worker["searcher"] = Searcher(reader, k1, b)


def _answer(queries: list[tuple[str, str]], options: dict, render: Callable | None):
    answers = list(_worker["searcher"].search_many(queries, **options))
    return answers if render is None else render(answers)
