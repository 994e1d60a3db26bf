"""Baseline and verification: does everything that imported before pruning still import?

Runs the *target* environment's own interpreter (any CPython 3.8+, not necessarily the one
running venv-prune) on a small probe script, :mod:`prune._verify_worker`, passed with ``-c``.
Three kinds of thing are checked:

- ``import``: each top-level module of each distribution (see :func:`importable_modules`);
- ``entry_point``: each entry point, found through the target's ``importlib.metadata`` and
  loaded (module imported, attribute resolved), as console scripts and plugin systems do;
- ``check``: each user ``--check`` shell command, which must exit 0.

:func:`capture_baseline` records what works before pruning; :func:`verify` reruns what worked
and reports what no longer does. Things already broken in the baseline are ignored.

Speed: many imports share one interpreter, and ``jobs`` interpreters pull from one queue.
Robustness: each task has its own deadline (a hung import is killed and recorded as timed out);
an interpreter that dies (segfault, ``os._exit``) costs only the module it was importing, and a
fresh one carries on with the next. A failure seen in a shared interpreter is re-checked as the
first task of a fresh one before it counts, so import order never produces a false alarm.

Nothing is written into the environment: the interpreter runs with ``-I -B`` (no user site, no
``PYTHONPATH``, no bytecode caches, but with the environment's own site-packages), from a
temporary working directory outside the environment, with stdin closed and stdout discarded;
results travel on a dedicated pipe.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from . import _tmp, _verify_worker
from .errors import UsageError
from .model import Inventory

#: Told (done, total) as each import or entry point is decided: the command's counter.
Count = Optional[Callable[[int, int], None]]

__all__ = [
    "KINDS",
    "Baseline",
    "EntryPointTarget",
    "Failure",
    "ModuleTarget",
    "Outcome",
    "VerificationCost",
    "VerifyResult",
    "capture_baseline",
    "entry_point_targets",
    "importable_modules",
    "touched_modules",
    "verification_cost",
    "verify",
]

KINDS = ("import", "entry_point", "check")

_FORMAT = 1
_MAX_ERROR = 2000
_EXTENSION_SUFFIXES = (".so", ".pyd")
# An interpreter gets at least this long to start, whatever the per-import timeout.
_START_GRACE = 5.0
#: Seconds a module beside removed files (``first_try`` in :func:`capture_baseline`) may take
#: to import in the baseline: such a module adds coverage, and one that hangs (a server
#: started at import) must not cost the full per-import timeout; slower ones are just not
#: checked again.
FIRST_TRY_TIMEOUT = 20.0
# A worker that hears end-of-input but is still alive after this long is killed.
_EXIT_GRACE = 5.0
_POLL = 0.2


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class ModuleTarget:
    """A module to import: ``name`` (dotted), owned by ``distribution`` ("" when unowned)."""

    __slots__ = ("distribution", "name")
    name: str
    distribution: str


@dataclass(frozen=True)
class EntryPointTarget:
    """An entry point ``group:name = value`` declared by ``distribution`` (canonical name)."""

    __slots__ = ("distribution", "group", "name", "value")
    distribution: str
    group: str
    name: str
    value: str

    @property
    def label(self) -> str:
        """``group:name``, the name an entry point's outcome and failure carry."""
        return f"{self.group}:{self.name}"


@dataclass(frozen=True)
class Outcome:
    """What one check gave.

    ``kind`` is one of :data:`KINDS`; ``name`` is the module name, ``group:name`` for an entry
    point, or the command for a check. ``error`` is "" when ``ok``, else one line: the last
    line of the traceback ("ModuleNotFoundError: No module named 'pkg.core'"), "timed out
    after 60s", "crashed the interpreter (SIGSEGV)", or a check's exit status.
    """

    __slots__ = ("distribution", "error", "kind", "name", "ok")
    kind: str
    name: str
    distribution: str
    ok: bool
    error: str


@dataclass(frozen=True)
class Failure:
    """Something that worked in the baseline and fails now (fields as in :class:`Outcome`)."""

    __slots__ = ("distribution", "error", "kind", "name")
    kind: str
    name: str
    distribution: str
    error: str


@dataclass(frozen=True)
class VerificationCost:
    """Seconds spent on verification, to show its share of a whole run."""

    __slots__ = ("baseline_seconds", "verify_seconds")
    baseline_seconds: float
    verify_seconds: float

    @property
    def seconds(self) -> float:
        """Baseline plus verification."""
        return round(self.baseline_seconds + self.verify_seconds, 3)

    def share(self, run_seconds: float) -> float:
        """Fraction (0..1) of a run of ``run_seconds`` spent verifying; 0 when unknown."""
        if run_seconds <= 0:
            return 0.0
        return min(1.0, self.seconds / run_seconds)


@dataclass(frozen=True)
class Baseline:
    """What worked before pruning, and everything needed to ask again.

    ``outcomes`` holds one entry per module, then per entry point, then per check, in the order
    of ``modules``, ``entry_points`` and ``checks``. ``paths`` are extra site directories put
    first on the interpreter's ``sys.path`` (a ``--target`` directory run with ``--python``).
    JSON-serialisable (:meth:`to_json`, :meth:`from_json`) for the apply journal.
    """

    __slots__ = (
        "checks",
        "entry_points",
        "modules",
        "outcomes",
        "paths",
        "python",
        "python_version",
        "seconds",
    )
    python: str
    python_version: str
    paths: tuple[str, ...]
    modules: tuple[ModuleTarget, ...]
    entry_points: tuple[EntryPointTarget, ...]
    checks: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    seconds: float

    @property
    def working(self) -> tuple[Outcome, ...]:
        """Outcomes that succeeded: what :func:`verify` checks again."""
        return tuple(o for o in self.outcomes if o.ok)

    @property
    def ok_modules(self) -> tuple[str, ...]:
        """Names of the modules that imported (for the report's "N modules verified")."""
        return tuple(o.name for o in self.outcomes if o.ok and o.kind == "import")

    @property
    def broken(self) -> tuple[Outcome, ...]:
        """Outcomes that already failed before pruning (ignored by :func:`verify`)."""
        return tuple(o for o in self.outcomes if not o.ok)

    def to_json(self) -> str:
        """Stable JSON text (sorted keys); :meth:`from_json` reads it back to an equal value."""
        data = {
            "format": _FORMAT,
            "python": self.python,
            "python_version": self.python_version,
            "paths": list(self.paths),
            "modules": [[m.name, m.distribution] for m in self.modules],
            "entry_points": [
                [e.distribution, e.group, e.name, e.value] for e in self.entry_points
            ],
            "checks": list(self.checks),
            "outcomes": [
                [o.kind, o.name, o.distribution, o.ok, o.error] for o in self.outcomes
            ],
            "seconds": self.seconds,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Baseline:
        """Parse :meth:`to_json` output.

        :raises UsageError: the text is not a baseline this version of venv-prune wrote.
        """
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            baseline = cls(
                python=_str(data["python"]),
                python_version=_str(data["python_version"]),
                paths=tuple(_str(p) for p in data["paths"]),
                modules=tuple(ModuleTarget(_str(n), _str(d)) for n, d in data["modules"]),
                entry_points=tuple(
                    EntryPointTarget(_str(d), _str(g), _str(n), _str(v))
                    for d, g, n, v in data["entry_points"]
                ),
                checks=tuple(_str(c) for c in data["checks"]),
                outcomes=tuple(
                    Outcome(_kind(k), _str(n), _str(d), _bool(ok), _str(e))
                    for k, n, d, ok, e in data["outcomes"]
                ),
                seconds=float(data["seconds"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UsageError(
                f"the saved verification baseline is unreadable ({exc}); "
                "run venv-prune again to capture a new one"
            ) from exc
        expected = len(baseline.modules) + len(baseline.entry_points) + len(baseline.checks)
        if len(baseline.outcomes) != expected:
            raise UsageError(
                "the saved verification baseline is inconsistent (outcomes do not match "
                "targets); run venv-prune again to capture a new one"
            )
        return baseline


@dataclass(frozen=True)
class VerifyResult:
    """The result of :func:`verify`.

    ``failures`` (sorted by kind, then name) are the things that worked in the baseline and
    fail now; ``checked`` is how many things were checked again; ``seconds`` is how long
    verification took and ``baseline_seconds`` how long the baseline took.
    """

    __slots__ = ("baseline_seconds", "checked", "failures", "seconds")
    failures: tuple[Failure, ...]
    checked: int
    seconds: float
    baseline_seconds: float

    @property
    def ok(self) -> bool:
        """True when nothing that worked before fails now."""
        return not self.failures

    @property
    def cost(self) -> VerificationCost:
        """Seconds spent on baseline and verification together."""
        return VerificationCost(self.baseline_seconds, self.seconds)


def verification_cost(baseline: Baseline, result: VerifyResult | None = None) -> VerificationCost:
    """Verification's cost for a run: the baseline's seconds plus ``result``'s (if any)."""
    return VerificationCost(baseline.seconds, result.seconds if result is not None else 0.0)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _kind(value: object) -> str:
    if value not in KINDS:
        raise ValueError(f"unknown kind {value!r}")
    return str(value)


# --------------------------------------------------------------------------- what to check


class _Dir:
    """A directory of a distribution's file list, built from RECORD paths."""

    __slots__ = ("dirs", "files")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.dirs: dict[str, _Dir] = {}

    def add(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        node = self
        for part in parts[:-1]:
            node = node.dirs.setdefault(part, _Dir())
        if parts:
            node.files.add(parts[-1])


def _module_of_file(filename: str) -> str | None:
    """The module a file in a package directory defines: ``x.py``, ``x.pyc`` (sourceless),
    ``x.cpython-312-x86_64-linux-gnu.so``, ``x.abi3.so``, ``x.pyd``; None for anything else."""
    if filename.endswith((".py", ".pyc")):
        stem = filename.rsplit(".", 1)[0]
    elif filename.endswith(_EXTENSION_SUFFIXES):
        stem = filename.split(".", 1)[0]
    else:
        return None
    return stem if stem.isidentifier() else None


def _is_package(node: _Dir) -> bool:
    return any(_module_of_file(f) == "__init__" for f in node.files)


def _holds_python(node: _Dir) -> bool:
    if any(_module_of_file(f) is not None for f in node.files):
        return True
    return any(
        name != "__pycache__" and _holds_python(child) for name, child in node.dirs.items()
    )


def _modules_in(node: _Dir, prefix: str = "") -> list[str]:
    """Importable top-level modules under ``node``; a namespace package (a directory holding
    Python code but no ``__init__``) yields the regular packages and modules inside it
    instead, since importing the bare namespace proves nothing."""
    found: list[str] = []
    for filename in node.files:
        module = _module_of_file(filename)
        if module is not None and module != "__init__":
            found.append(prefix + module)
    for name, child in node.dirs.items():
        # dist-info, egg-info, *.data, *.libs and dotted names are not identifiers.
        if name == "__pycache__" or not name.isidentifier():
            continue
        if _is_package(child):
            found.append(prefix + name)
        elif _holds_python(child):
            found.extend(_modules_in(child, prefix + name + "."))
    return found


def _relative_to_site(path: str, site: str) -> str | None:
    if not site:
        return path
    prefix = site.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def importable_modules(inventory: Inventory) -> tuple[ModuleTarget, ...]:
    """The top-level modules worth importing in ``inventory``'s environment, sorted by name.

    For each distribution: the modules its RECORD files define directly in site-packages
    (``x.py``, ``x/__init__.py``, ``x.<abi>.so``, ``x.pyd``, sourceless ``x.pyc``), and for a
    namespace package the packages and modules inside it. Names that cannot be imported
    (``-`` in them, a leading dot), ``*.dist-info`` and ``__pycache__`` are skipped. An
    editable distribution, or one without a RECORD, adds the names in its ``top_level.txt``.
    Modules in site-packages that no distribution owns are listed with distribution "".
    A name claimed twice goes to an owner over "", then to the first owner alphabetically.
    """
    owners: dict[str, set[str]] = {}

    def claim(names: Iterable[str], distribution: str) -> None:
        for name in names:
            owners.setdefault(name, set()).add(distribution)

    for dist in inventory.distributions:
        tree = _Dir()
        for path in dist.files:
            rel = _relative_to_site(path, dist.site)
            if rel is not None:
                tree.add(rel)
        claim(_modules_in(tree), dist.name)
        if dist.editable or not dist.has_record:
            claim((n for n in dist.top_level if all(p.isidentifier() for p in n.split("."))),
                  dist.name)

    for site in inventory.env.site_packages:
        tree = _Dir()
        for entry in inventory.files:
            if entry.owner:
                continue
            rel = _relative_to_site(entry.path, site)
            if rel is not None:
                tree.add(rel)
        claim(_modules_in(tree), "")

    targets = []
    for name, dists in owners.items():
        owned = sorted(d for d in dists if d)
        targets.append(ModuleTarget(name, owned[0] if owned else ""))
    return tuple(sorted(targets, key=lambda t: t.name))


def touched_modules(inventory: Inventory, removed: Iterable[str]) -> tuple[ModuleTarget, ...]:
    """The packages and modules in each directory of site-packages that loses an entry, sorted.

    A removal next to code is where a guess about "unread" files goes wrong: lazy_loader's
    ``attach_stub`` parses the ``__init__.pyi`` it removes the moment ``skimage.filters`` is
    imported, and ``__file__``-relative data is read by the module beside it (issue 15, kind
    E). Top-level imports do not reach lazily loaded subpackages, so each touched directory's
    package (``skimage.filters``) and the modules in it (``skimage.filters.edges``) are
    imported by name.

    :param removed: root-relative paths (files or directories) removed before verification.
    :returns: targets for the modules that stay: ``__main__``, modules in ``__pycache__`` or
        below a non-identifier directory, and packages whose own or an enclosing package's
        ``__init__`` is removed (removed on purpose: not expected to import) are left out.
        A directory at the top of site-packages adds nothing (top-level modules are checked
        anyway). Each target's distribution is the owner of its file ("" when unowned).
    """
    sites = inventory.env.site_packages
    gone = set(removed)
    if not gone:
        return ()

    def site_split(path: str) -> tuple[str, str] | None:
        for site in sites:
            if not site:
                return site, path
            if path.startswith(site + "/"):
                return site, path[len(site) + 1:]
        return None

    def is_gone(path: str) -> bool:
        probe = path
        while probe:
            if probe in gone:
                return True
            probe = probe.rpartition("/")[0]
        return False

    touched: dict[str, tuple[str, str]] = {}  # directory (root-relative) -> (site, package)
    for path in gone:
        split = site_split(path)
        if split is None:
            continue
        site, sub = split
        directory = sub.rpartition("/")[0]
        parts = directory.split("/") if directory else []
        if not parts or not all(p.isidentifier() for p in parts) or "__pycache__" in parts:
            continue
        touched[path.rpartition("/")[0]] = (site, ".".join(parts))
    if not touched:
        return ()
    found: dict[str, tuple[str, str]] = {}  # module -> (owner, site)
    staying_inits: set[str] = set()
    inits: set[str] = set()
    for entry in inventory.files:
        directory, _, filename = entry.path.rpartition("/")
        module = _module_of_file(filename)
        if module == "__init__":
            inits.add(directory)
            if not is_gone(entry.path):
                staying_inits.add(directory)
        if directory not in touched or module is None or module == "__main__":
            continue
        if is_gone(entry.path):
            continue
        site, package = touched[directory]
        name = package if module == "__init__" else f"{package}.{module}"
        found.setdefault(name, (entry.owner or "", site))
    targets = []
    for name, (owner, site) in found.items():
        # An enclosing package whose __init__ is removed was removed on purpose (minimal):
        # nothing below it is expected to import.
        parts = name.split(".")
        base = f"{site}/" if site else ""
        if any(base + "/".join(parts[:i]) in inits and base + "/".join(parts[:i]) not in staying_inits
               for i in range(1, len(parts) + 1)):
            continue
        targets.append(ModuleTarget(name, owner))
    return tuple(sorted(targets, key=lambda t: t.name))


def entry_point_targets(inventory: Inventory) -> tuple[EntryPointTarget, ...]:
    """Every entry point of every distribution (all groups), sorted by distribution, group,
    name; each is loaded through the target's importlib.metadata when checked."""
    targets = {
        EntryPointTarget(dist.name, ep.group, ep.name, ep.value)
        for dist in inventory.distributions
        for ep in dist.entry_points
    }
    return tuple(sorted(targets, key=lambda t: (t.distribution, t.group, t.name, t.value)))


# --------------------------------------------------------------------------- running probes


@lru_cache(maxsize=1)
def _worker_source() -> str:
    """The probe's source, handed to the target with ``-c`` (nothing written to disk)."""
    return inspect.getsource(_verify_worker)


@dataclass(frozen=True)
class _Result:
    __slots__ = ("error", "ok", "timed_out")
    ok: bool
    error: str
    timed_out: bool


class _StartFailed(Exception):
    """The interpreter did not start or did not report ready."""


class _TimedOut(Exception):
    pass


class _Stopped(Exception):
    """The caller was interrupted (Ctrl-C, SIGTERM): stop waiting at once."""


class _Died(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(returncode)
        self.returncode = returncode


def _status(returncode: int) -> str:
    """"exit status 3" or "SIGSEGV" for a process's return code."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _death_message(returncode: int | None) -> str:
    if returncode is None:
        return "the interpreter stopped answering"
    if returncode < 0:
        return f"crashed the interpreter ({_status(returncode)})"
    return f"ended the interpreter ({_status(returncode)})"


def _tail_line(path: Path) -> str:
    """The last non-empty line of a (possibly huge) output file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            data = fh.read()
    except OSError:
        return ""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:_MAX_ERROR] if lines else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> int:
    """Kill a process we started in its own session, and whatever it started there; reap it
    and return its status (a process that had already ended keeps its own status).

    The group is signalled only while the leader is unreaped: its pid, and so the group id,
    cannot have been reused by an unrelated process yet.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except OSError:
            pass
    return proc.wait()


def _has_ended(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it (see :func:`_kill_group`)."""
    if proc.returncode is not None:
        return True
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # no waitid (some BSDs): reaping is the only way to ask
        return proc.poll() is not None
    try:
        return waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class _Launcher:
    """How to start a probe interpreter; shared read-only by every thread."""

    def __init__(self, python: Path, paths: Sequence[str], env_root: Path, workdir: Path,
                 timeout: float) -> None:
        self.python = python
        self.paths = tuple(paths)
        self.workdir = workdir
        self.timeout = timeout
        self.env = _child_env(env_root, for_check=False)
        self._serial = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def stderr_path(self) -> Path:
        with self._lock:
            self._serial += 1
            return self.workdir / f"worker-{self._serial}.err"

    def start(self) -> _Worker:
        """A ready worker. :raises _StartFailed: with a one-line reason."""
        return _Worker(self)


class _Worker:
    """One probe interpreter, fed one task at a time."""

    def __init__(self, launcher: _Launcher) -> None:
        self.launcher = launcher
        self.stderr_path = launcher.stderr_path()
        source = _worker_source()
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [str(launcher.python), "-I", "-B", "-c", source,
                     str(task_r), str(result_w), *launcher.paths],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    cwd=launcher.workdir, env=launcher.env, pass_fds=(task_r, result_w),
                    start_new_session=True,
                )
        except OSError as exc:
            for fd in (task_r, task_w, result_r, result_w):
                os.close(fd)
            raise _StartFailed(f"cannot run {launcher.python}: {exc.strerror or exc}") from exc
        os.close(task_r)
        os.close(result_w)
        self.task_w: int | None = task_w
        self.result_r: int | None = result_r
        self.buffer = b""
        self.used = 0
        try:
            ready = self.receive(max(launcher.timeout, _START_GRACE))
            self.version = ".".join(str(v) for v in ready["ready"])
        except _Stopped:
            self.kill()
            raise
        except (_TimedOut, _Died, KeyError, TypeError) as exc:
            self.kill()
            if isinstance(exc, _TimedOut):
                reason = "did not start within the timeout"
            elif isinstance(exc, _Died) and exc.returncode is not None:
                reason = f"failed to start ({_status(exc.returncode)})"
            else:
                reason = "failed to start"
            detail = _tail_line(self.stderr_path)
            raise _StartFailed(
                f"{launcher.python} {reason}" + (f": {detail}" if detail else "")
            ) from exc

    def run(self, payload: Mapping[str, str], timeout: float) -> dict[str, Any]:
        """Send one task and wait for its reply. :raises _TimedOut, _Died:"""
        assert self.task_w is not None
        self.used += 1
        data = (json.dumps(dict(payload), sort_keys=True) + "\n").encode("utf-8")
        try:
            os.write(self.task_w, data)
        except OSError as exc:  # the interpreter is gone (BrokenPipeError)
            raise _Died(_kill_group(self.proc)) from exc
        return self.receive(timeout)

    def receive(self, timeout: float) -> dict[str, Any]:
        assert self.result_r is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if self.launcher.stop.is_set():
                raise _Stopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimedOut()
            readable, _, _ = select.select([self.result_r], [], [], min(remaining, _POLL))
            if readable:
                chunk = os.read(self.result_r, 65536)
                if not chunk:
                    # The interpreter is ending; a signal cannot change an exit under way.
                    raise _Died(_kill_group(self.proc))
                self.buffer += chunk
            elif _has_ended(self.proc):
                # Dead, yet the pipe is held open by a process the import forked.
                raise _Died(_kill_group(self.proc))
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):  # something else wrote to the pipe
            raise _Died(None)
        return message

    def _close_fds(self) -> None:
        for name in ("task_w", "result_r"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def kill(self) -> None:
        _kill_group(self.proc)
        self._close_fds()

    def close(self) -> None:
        """End the worker: end-of-input makes it ``os._exit(0)``; killed if it lingers."""
        if self.task_w is not None:
            os.close(self.task_w)
            self.task_w = None
        try:
            self.proc.wait(_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
        self._close_fds()


def _child_env(env_root: Path, *, for_check: bool) -> dict[str, str]:
    """The environment variables a probe or a check runs with.

    Both: the environment's ``bin/`` first on PATH, VIRTUAL_ENV set for a venv, PYTHONHOME
    unset (as ``activate`` does), no bytecode written (``PYTHONDONTWRITEBYTECODE`` reaches
    Python subprocesses too), a non-interactive matplotlib backend. Probes also drop every
    other ``PYTHON*`` variable (the interpreter runs with ``-I`` anyway); a user's check keeps
    them, e.g. a PYTHONPATH naming the application.
    """
    env = dict(os.environ)
    for key in list(env):
        if key == "PYTHONHOME" or (not for_check and key.startswith("PYTHON")):
            del env[key]
    bin_dir = env_root / "bin"
    if bin_dir.is_dir():
        env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", os.defpath)
    if (env_root / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(env_root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def _run_tasks(launcher: _Launcher, payloads: Sequence[Mapping[str, str]], *, jobs: int,
               recheck_timeouts: bool, count: Count = None,
               final_at_once: Sequence[bool] = ()) -> list[_Result]:
    """Run every payload in up to ``jobs`` interpreters pulling from one queue.

    Many tasks share an interpreter, which makes checking fast, but an import can fail only
    because of what an earlier import in the same process did (e.g. pip importing the stdlib
    ``distutils`` before setuptools' entry points load). So a failure counts only when the task
    was the first one its interpreter ran: otherwise that interpreter is retired and the task
    runs again, first, in a fresh one, which then carries on with the queue. A genuinely broken
    module thus costs one extra interpreter start. A timed-out or dead interpreter is replaced
    the same way; without ``recheck_timeouts`` a timeout counts at once (the baseline does not
    wait twice for a hang it will ignore anyway). A task whose ``final_at_once`` entry is true
    counts on its first failure and its interpreter carries on, and gets at most
    :data:`FIRST_TRY_TIMEOUT` seconds.
    """
    results: list[_Result | None] = [None] * len(payloads)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(payloads)):
        todo.put(index)
    stop = launcher.stop
    errors: list[BaseException] = []
    timeout = launcher.timeout
    finished_tasks = itertools.count(1)  # next() is atomic: the workers share it

    def attempt(worker: _Worker, index: int) -> tuple[_Result, bool]:
        """The task's result, and whether the worker is still usable."""
        limit = timeout
        if index < len(final_at_once) and final_at_once[index]:
            limit = min(timeout, FIRST_TRY_TIMEOUT)
        try:
            reply = worker.run(payloads[index], limit)
        except _TimedOut:
            worker.kill()
            return _Result(False, f"timed out after {limit:g}s", True), False
        except _Died as exc:
            worker.kill()
            return _Result(False, _death_message(exc.returncode), False), False
        return _Result(bool(reply.get("ok")), str(reply.get("error", "")), False), True

    def work(done: threading.Event) -> None:
        worker: _Worker | None = None
        try:
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    break
                while not stop.is_set():
                    if worker is None:
                        try:
                            worker = launcher.start()
                        except _StartFailed as exc:
                            results[index] = _Result(False, str(exc), False)
                            break
                    first = worker.used == 0
                    result, alive = attempt(worker, index)
                    if not alive:
                        worker = None
                    final = (result.ok or first or (result.timed_out and not recheck_timeouts)
                             or (index < len(final_at_once) and final_at_once[index]))
                    if final:
                        results[index] = result
                        if count is not None:
                            count(next(finished_tasks), len(payloads))
                        break
                    if worker is not None:  # tainted by earlier imports: retire it
                        worker.close()
                        worker = None
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)
        finally:
            try:
                if worker is not None:
                    if stop.is_set():
                        worker.kill()
                    else:
                        worker.close()
            finally:
                done.set()

    # Completion is signalled by events, not Thread.join: a KeyboardInterrupt that lands
    # inside join() can leave the thread marked finished while it still runs (bpo-21822).
    finished = [threading.Event() for _ in range(max(1, min(jobs, len(payloads))))]
    for n, done in enumerate(finished):
        threading.Thread(target=work, args=(done,), name=f"venv-prune-verify-{n}",
                         daemon=True).start()
    try:
        for done in finished:
            while not done.wait(_POLL):
                pass
    except BaseException:
        # Ctrl-C or SIGTERM in the caller: stop promptly, kill the interpreters, re-raise.
        stop.set()
        for done in finished:
            done.wait()
        raise
    if errors:
        raise errors[0]
    return [r if r is not None else _Result(False, "not run", False) for r in results]


def _payload(target: ModuleTarget | EntryPointTarget) -> dict[str, str]:
    if isinstance(target, ModuleTarget):
        return {"kind": "import", "name": target.name}
    return {"kind": "entry_point", "dist": target.distribution, "group": target.group,
            "name": target.name}


def _probe(launcher: _Launcher, targets: Sequence[ModuleTarget | EntryPointTarget], *,
           jobs: int, recheck_timeouts: bool, count: Count = None,
           first_try: Collection[str] = ()) -> list[_Result]:
    at_once = [isinstance(t, ModuleTarget) and t.name in first_try for t in targets]
    return _run_tasks(launcher, [_payload(t) for t in targets], jobs=jobs,
                      recheck_timeouts=recheck_timeouts, count=count, final_at_once=at_once)


def _run_check(command: str, *, env_root: Path, timeout: float, workdir: Path) -> _Result:
    """Run one ``--check`` command through the shell in the current directory."""
    out_path = workdir / "check.out"
    with open(out_path, "wb") as out:
        try:
            proc = subprocess.Popen(
                command, shell=True, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=_child_env(env_root, for_check=True),
                start_new_session=True,
            )
        except OSError as exc:
            return _Result(False, f"cannot run the shell: {exc}", False)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return _Result(False, f"timed out after {timeout:g}s", True)
        except BaseException:
            _kill_group(proc)
            raise
    if returncode == 0:
        return _Result(True, "", False)
    status = _status(returncode) if returncode > 0 else f"killed by {_status(returncode)}"
    last = _tail_line(out_path)
    return _Result(False, status + (f": {last}" if last else ""), False)


def _workdir(env_root: Path) -> tempfile.TemporaryDirectory[str]:
    """A scratch directory (probe cwd, stderr files) that is certainly outside the env."""
    scratch = _tmp.TemporaryDirectory("verify")
    real = Path(os.path.realpath(scratch.name))
    root = Path(os.path.realpath(env_root))
    if real == root or root in real.parents:
        scratch.cleanup()
        raise UsageError(
            f"the temporary directory {real} lies inside the environment {root}; "
            "set TMPDIR to a directory outside it"
        )
    return scratch


def _validate(python: Path | None, jobs: int, timeout: float) -> None:
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {jobs}")
    if timeout <= 0:
        raise UsageError(f"timeout must be positive, got {timeout}")
    if python is not None and not (os.path.exists(python) and os.access(python, os.X_OK)):
        raise UsageError(
            f"{python}: no runnable interpreter for verification; pass --python EXE or "
            "--no-verify"
        )


def _outcome(kind: str, name: str, distribution: str, result: _Result) -> Outcome:
    return Outcome(kind, name, distribution, result.ok, "" if result.ok else result.error)


# --------------------------------------------------------------------------- public entry points


def capture_baseline(
    python: str | os.PathLike[str],
    modules: Sequence[ModuleTarget],
    entry_points: Sequence[EntryPointTarget] = (),
    checks: Sequence[str] = (),
    *,
    env_root: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]] = (),
    jobs: int = 2,
    timeout: float = 60.0,
    check_timeout: float = 600.0,
    count: Count = None,
    first_try: Collection[str] = (),
) -> Baseline:
    """Record which modules import, which entry points load and which checks pass, now.

    :param python: the target interpreter (the environment's ``bin/python``, or ``--python``).
    :param modules: from :func:`importable_modules`.
    :param entry_points: from :func:`entry_point_targets`.
    :param checks: shell commands (``--check``), run in the current directory with the
        environment's ``bin/`` first on PATH; each should exit 0.
    :param env_root: the environment's root; nothing under it is written.
    :param paths: extra site directories for the interpreter (a ``--target`` directory).
    :param jobs: interpreters run in parallel.
    :param timeout: seconds one import or entry point may take before it is killed.
    :param check_timeout: seconds one check command may take.
    :param count: called with (done, total) as each import or entry point is decided.
    :param first_try: names of modules whose failure counts at once, without the re-check in
        a fresh interpreter that rules out import order: for the many extra modules beside
        removed files (:func:`touched_modules`), where a re-check costs a fresh interpreter
        re-importing its package each time and a false failure only means one module is not
        checked again.
    :raises UsageError: the interpreter is missing or does not start; ``jobs`` or ``timeout``
        is out of range.
    """
    started = time.perf_counter()
    exe = Path(python)
    root = Path(env_root)
    _validate(exe, jobs, timeout)
    extra = tuple(str(p) for p in paths)
    with _workdir(root) as scratch:
        launcher = _Launcher(exe, extra, root, Path(scratch), timeout)
        try:
            probe = launcher.start()
        except _StartFailed as exc:
            raise UsageError(
                f"cannot verify: {exc}; pass a working --python EXE or --no-verify"
            ) from exc
        version = probe.version
        probe.close()
        targets: list[ModuleTarget | EntryPointTarget] = [*modules, *entry_points]
        # A hang in the baseline is not re-run: a thing broken before pruning is ignored anyway.
        results = _probe(launcher, targets, jobs=jobs, recheck_timeouts=False, count=count,
                         first_try=frozenset(first_try))
        outcomes = [
            _outcome("import", t.name, t.distribution, r) if isinstance(t, ModuleTarget)
            else _outcome("entry_point", t.label, t.distribution, r)
            for t, r in zip(targets, results)
        ]
        for command in checks:
            result = _run_check(command, env_root=root, timeout=check_timeout,
                                workdir=Path(scratch))
            outcomes.append(_outcome("check", command, "", result))
    return Baseline(
        python=str(exe),
        python_version=version,
        paths=extra,
        modules=tuple(modules),
        entry_points=tuple(entry_points),
        checks=tuple(checks),
        outcomes=tuple(outcomes),
        seconds=round(time.perf_counter() - started, 3),
    )


def verify(
    python: str | os.PathLike[str],
    baseline: Baseline,
    *,
    env_root: str | os.PathLike[str],
    jobs: int = 2,
    timeout: float = 60.0,
    check_timeout: float = 600.0,
    count: Count = None,
) -> VerifyResult:
    """Check again everything that worked in ``baseline``; report what fails now.

    Only things that succeeded in the baseline are run (the rest are ignored). A module or
    entry point that fails in a shared interpreter is re-checked first in a fresh one, so a
    failure is real. If the interpreter no longer starts (or is gone), every module and entry
    point is a failure with that reason: the caller rolls back rather than stopping with an
    error. Parameters as for :func:`capture_baseline`; ``baseline.paths`` are reused.

    :raises UsageError: ``jobs`` or ``timeout`` out of range.
    """
    started = time.perf_counter()
    exe = Path(python)
    root = Path(env_root)
    _validate(None, jobs, timeout)
    working = {(o.kind, o.name) for o in baseline.outcomes if o.ok}
    targets: list[ModuleTarget | EntryPointTarget] = [
        *(m for m in baseline.modules if ("import", m.name) in working),
        *(e for e in baseline.entry_points if ("entry_point", e.label) in working),
    ]
    checks = [c for c in baseline.checks if ("check", c) in working]
    failures: list[Failure] = []
    with _workdir(root) as scratch:
        launcher = _Launcher(exe, baseline.paths, root, Path(scratch), timeout)
        down: str | None = None
        if targets:
            try:
                launcher.start().close()
            except _StartFailed as exc:
                down = f"the interpreter no longer starts: {exc}"
        if down is not None:
            results = [_Result(False, down, False)] * len(targets)
        else:
            results = _probe(launcher, targets, jobs=jobs, recheck_timeouts=True, count=count)
        for target, result in zip(targets, results):
            if result.ok:
                continue
            if isinstance(target, ModuleTarget):
                failures.append(Failure("import", target.name, target.distribution, result.error))
            else:
                failures.append(Failure("entry_point", target.label, target.distribution,
                                        result.error))
        for command in checks:
            result = _run_check(command, env_root=root, timeout=check_timeout,
                                workdir=Path(scratch))
            if not result.ok:
                failures.append(Failure("check", command, "", result.error))
    order = {kind: n for n, kind in enumerate(KINDS)}
    failures.sort(key=lambda f: (order[f.kind], f.name, f.distribution))
    return VerifyResult(
        failures=tuple(failures),
        checked=len(targets) + len(checks),
        seconds=round(time.perf_counter() - started, 3),
        baseline_seconds=baseline.seconds,
    )
