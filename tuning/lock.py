"""One driver per experiment: a lock file in the experiment folder, taken before Ray starts.

Two drivers on one experiment (a `--resume` while the first still runs) both restore Ray's
state and write into the same trials: the second wrote error.txt into a trial the first had
finished, and their summaries disagreed. `driver_lock` holds an exclusive `flock` on
`<experiment>/driver.lock` for the whole run; the file names the holder (pid, host), so a second
driver is refused in one line naming it. The kernel drops the lock when its process dies
however it dies (SIGKILL too), so a dead driver's leftover file never blocks: the next driver
takes it over and says so. flock is not reliable across hosts on every network file system, so
a file written on another host is refused unless its lock is free here and the user removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Iterator

from settings import ConfigError

logger = logging.getLogger(__name__)

LOCK_FILE = "driver.lock"


class ExperimentLocked(ConfigError):
    """Another driver runs this experiment (one line for the user, exit 2)."""


def _holder(path: Path) -> dict:
    """What the lock file says about its holder ({} when empty or unreadable: mid-write)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"


def _open_locked(path: Path, name: str) -> int:
    """An fd of `path` holding its exclusive flock, or ExperimentLocked naming the holder. The
    file is checked to still be the one at `path` (a releasing driver unlinks it)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExperimentLocked(f"tune.name: experiment {name!r} is being run by another driver "
                                   f"({_describe(_holder(path))}, lock {str(path)!r}); wait for it to end "
                                   f"or stop it first") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _claim(fd: int, path: Path, name: str) -> None:
    """Write this driver into the locked file, after checking what the previous holder left."""
    before, host = _holder(path), socket.gethostname()
    if before.get("host") not in (None, host):
        raise ExperimentLocked(f"tune.name: experiment {name!r} was last run by a driver on another host "
                               f"({_describe(before)}); if that driver is gone, delete {str(path)!r} and "
                               f"run again")
    if before.get("pid") is not None:
        logger.warning("experiment %r: taking over the lock %s left by a driver that is no longer "
                       "running (%s)", name, path, _describe(before))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": host,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
    os.fsync(fd)


@contextlib.contextmanager
def driver_lock(folder: Path, name: str) -> Iterator[Path]:
    """Hold the experiment's driver lock (in its existing `folder`) while the block runs; the
    file is removed at exit."""
    path = folder / LOCK_FILE
    fd = _open_locked(path, name)
    try:
        _claim(fd, path, name)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def running_driver(folder: Path, locks: Path = Path("/proc/locks")) -> str | None:
    """Who holds `folder`'s driver lock now ("pid N on host H"), else None: for status lines. It
    reads the kernel's lock table instead of trying the lock, which could refuse a driver starting
    at that instant; where there is no such table (not Linux) it says None."""
    path = folder / LOCK_FILE
    try:
        stat, table = path.stat(), locks.read_text()
    except OSError:
        return None
    key = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        if "FLOCK" in line and re.search(rf"\s{re.escape(key)}\s", line) and "->" not in line:
            return _describe(_holder(path))
    return None
