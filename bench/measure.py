"""Measure a command as a whole process tree: wall and CPU seconds, peak RSS, and its stdout.

CPU time is user + sys of the process and every descendant. Descendants that outlive their parent
(multiprocessing's forkserver and the workers it reaps) would escape getrusage; become_subreaper()
makes them this process's children, and run_measured reaps and counts them. Used by bench/peers.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.05
ORPHAN_WAIT_SECONDS = 10.0
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux), so their CPU time is counted."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            total = 0
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
            except psutil.Error:  # the root has exited
                return
            self.peak = max(self.peak, total)


def _reap_orphans() -> tuple[float, int]:
    """(CPU seconds, largest max RSS in bytes) of the descendants left to this subreaper."""
    cpu, rss, deadline = 0.0, 0, time.monotonic() + ORPHAN_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
            continue
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss * 1024)
    else:
        print(f"warning: descendants still running {ORPHAN_WAIT_SECONDS:.0f} s after their parent", file=sys.stderr)
    return cpu, rss


def run_measured(cmd: list[str]) -> dict:
    """Run `cmd` to its end: wall and CPU seconds, peak RSS (largest process, tree sum), stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.done.set()
        sampler.join()
        orphan_cpu, orphan_rss = _reap_orphans()
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}\n{tail}")
        return {
            "seconds": wall,
            "cpu_seconds": usage.ru_utime + usage.ru_stime + orphan_cpu,
            "peak_rss": max(usage.ru_maxrss * 1024, orphan_rss),
            "peak_tree_rss": max(sampler.peak, usage.ru_maxrss * 1024),
            "stdout": out.read().decode(errors="replace"),
        }


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
