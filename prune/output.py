"""``--output DIR``: prune a copy that appears at DIR complete, or not at all.

The copy is made in a partial directory beside DIR, ``.DIR.venv-prune-output-PID`` (same
filesystem, so the final step is one ``rename``), pruned and verified there, relocated there,
and only then renamed to DIR (issue 16: a kill or a full disk during ``copytree`` straight into
DIR left a half copy without ``bin/python`` that the next run refused as "not empty").
A run that is killed leaves only its partial directory, which the next ``--output`` run to the
same DIR removes once the PID in its name is dead.

DIR may not exist, or be an empty directory (``rename`` replaces an empty directory). When
that empty directory is a mount point (a volume), nothing can be renamed onto it: the partial
directory is made inside it and its entries are moved up one by one at the end, which is not
atomic; the README says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from . import _tmp
from ._signals import first_only, handling, raise_interrupt, signal_name, signal_number
from .errors import ApplyFailed, Busy, Interrupted, UsageError

__all__ = ["Destination", "check_destination", "copy_partial", "publish", "discard", "interruptible"]

_PARTIAL = ".venv-prune-output-"


class Destination:
    """Where the copy goes: ``final`` (DIR) and ``partial`` (where it is built)."""

    def __init__(self, final: Path, partial: Path, inside: bool) -> None:
        self.final = final
        self.partial = partial
        #: The partial directory is inside ``final`` (an empty mount point).
        self.inside = inside


def check_destination(source_root: Path, dst: str) -> Destination:
    """Refuse a DIR that is a link, a file, a non-empty directory, or inside the source.

    :raises UsageError: with one line naming DIR and what to pass instead.
    """
    out = Path(os.path.abspath(dst))
    if out.is_symlink():
        raise UsageError(f"--output {dst}: is a symbolic link; pass the real directory or a new path")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {dst}: is a file, not a directory; pass a new directory")
    real = Path(os.path.realpath(out))
    if real == source_root or source_root in real.parents:
        raise UsageError(f"--output {dst}: inside the source environment; pass a path outside it")
    inside = False
    if out.is_dir():
        clean_stale(out, inside=True)
        try:
            entries = os.listdir(out)
        except OSError as exc:
            raise UsageError(f"--output {dst}: cannot list it ({exc.strerror}); pass a new directory") from exc
        if ".venv-prune-bytecode" in entries or ".venv-prune" in entries:
            raise UsageError(f"--output {dst}: holds an interrupted run's state (a pruned copy whose "
                             f"--bytecode compile or prune was killed); run 'venv-prune recover {dst}'")
        if entries:
            raise UsageError(f"--output {dst}: exists and is not empty; pass a new or empty directory")
        inside = os.stat(out).st_dev != os.stat(out.parent).st_dev
    if not out.parent.is_dir():
        try:  # as copytree did: missing parents are made
            os.makedirs(out.parent, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--output {dst}: cannot create its parent directory "
                             f"({exc.strerror}); pass a writable path") from exc
    clean_stale(out)
    name = f"{_PARTIAL}{os.getpid()}"
    partial = out / name if inside else out.parent / f".{out.name}{name}"
    return Destination(out, partial, inside)


def _partials(out: Path, inside: bool) -> list[tuple[Path, int]]:
    """The partial directories for ``out`` (of any run) and the pid each belongs to."""
    base, pattern = (out, re.compile(re.escape(_PARTIAL) + r"(\d+)$")) if inside else (
        out.parent, re.compile(re.escape(f".{out.name}{_PARTIAL}") + r"(\d+)$"))
    try:
        names = os.listdir(base)
    except OSError:
        return []
    found = [(base / name, int(m.group(1))) for name in names if (m := pattern.match(name))]
    return [(path, pid) for path, pid in found if path.is_dir() and not path.is_symlink()]


def clean_stale(out: Path, *, inside: bool = False) -> list[Path]:
    """Remove partial directories for ``out`` whose run is dead; return them.

    :raises Busy: a live run (another pid) is building ``out``: two runs would both copy,
        prune and verify, and the second to finish would fail to publish (a tester's case).
    """
    removed: list[Path] = []
    for path, pid in _partials(out, inside):
        if pid == os.getpid():
            continue
        if _tmp.pid_alive(pid):
            raise Busy(f"--output {out}: another venv-prune run (pid {pid}) is building it; wait for it "
                       "or pass another directory")
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def copy_partial(source_root: Path, dest: Destination) -> Path:
    """Copy the environment (links as links) into the partial directory.

    :raises ApplyFailed: the copy failed (a full disk, an unreadable file); the partial
        directory has been removed, DIR was never touched.
    """
    try:
        shutil.copytree(source_root, dest.partial, symlinks=True)
    except BaseException as exc:
        discard(dest)
        if isinstance(exc, shutil.Error):
            first = exc.args[0][0] if exc.args and exc.args[0] else ("?", "?", str(exc))
            raise ApplyFailed(f"--output {dest.final}: copying {first[0]} failed ({first[2]}); "
                              "nothing was created") from exc
        if isinstance(exc, OSError):
            raise ApplyFailed(f"--output {dest.final}: copying failed at {exc.filename or source_root} "
                              f"({exc.strerror or exc}); nothing was created") from exc
        raise
    return dest.partial


def publish(dest: Destination) -> None:
    """Move the finished copy to DIR (one rename, or entry by entry into a mount point)."""
    if not dest.inside:
        try:
            os.rename(dest.partial, dest.final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EBUSY) or not dest.final.is_dir():
                raise ApplyFailed(f"--output {dest.final}: could not move the finished copy into "
                                  f"place ({exc.strerror}: did another run create it?); this run's copy "
                                  "was discarded") from exc
    for name in sorted(os.listdir(dest.partial)):
        os.rename(dest.partial / name, dest.final / name)
    os.rmdir(dest.partial)


def discard(dest: Destination) -> None:
    """Remove the partial directory (after a failure or an interruption)."""
    shutil.rmtree(dest.partial, ignore_errors=True)


@contextlib.contextmanager
def interruptible(dest: Destination) -> Iterator[None]:
    """While the copy is built: SIGTERM and SIGINT stop the run, the partial directory is
    removed and :class:`~prune.errors.Interrupted` says that DIR was not created."""
    with handling(first_only(raise_interrupt)):
        try:
            yield
        except BaseException as exc:
            discard(dest)
            if isinstance(exc, KeyboardInterrupt):
                signum = signal_number(exc)
                raise Interrupted(f"{signal_name(signum)}: stopped before --output "
                                  f"{dest.final} was complete; nothing was created there", signum) from exc
            if isinstance(exc, Interrupted):
                raise Interrupted(f"{exc}; --output {dest.final} was not created", exc.signum) from exc
            raise
