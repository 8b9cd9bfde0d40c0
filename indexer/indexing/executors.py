"""Executors: where chunks are inverted and term ranges merged, behind one small interface.

`run(fn, tasks)` yields `(task number, result)` as tasks finish; the build orders results itself,
so completion order never shows in the index. In the local pool a worker that dies fails the build
at once (ProcessPoolExecutor raises BrokenProcessPool where multiprocessing.Pool would hang); on a
Dask cluster (optional extra, imported only when used) Dask reruns the dead worker's tasks. A task
that fails is reported the same way whatever ran it (`_failure`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from indexer.errors import IndexerError, WorkerError
from indexer.indexing.allocator import trim_heap, tune_allocator
from indexer.workers import process_pool, stop_pool


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Executor(Protocol):
    """Where a build's tasks run. `processes`: tasks that run at once."""

    processes: int

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        """Run fn(*args) for each task; yield (task number, result) as tasks finish. A task that
        fails raises IndexerError or OSError as it is, anything else as a WorkerError."""
        ...

    def check_paths(self, paths: Sequence[str]) -> None:
        """Raise IndexerError unless every worker sees each of `paths`."""
        ...

    def close(self) -> None:
        """Wait for what runs, then release the workers."""
        ...

    def abort(self) -> None:
        """Stop what runs now and release the workers."""
        ...


def _failure(err: BaseException, where: str) -> BaseException:
    """What a failed task raises: the library's own errors as they are, anything else (a bug in
    a worker) as one WorkerError line saying where."""
    if isinstance(err, IndexerError | OSError):
        return err
    return WorkerError(f"a worker failed on {where}: {type(err).__name__}: {err}")


def _describe_task(fn: Callable, number: int, args: tuple) -> str:
    """A task in words for an error message: an invert task names its chunk and first file."""
    chunk = args[0] if args else None
    pieces = getattr(chunk, "pieces", None)
    if pieces:
        return f"chunk {chunk.number} (first file: {pieces[0].path})"
    return f"{getattr(fn, '__name__', 'task')} task {number}"


class SequentialExecutor:
    """Runs every task in this process, in order: the debugger's path and the tests' oracle."""

    processes = 1

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        for i, args in enumerate(tasks):
            yield i, _run_task(fn, args)

    def check_paths(self, paths: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


_WORKER_DIED = (
    "a worker process died (killed by a signal or by the out-of-memory killer?); "
    "retry with fewer processes (-p) or a lower --memory"
)


def _run_task(fn: Callable, args: tuple):
    """A task in a pool worker: its memory is given back to the system when it ends, so that
    what one task freed does not stay in the worker's RSS beside the next one's."""
    try:
        return fn(*args)
    finally:
        trim_heap()


def _warm_up() -> None:
    """A pool worker's first task: import what the build's tasks run."""
    import indexer.indexing.invert
    import indexer.indexing.merge  # noqa: F401


class PoolExecutor:
    """A pool of worker processes started with forkserver (spawn where that is missing), so workers
    neither inherit the parent's heap nor depend on fork."""

    def __init__(self, processes: int):
        self.processes = processes
        # Nothing preloaded: a forkserver holding numpy and the indexer costs its own RSS on top of
        # each worker's (shared pages count in both), about 20 MB of a build's peak for 0.1 s of
        # imports that each worker does in parallel on its first task.
        self._pool = process_pool(processes, [], tune_allocator, warm_up=_warm_up)  # importing while we plan

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        try:  # a worker that died before (even while warming up) breaks the pool for every submit
            pending = {self._pool.submit(_run_task, fn, args): i for i, args in enumerate(tasks)}
        except BrokenProcessPool:
            raise WorkerError(_WORKER_DIED) from None
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise WorkerError(_WORKER_DIED) from None
                except Exception as err:
                    raise _failure(err, _describe_task(fn, i, tasks[i])) from err
                yield i, result

    def check_paths(self, paths: Sequence[str]) -> None:
        pass  # the workers run on this machine

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now: kill the workers, mid-task or not, and wait until they are gone."""
        stop_pool(self._pool)


def make_executor(processes: int) -> Executor:
    """`processes` == 1: in-process; more: a process pool."""
    return SequentialExecutor() if processes <= 1 else PoolExecutor(processes)


def _missing_paths(paths: list[str]) -> list[str]:
    """Run on each Dask worker: the paths it cannot see."""
    return [p for p in paths if not os.path.exists(p)]


class DaskExecutor:
    """Runs tasks on a Dask cluster: `tcp://host:8786` (a scheduler started with `dask scheduler`)
    or `local:N` (a LocalCluster of N single-threaded worker processes, closed with the executor).

    Workers read their chunks and write their runs themselves, so they must see the corpus and the
    run folder at the same paths (a shared filesystem); `check_paths` verifies that before work is
    sent. Dask reruns the tasks of a worker that dies; a task that keeps killing workers (more than
    Dask's `allowed-failures`) fails the build with a WorkerError naming its chunk.
    """

    def __init__(self, address: str, worker_timeout: float = 30.0):
        """Connect to `address` (or start the local cluster) and wait up to `worker_timeout`
        seconds for a first worker. Raises IndexerError when Dask is not installed, the address
        is malformed or unreachable, or no worker joins."""
        try:
            import dask
            import distributed
        except ImportError:
            raise IndexerError(
                "running on a Dask cluster needs the dask extra; install it with: pip install 'indexer[dask]'"
            ) from None
        self.address = address
        self._cluster = self._client = None
        local = _local_workers(address)
        try:
            if local is not None:
                # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off
                # glibc's adaptive mmap threshold: every large numpy temporary becomes a fresh mmap
                # and its page faults made inversion about 35% slower (measured). Keep glibc's default.
                with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=local,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.CRITICAL,  # failures reach the user as our one-line errors
                    )
                self._client = distributed.Client(self._cluster)
            else:
                self._client = distributed.Client(address)
            self._client.wait_for_workers(1, timeout=worker_timeout)
            workers = self._client.scheduler_info(n_workers=-1)["workers"]
        except ValueError as err:
            self.close()
            raise IndexerError(
                f"{address}: not a Dask scheduler address ({err}); give one like tcp://host:8786, or local:N"
            ) from None
        except TimeoutError:  # before OSError: in Python 3.10+ TimeoutError is an OSError
            self.close()
            connected = self._client is not None
            raise IndexerError(
                f"{address}: no Dask worker joined the scheduler in {worker_timeout:g} s; "
                f"start some with 'dask worker {address}'"
                if connected
                else f"{address}: cannot reach the Dask scheduler (timed out); check the address and that "
                "'dask scheduler' runs there"
            ) from None
        except OSError as err:
            self.close()
            raise IndexerError(
                f"{address}: cannot reach the Dask scheduler ({err}); check the address and that "
                "'dask scheduler' runs there"
            ) from None
        # Tasks that run at once: one per worker thread (one per worker with --nthreads 1).
        self.processes = sum(w["nthreads"] for w in workers.values()) or 1

    def check_paths(self, paths: Sequence[str]) -> None:
        """Raise IndexerError unless every worker sees each of `paths` (e.g. the run folder and
        the first corpus file): the sign of a shared filesystem."""
        missing = self._client.run(_missing_paths, list(paths))
        blind = sorted((worker, found) for worker, found in missing.items() if found)
        if blind:
            worker, found = blind[0]
            raise IndexerError(
                f"{found[0]}: not visible to Dask worker {worker} ({len(blind)} of {len(missing)} workers "
                "cannot see it); workers must see the corpus and the run folder at the same paths: put them "
                "on a shared filesystem (--tmp-dir for the run folder) and give absolute paths"
            )

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        from distributed import KilledWorker, as_completed

        # pure=False: a unique key per submission, so a retried or repeated task is never taken
        # for another one with the same arguments.
        pending = {self._client.submit(fn, *args, pure=False): i for i, args in enumerate(tasks)}
        try:
            for future in as_completed(list(pending)):
                i = pending.pop(future)
                try:
                    result = future.result()
                except KilledWorker:
                    raise WorkerError(
                        f"{_describe_task(fn, i, tasks[i])}: the Dask workers running it died too often "
                        "(out of memory?); retry with a smaller --chunk-size or a lower --memory"
                    ) from None
                except CancelledError:  # Dask cancels what is pending when the scheduler is lost
                    raise WorkerError(
                        f"{self.address}: lost the connection to the Dask scheduler during the build; "
                        "check that it still runs, then build again"
                    ) from None
                except Exception as err:
                    raise _failure(err, _describe_task(fn, i, tasks[i])) from err
                yield i, result
        finally:
            if pending:
                self._client.cancel(list(pending))

    def abort(self) -> None:
        """Cancel what is still running, then disconnect (Dask's workers stop their tasks)."""
        self.close()

    def close(self) -> None:
        """Disconnect; a local cluster is shut down, a remote one is left running."""
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _local_workers(address: str) -> int | None:
    """N for `local:N`, None for any other address."""
    if not address.startswith("local:"):
        return None
    count = address.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise IndexerError(f"{address}: give local:N with N >= 1 worker processes, e.g. local:4")
    return int(count)
