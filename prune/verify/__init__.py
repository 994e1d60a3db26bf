"""Baseline and verification: does everything that imported before pruning still import?

Runs the *target* environment's own interpreter (any CPython 3.8+, not necessarily the one
running venv-prune) on a small probe script, :mod:`._worker`, passed with ``-c``.
Three kinds of thing are checked:

- ``import``: each top-level module of each distribution (see :func:`importable_modules`);
- ``entry_point``: each entry point, found through the target's ``importlib.metadata`` and
  loaded (module imported, attribute resolved), as console scripts and plugin systems do;
- ``check``: each user ``--check`` shell command, which must exit 0.

:func:`capture_baseline` records what works before pruning; :func:`verify` reruns what worked
and reports what no longer does. Things already broken in the baseline are ignored.

The rooms: :mod:`.targets` (what to import), :mod:`.pool` (the probe interpreters and their
queue: many imports share one interpreter, ``jobs`` interpreters pull from one queue, each task
has its own deadline, and a failure seen in a shared interpreter is re-checked first in a fresh
one before it counts), :mod:`._worker` (the probe itself) and :mod:`._process` (child
processes and the ``--check`` commands).

Nothing is written into the environment: the interpreter runs with ``-I -B`` (no user site, no
``PYTHONPATH``, no bytecode caches, but with the environment's own site-packages), from a
temporary working directory outside the environment, with stdin closed and stdout discarded;
results travel on a dedicated pipe.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _tmp
from ..errors import UsageError
from ..model import Failure
from ._process import Result, run_check
from .pool import Count, Launcher, StartFailed, probe, replay
from .targets import EntryPointTarget, ModuleTarget, entry_point_targets, importable_modules, touched_modules

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


@dataclass(frozen=True)
class Outcome:
    """What one check gave.

    ``kind`` is one of :data:`KINDS`; ``name`` is the module name, ``group:name`` for an entry
    point, or the command for a check. ``error`` is "" when ``ok``, else one line: the last
    line of the traceback ("ModuleNotFoundError: No module named 'pkg.core'"), "timed out
    after 60s", "crashed the interpreter (SIGSEGV)", or a check's exit status.
    """

    kind: str
    name: str
    distribution: str
    ok: bool
    error: str
    #: For a module or entry point that worked in the baseline: what its interpreter had run
    #: before it there, as (kind, name) labels, in order (empty: it ran first).
    after: tuple[tuple[str, str], ...] = ()


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


def _label(target: ModuleTarget | EntryPointTarget) -> tuple[str, str]:
    """(kind, name) of a target, as its outcome and failure carry them."""
    if isinstance(target, ModuleTarget):
        return "import", target.name
    return "entry_point", target.label


def _run_checks(commands: Sequence[str], root: Path, timeout: float, scratch: Path) -> list[tuple[str, Result]]:
    """Each ``--check`` command with its result, in order."""
    return [(command, run_check(command, env_root=root, timeout=timeout, workdir=scratch))
            for command in commands]


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
        launcher = Launcher(exe, extra, root, Path(scratch), timeout)
        try:
            first = launcher.start()
        except StartFailed as exc:
            raise UsageError(
                f"cannot verify: {exc}; pass a working --python EXE or --no-verify"
            ) from exc
        version = first.version
        first.close()
        targets: list[ModuleTarget | EntryPointTarget] = [*modules, *entry_points]
        # A hang in the baseline is not re-run: a thing broken before pruning is ignored anyway.
        results = probe(launcher, targets, jobs=jobs, recheck_timeouts=False, count=count,
                        first_try=frozenset(first_try))
        ran = [(*_label(t), t.distribution, r) for t, r in zip(targets, results)]
        ran += [("check", c, "", r) for c, r in _run_checks(checks, root, check_timeout, Path(scratch))]
        labels = [_label(t) for t in targets]
    return Baseline(
        python=str(exe),
        python_version=version,
        paths=extra,
        modules=tuple(modules),
        entry_points=tuple(entry_points),
        checks=tuple(checks),
        outcomes=tuple(Outcome(kind, name, dist, r.ok, "" if r.ok else r.error,
                               tuple(labels[i] for i in r.before) if r.ok else ())
                       for kind, name, dist, r in ran),
        seconds=round(time.perf_counter() - started, 3),
    )


#: What an import says when it ran into a module that is still initializing: a circular
#: import, which only the order of imports decides, not a removed file.
_ORDER_DEPENDENT = "partially initialized module"


def _order_dependent_passes(launcher: Launcher, baseline: Baseline,
                            everything: Sequence[ModuleTarget | EntryPointTarget],
                            targets: Sequence[ModuleTarget | EntryPointTarget],
                            results: list[Result]) -> list[Result]:
    """``results`` with each circular-import failure re-asked as the baseline asked it.

    Some modules import only after something else did: scipy 1.17's
    ``scipy.linalg._matfuncs_sqrtm_triu`` (pythran-built) fails with "cannot import name
    'within_block_loop' from partially initialized module" when imported first, before any
    pruning, and imports after its sibling ``_matfuncs_sqrtm``. The baseline counts it as
    working when its interpreter happened to import the sibling first; the check after
    pruning re-asks a failure first in a fresh interpreter, so it failed there, and the
    scientific-stack benchmark rolled back on a loaded machine. Such a failure is re-asked
    once more in a fresh interpreter that first runs what the baseline's interpreter had run
    before it; it counts only if it fails there too. Only a circular-import error is
    re-asked: a removed file's error (ModuleNotFoundError, FileNotFoundError) always counts.
    """
    by_label = {_label(t): t for t in everything}
    after = {(o.kind, o.name): o.after for o in baseline.outcomes if o.ok}
    out = list(results)
    for i, (target, result) in enumerate(zip(targets, results)):
        before = after.get(_label(target), ())
        if result.ok or not before or _ORDER_DEPENDENT not in result.error:
            continue
        again = replay(launcher, [by_label[b] for b in before if b in by_label], target)
        if again is not None and again.ok:
            out[i] = again
    return out


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
    everything: list[ModuleTarget | EntryPointTarget] = [*baseline.modules, *baseline.entry_points]
    targets = [t for t in everything if _label(t) in working]
    checks = [c for c in baseline.checks if ("check", c) in working]
    failures: list[Failure] = []
    with _workdir(root) as scratch:
        launcher = Launcher(exe, baseline.paths, root, Path(scratch), timeout)
        down: str | None = None
        if targets:
            try:
                launcher.start().close()
            except StartFailed as exc:
                down = f"the interpreter no longer starts: {exc}"
        if down is not None:
            results = [Result(False, down, False)] * len(targets)
        else:
            results = probe(launcher, targets, jobs=jobs, recheck_timeouts=True, count=count)
            results = _order_dependent_passes(launcher, baseline, everything, targets, results)
        failures += [Failure(*_label(t), t.distribution, r.error) for t, r in zip(targets, results) if not r.ok]
        failures += [Failure("check", c, "", r.error)
                     for c, r in _run_checks(checks, root, check_timeout, Path(scratch)) if not r.ok]
    order = {kind: n for n, kind in enumerate(KINDS)}
    failures.sort(key=lambda f: (order[f.kind], f.name, f.distribution))
    return VerifyResult(
        failures=tuple(failures),
        checked=len(targets) + len(checks),
        seconds=round(time.perf_counter() - started, 3),
        baseline_seconds=baseline.seconds,
    )
