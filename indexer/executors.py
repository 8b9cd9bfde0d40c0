"""Executors: where chunks are inverted and term ranges merged, behind one small interface.

`run(fn, tasks)` yields `(task number, result)` as tasks finish; the build orders results itself,
so completion order never shows in the index. A worker that dies fails the build at once
(ProcessPoolExecutor raises BrokenProcessPool where multiprocessing.Pool would hang).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from indexer.errors import IndexerError, WorkerError


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class SequentialExecutor:
    """Runs every task in this process, in order: the debugger's path and the tests' oracle."""

    processes = 1

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        for i, args in enumerate(tasks):
            yield i, fn(*args)

    def close(self) -> None:
        pass


class PoolExecutor:
    """A pool of worker processes started with forkserver (spawn where that is missing), so workers
    neither inherit the parent's heap nor depend on fork."""

    def __init__(self, processes: int):
        self.processes = processes
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["indexer.invert", "indexer.merge"])
        self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        pending = {self._pool.submit(fn, *args): i for i, args in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                try:
                    yield i, future.result()
                except BrokenProcessPool:
                    raise WorkerError(
                        "a worker process died (killed by a signal or by the out-of-memory killer?); "
                        "retry with fewer processes (-p) or a lower --memory"
                    ) from None
                except (IndexerError, OSError):
                    raise
                except Exception as err:  # a bug in a worker: say where, keep the one-line contract
                    raise WorkerError(f"a worker failed on task {i}: {type(err).__name__}: {err}") from err

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(processes: int) -> SequentialExecutor | PoolExecutor:
    """`processes` == 1: in-process; more: a process pool."""
    return SequentialExecutor() if processes <= 1 else PoolExecutor(processes)
