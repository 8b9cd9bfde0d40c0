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


def process_pool(
    processes: int, preload: list[str], initializer: Callable | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor of well-behaved workers (see above); `preload` modules are imported
    once in the forkserver, `initializer(*initargs)` runs in each worker."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(preload)
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


def start_worker(parent: int, initializer: Callable | None = None, initargs: tuple = ()) -> None:
    """Pool worker initializer: ignore Ctrl-C, watch the parent, then the caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent, os.getppid()), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _watch_parent(parent: int, ppid: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != ppid or not pid_alive(parent):
            os._exit(1)
