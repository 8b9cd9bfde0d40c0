"""Worker processes: a process pool whose workers behave, for the build and for batch search.

Workers start through forkserver (spawn where that is missing), so they neither inherit the
parent's heap nor depend on fork; they ignore Ctrl-C (the parent decides what an interrupt means
and stops them itself) and exit by themselves when their parent is gone, even killed with SIGKILL,
instead of lingering as orphans.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from indexer.store.files import pid_alive

WATCH_SECONDS = 0.5  # how often a worker checks that the process that started it still runs


def _nothing() -> None:
    """A worker's first task when it has nothing to import ahead of its work."""


def process_pool(
    processes: int,
    preload: list[str],
    initializer: Callable | None = None,
    initargs: tuple = (),
    warm_up: Callable = _nothing,
) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor of well-behaved workers (see above), all started now: each runs
    `warm_up` first (imports, while the caller goes on). `preload` modules are imported once in
    the forkserver, `initializer(*initargs)` runs in each worker.

    The workers and the forkserver are started with Ctrl-C blocked, which they inherit: a Ctrl-C
    at that moment reaches the caller only (once they are started), never a helper process still
    importing, which would print a traceback of its own."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(preload)
    blocked = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=start_worker,
            initargs=(os.getpid(), initializer, initargs),
        )
        for _ in range(processes):
            pool.submit(warm_up)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return pool


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop now: kill the workers (they may be mid-task; they hold nothing that needs a clean
    exit) and wait until they are gone, so that none writes into a folder the caller removes next."""
    workers = list((pool._processes or {}).values())  # the executor has no public handle
    for worker in workers:
        worker.kill()
    for worker in workers:
        worker.join()
    # The pool's manager thread may be reading a result a killed worker was writing; with our own
    # copy of the pipe's write end closed, no writer is left and it reads an end of file instead
    # of waiting forever. It then sees the pool broken and ends, and nothing is left running
    # that the interpreter's exit would wait for.
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()
    pool.shutdown(wait=True, cancel_futures=True)


def start_worker(parent: int, initializer: Callable | None = None, initargs: tuple = ()) -> None:
    """Pool worker initializer: ignore the signals that stop a command (the parent decides what
    they mean and stops its workers itself, with SIGKILL), watch the parent, then the caller's
    initializer. A signal sent to the whole process group thus never kills a worker first, which
    the parent would report as a worker that died."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent, os.getppid()), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _watch_parent(parent: int, ppid: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != ppid or not pid_alive(parent):
            os._exit(1)
