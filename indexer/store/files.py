"""Files beside an index: temporary names a later build recognizes as left over, and the writer lock.

Every temporary file or folder a build makes is named `.indexer-HOST-PID-...`, so that when a build
is killed outright (SIGKILL, power loss) the next build in the same place can tell its leftovers
from those of a build still running (same host, pid gone) and remove them. One writer at a time:
`writer_lock` holds an advisory lock on `.NAME.lock` beside the index for the whole build.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.errors import IndexerError

_PREFIX = ".indexer-"
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"
_LEFTOVER = re.compile(rf"^{re.escape(_PREFIX)}(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-")


def temp_prefix() -> str:
    """The name prefix of this process's temporary files and folders."""
    return f"{_PREFIX}{_HOST}-{os.getpid()}-"


def make_temp_dir(where: Path) -> str:
    """A new, empty temporary folder in `where`."""
    return tempfile.mkdtemp(prefix=temp_prefix(), dir=where)


def make_temp_file(where: Path, name: str) -> tuple[int, str]:
    """A new temporary file in `where` for the file `name`: (open fd, path), as tempfile.mkstemp."""
    return tempfile.mkstemp(prefix=f"{temp_prefix()}{name}.", suffix=".tmp", dir=where)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (it may belong to another user). A
    zombie, dead but not yet reaped by its parent, does not run: a build killed while its caller
    waits for its output to end is a zombie until the workers holding that output have gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (macOS): the signal test is all there is
        return True


def remove_leftovers(folder: Path) -> list[str]:
    """Remove the temporary files and folders in `folder` left by builds on this host whose process
    is gone; returns their paths. Those of running builds, other hosts and other programs stay."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        match = _LEFTOVER.match(name)
        if match is None or match["host"] != _HOST or pid_alive(int(match["pid"])):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                continue
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def lock_path(index: Path) -> Path:
    return index.with_name(f".{index.name}.lock")


@contextmanager
def writer_lock(index: Path) -> Iterator[None]:
    """Hold the one-writer lock of `index` while the block runs; the lock file is removed after.

    Raises IndexerError naming the other process's pid when another writer holds it. A lock left
    by a killed writer is free again (the kernel drops the lock with its holder)."""
    path = lock_path(index)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise IndexerError(f"{path}: cannot create the lock file ({err.strerror}); choose another -o") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise IndexerError(
                f"{index}: another indexer process (pid {other}) is writing this index; "
                "wait for it to finish, or write elsewhere with -o"
            ) from None
        # The previous holder may have removed the file between our open and our lock: then we
        # hold a lock on a file nobody else can find. Start again on the file at the path.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        try:
            os.unlink(path)  # while still holding the lock; see the inode check above
        except FileNotFoundError:
            pass
        os.close(fd)


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's tofile/save on a full disk


def disk_full(err: OSError) -> bool:
    """Whether a write failed for want of space: ENOSPC or EDQUOT, or numpy's short-write error
    (which carries no errno)."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT) or (err.errno is None and bool(_SHORT_WRITE.search(str(err))))
