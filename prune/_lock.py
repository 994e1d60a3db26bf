"""One run at a time per environment: an ``flock`` on the environment's root directory.

The lock is taken on the root directory itself (opened read-only), not on a file: nothing is
created in the environment, so a dry run of a read-only tree works and no lock file ends up in
the image, and no lock file can be deleted and recreated under a waiting run (the classic
unlink race of lock files). The kernel drops the lock when the process dies, SIGKILL included,
so a crashed run never leaves a stale lock: "the lock is free" means "no run is alive".

A prune holds it exclusively from before the scan until its transaction has committed or rolled
back; ``recover`` holds it exclusively; a dry run holds it shared (it changes nothing, but must
not plan a half-staged tree). The second run does not wait: it raises :class:`~prune.errors.Busy`
(exit 75, EX_TEMPFAIL) naming the holder's pid, read from ``/proc/locks``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from .errors import Busy

__all__ = ["env_lock", "holder_pid"]

#: (st_dev, st_ino) of a locked root -> [fd, depth, exclusive]; a process takes one lock per
#: environment however many layers (pipeline, apply_plan, recover) ask for it.
_held: dict[tuple[int, int], list[int]] = {}


def holder_pid(root: Path) -> Optional[int]:
    """The pid holding an flock on ``root`` according to ``/proc/locks`` (Linux), else None."""
    try:
        st = os.stat(root)
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF" (a "->" marks a waiter)
        if "FLOCK" in parts and ident in parts and "->" not in parts:
            with contextlib.suppress(ValueError, IndexError):
                pid = int(parts[parts.index(ident) - 1])
                if pid != os.getpid():
                    return pid
    return None


@contextlib.contextmanager
def env_lock(root: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold the environment's lock for the ``with`` body.

    :raises Busy: another process holds it (exclusively, or at all when ``shared`` is false).
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    held = _held.get(key)
    if held is not None:
        os.close(fd)
        fd = held[0]
        upgrade = not shared and not held[2]
        if upgrade:
            _take(fd, root, shared=False)
            held[2] = 1
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
            if upgrade:
                fcntl.flock(fd, fcntl.LOCK_SH)
                held[2] = 0
        return
    try:
        _take(fd, root, shared=shared)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = [fd, 1, 0 if shared else 1]
    try:
        yield
    finally:
        del _held[key]
        os.close(fd)  # closing the last descriptor releases the flock


def _take(fd: int, root: Path, *, shared: bool) -> None:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = holder_pid(root)
        who = f"pid {pid}" if pid else "pid unknown"
        raise Busy(f"another venv-prune run ({who}) is working on {root}; "
                   "wait for it to finish, then run again") from None
