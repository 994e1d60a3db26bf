"""Temporary directories that say which process made them, so a later run can clean up
after one that was killed.

Every scratch directory venv-prune makes in the temporary directory is named
``venv-prune-KIND-PID-RANDOM`` (``KIND``: find, verify, bytecode, check, trace). A run that
is SIGKILLed never reaches its ``finally``; the next run removes the directories whose
owning process no longer exists (issue 16: they piled up in ``/tmp`` after kills). A
directory whose PID is alive, or belongs to another user's process, or has no PID in its
name (made by an older release) is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

__all__ = ["prefix", "mkdtemp", "TemporaryDirectory", "clean_stale", "pid_alive"]

_KINDS = ("find", "verify", "bytecode", "check", "trace")
_NAME = re.compile(r"^venv-prune-(?:" + "|".join(_KINDS) + r")-(\d+)-")


def prefix(kind: str) -> str:
    """The name prefix of a scratch directory of ``kind`` made by this process."""
    assert kind in _KINDS, kind
    return f"venv-prune-{kind}-{os.getpid()}-"


def mkdtemp(kind: str) -> str:
    """:func:`tempfile.mkdtemp` with this process's marked prefix."""
    return tempfile.mkdtemp(prefix=prefix(kind))


def TemporaryDirectory(kind: str) -> tempfile.TemporaryDirectory[str]:  # noqa: N802 - mirrors tempfile
    """:class:`tempfile.TemporaryDirectory` with this process's marked prefix."""
    return tempfile.TemporaryDirectory(prefix=prefix(kind))


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is someone else's
        return True
    return True


def clean_stale(directory: str | None = None) -> list[str]:
    """Remove the scratch directories of dead venv-prune processes; return their paths.

    Never raises: a directory that cannot be listed or removed is simply left.
    """
    base = directory or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    me = os.getpid()
    for name in sorted(names):
        m = _NAME.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == me or pid_alive(pid):
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        # Only our own, real directories (never a link planted under our name).
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed
