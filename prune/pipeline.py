"""The whole job in one call: locate, scan, plan, then render or apply with verification.

This is what the command line runs and what build scripts call when they want the
default behaviour; the individual steps stay available for finer control.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from ._lock import env_lock
from ._signals import SignalGate, signal_name, signal_number
from .apply import ApplyResult, Failure, Replacement, apply_plan, ensure_no_pending
from .env import Environment, locate
from .errors import Interrupted, PruneError, UsageError, VerificationFailed
from .layers import layer_note
from .model import Plan
from .plan import PlanOptions, build_plan, check_options, check_strings
from .profiles import load_profile
from .report import Extras
from .scan import scan

__all__ = ["PruneRequest", "Outcome", "run", "ImportVerifier"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PruneRequest:
    """Everything a prune needs, as the command line or a build script states it."""

    path: str
    profile: str = "standard"
    options: PlanOptions = PlanOptions()
    dry_run: bool = False
    verify: bool = True
    checks: tuple[str, ...] = ()
    python: Optional[str] = None
    strip: Optional[bool] = None
    traces: tuple[str, ...] = ()
    jobs: int = 2
    timeout: float = 120.0
    #: Time the REQUESTED distributions' imports before and after (the report's start-up line).
    measure_startup: bool = True
    #: False when the caller times the "after" side itself (the command, after a compile).
    startup_after: bool = True


@dataclass(frozen=True)
class Outcome:
    """A finished run: the plan, what applying it did (None for a dry run), report extras."""

    plan: Plan
    result: Optional[ApplyResult]
    extras: Extras
    warnings: tuple[str, ...] = field(default=())


class ImportVerifier:
    """Adapter between the transactional apply and :mod:`prune.verify`."""

    def __init__(self, env: Environment, plan: Plan, checks: Sequence[str], *,
                 jobs: int, timeout: float, progress: Optional[Progress] = None,
                 traced_checks: Sequence[str] = (), roots: Optional[Sequence[str]] = None) -> None:
        """``roots``: the root distributions (``--root``; default: those installed by name,
        REQUESTED), whose top-level modules and entry points are checked unless a rule (not
        a trace) removes them on purpose; ``traced_checks``: the checks that re-run traced
        commands (minimal), named as such when they fail before pruning."""
        from . import verify

        assert env.python is not None
        self._verify = verify
        self._env = env
        self._python = env.python
        inventory = plan.inventory
        gone = _RemovedModules(plan)
        # Entry points must keep loading unless a trace licensed removing their module
        # (minimal drops untraced console scripts' modules on purpose).
        traced_gone = _RemovedModules(plan, trace_only=True)
        # A root's modules are expected to import unless a rule removed them on purpose: a
        # trace that never reached a root does not license removing it (issue 15, case 8).
        ruled_gone = _RemovedModules(plan, rules_only=True)
        if roots is None:
            roots = [d.name for d in inventory.distributions if d.requested]
        root_set = set(roots)
        removed = {d.name: d.reason for d in plan.distributions if d.remove}
        # What the plan removes on purpose (a whole distribution, a module whose files it
        # removes) is not expected to import afterwards; everything else is.
        modules: dict[str, Any] = {}
        on_purpose = [{"kind": "distribution", "name": name, "why": why}
                      for name, why in sorted(removed.items())]
        for m in verify.importable_modules(inventory):
            if m.distribution in removed:
                continue
            if m.distribution in root_set:
                if m.name in ruled_gone:
                    on_purpose.append({"kind": "module", "name": m.name,
                                       "why": f"a rule removes it from root {m.distribution}"})
                    continue
            elif m.name in gone:
                continue
            modules[m.name] = m
        # Every package and module beside a removed file (issue 15, kind E); bytecode caches
        # are removed only after verification.
        staged = [a.path for a in plan.actions if a.rule != "bytecode"]
        touched = [m for m in verify.touched_modules(inventory, staged)
                   if m.name not in modules and m.name not in gone]
        self._touched = frozenset(m.name for m in touched)
        modules.update((m.name, m) for m in touched)
        self._modules = tuple(sorted(modules.values(), key=lambda m: m.name))
        self._eps = tuple(e for e in verify.entry_point_targets(inventory)
                          if e.distribution not in removed
                          and (e.distribution in root_set
                               or e.value.split(":", 1)[0].strip() not in traced_gone))
        self.not_verified = tuple(on_purpose)
        # A --target / site-packages directory is not on the interpreter's path by itself.
        self._paths = tuple(str(p) for p in env.site_paths()) if env.kind == "site-packages" else ()
        self._checks = tuple(checks)
        self._traced_checks = frozenset(traced_checks)
        self._jobs = jobs
        self._timeout = timeout
        self.baseline: Any = None
        self._progress = progress
        self.seconds: float = 0.0
        self.modules_ok = 0

    def before(self) -> None:
        """:raises UsageError: a check already fails before pruning (it could never tell a
        break from its own failure, so it is refused rather than ignored); nothing changed."""
        self.baseline = self._verify.capture_baseline(
            self._python, self._modules, self._eps, self._checks,
            env_root=self._env.root, paths=self._paths, jobs=self._jobs, timeout=self._timeout,
            count=self._counter("checking imports before pruning"),
            first_try=self._touched,
        )
        self.modules_ok = len(getattr(self.baseline, "ok_modules", ()) or ())
        failing = [o for o in self.baseline.outcomes if o.kind == "check" and not o.ok]
        if failing:
            first = failing[0]
            traced = first.name in self._traced_checks
            what = (f"the traced command {first.name!r} (re-run by minimal)" if traced
                    else f"--check {first.name!r}")
            more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
            fix = ("trace it again on this environment" if traced
                   else "fix the command or the environment")
            raise UsageError(f"{what} already fails before pruning ({first.error}){more}; "
                             f"{fix}, then run again (nothing was changed)")

    def summary(self) -> dict[str, Any]:
        """What verification covered, for the report: counts of the modules, entry points and
        checks that worked before pruning (so were checked again), how many modules were
        added because a file beside them was removed, and what was not verified because the
        plan removes it on purpose."""
        working = self.baseline.working if self.baseline is not None else ()
        count = {kind: sum(1 for o in working if o.kind == kind)
                 for kind in ("import", "entry_point", "check")}
        touched = sum(1 for o in working if o.kind == "import" and o.name in self._touched)
        return {"modules": count["import"], "touched_modules": touched,
                "entry_points": count["entry_point"], "checks": count["check"],
                "not_verified": list(self.not_verified)}

    def after(self) -> Sequence[Failure]:
        res = self._verify.verify(self._python, self.baseline, env_root=self._env.root,
                                  jobs=self._jobs, timeout=self._timeout, count=self._counter("verifying"))
        return [Failure(f.kind, f.name, f.distribution, f.error) for f in res.failures]


    def _counter(self, label: str) -> Optional[Callable[[int, int], None]]:
        progress = self._progress
        if progress is None:
            return None
        return lambda done, total: progress(f"{label} {done}/{total}")


class _RemovedModules:
    """Answers "does the plan remove this module on purpose?" for dotted module names.

    A module is removed on purpose when its file (``x.py``, ``x/__init__.py``, an extension
    ``x.*.so``) or a directory above it is the target of an action. Verification does not
    expect such modules (or entry points into them) to import afterwards; everything else
    must. minimal removes untraced submodules this way.
    """

    def __init__(self, plan: Plan, *, trace_only: bool = False, rules_only: bool = False) -> None:
        import bisect

        self._bisect = bisect
        subs: set[str] = set()
        for a in plan.actions:
            if (trace_only and not a.trace) or (rules_only and a.trace):
                continue
            for site in plan.inventory.env.site_packages:
                if not site:
                    subs.add(a.path)
                elif a.path.startswith(site + "/"):
                    subs.add(a.path[len(site) + 1:])
        self._subs = subs
        self._sorted = sorted(subs)
        self._trace_only = trace_only

    def __contains__(self, module: str) -> bool:
        rel = module.replace(".", "/")
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if "/".join(parts[:i]) in self._subs:
                return True
            # A trace that licensed removing a package's __init__.py saw no import of the
            # package, so none of anything below it either (networkx's loopback backend
            # module stays, as entry points do, under a networkx that minimal removed).
            if self._trace_only and i < len(parts) and "/".join(parts[:i]) + "/__init__.py" in self._subs:
                return True
        if f"{rel}.py" in self._subs or f"{rel}/__init__.py" in self._subs:
            return True
        i = self._bisect.bisect_left(self._sorted, rel + ".")
        while i < len(self._sorted) and self._sorted[i].startswith(rel + "."):
            if self._sorted[i].endswith((".so", ".pyd")):
                return True
            i += 1
        return False


def _load_traces(paths: Sequence[str]) -> tuple[PlanOptions, list[str]]:
    """Merge ``--keep-from`` traces into plan options, and the traced commands as shell
    checks (``cd CWD && ARGV``) that minimal re-runs during verification."""
    import shlex

    from .trace import load_trace

    used: set[str] = set()
    dirs: set[str] = set()
    modules: set[str] = set()
    checks: list[str] = []
    commands: list[tuple[str, ...]] = []
    for p in paths:
        t = load_trace(Path(p))
        if not any(c.processes for c in t.commands) and not t.used_paths():
            # An empty trace licenses nothing: minimal would remove everything (issue 15,
            # case 8: 98.6% of an environment, then `import requests` failed).
            raise UsageError(
                f"--keep-from {p}: the trace reached no Python process of the environment "
                "(\"processes\": 0, nothing recorded); trace a command that runs the "
                "environment's python (not with -I, -E or -S), then pass the new trace"
            )
        # Files actually used (not merely listed): botocore lists every service directory
        # but reads only the models it loads.
        used |= set(t.used_paths())
        dirs |= set(t.dirs)
        modules |= set(t.module_names())
        for c in t.traced_commands():
            commands.append(tuple(c.argv))
            check = " ".join(shlex.quote(a) for a in c.argv)
            if c.cwd:
                check = f"cd {shlex.quote(c.cwd)} && {check}"
            if c.exit_code == 0 and check not in checks:
                checks.append(check)
    opts = PlanOptions(trace_paths=frozenset(used), trace_dirs=frozenset(dirs),
                       trace_modules=frozenset(modules), has_trace=True,
                       trace_commands=tuple(commands))
    return opts, checks


def run(request: PruneRequest, *, progress: Optional[Progress] = None) -> Outcome:
    """Prune (or dry-run) one environment.

    :raises EnvironmentNotFound, UsageError, ProfileError: bad input; nothing changed.
    :raises PendingJournal: an interrupted run awaits ``recover``.
    :raises Busy: another run holds the environment's lock.
    :raises VerificationFailed: a break was found and rolled back (``.outcome`` has the report).
    :raises ApplyFailed: the operating system refused a step; everything was rolled back.
    """
    from . import _tmp

    check_request(request)
    if request.checks and not request.verify and not request.dry_run:
        # A check runs during verification: with --no-verify it would be dropped silently.
        raise UsageError("--check runs during verification, which --no-verify turns off; "
                         "drop one of them")
    _tmp.clean_stale()  # scratch directories of runs that were killed
    env = locate(request.path, python=request.python)
    profile = load_profile(request.profile)
    # One run at a time per environment, from before the scan to the commit: a dry run
    # shares the lock (it changes nothing, but must not plan a half-staged tree).
    # SIGTERM (a cancelled docker build) ends a run as Ctrl-C does, in every phase: before the
    # transaction nothing has changed, inside it apply rolls back or finishes the commit, after
    # it the prune is complete (issue 16: SIGTERM outside staging killed the run without a word).
    with SignalGate(), env_lock(env.root, shared=request.dry_run):
        ensure_no_pending(env)
        committed: list[ApplyResult] = []  # filled the moment apply_plan returns
        try:
            return _run_locked(request, env, profile, progress, committed)
        except KeyboardInterrupt as exc:
            signum = signal_number(exc)
            if committed:
                raise Interrupted(f"{signal_name(signum)} after the prune was committed: the prune is "
                                  "complete; its report was not made", signum) from None
            raise Interrupted(f"{signal_name(signum)}: stopped before anything was changed", signum) from None


def _run_locked(request: PruneRequest, env: Environment, profile: Any,
                progress: Optional[Progress], committed: list[ApplyResult]) -> Outcome:
    from .bytecode import finish_pending

    warnings: list[str] = []
    if request.dry_run:
        _refuse_pending_compile(env)
    else:
        settled = finish_pending(env)  # before the scan, which would see its scratch tree
        if settled:
            warnings.append(settled)
    if _is_own_environment(env):
        warnings.append(f"{env.root} is the environment venv-prune itself runs from; "
                        "pruning it may remove the tool's own dependencies")
    options = request.options
    trace_checks: list[str] = []
    if request.traces:
        topts, trace_checks = _load_traces(request.traces)
        options = replace(options, trace_paths=topts.trace_paths, trace_dirs=topts.trace_dirs,
                          trace_modules=topts.trace_modules, has_trace=True,
                          trace_commands=topts.trace_commands)
    started = time.perf_counter()
    inventory = scan(env, progress=progress)
    scanned = time.perf_counter()
    plan = build_plan(inventory, profile, options)
    before_apply = [("scan", scanned - started), ("plan", time.perf_counter() - scanned)]
    strip = profile.strip if request.strip is None else request.strip
    layer = layer_note(env.root)

    if request.dry_run:
        estimate: tuple[dict[str, Any], ...] = ()
        if strip:
            estimate, strip_warning = _strip_estimate(env, plan)
            warnings += [strip_warning] if strip_warning else []
        extras = Extras(dry_run=True, verification="not run (dry run)", warnings=tuple(warnings),
                        stripped=estimate, layer_note=layer)
        return Outcome(plan, None, extras, tuple(warnings))

    verifier: Optional[ImportVerifier] = None
    status = "passed"
    if not request.verify:
        status = "skipped (--no-verify)"
    elif env.python is None:
        status = ("skipped: no interpreter found for this environment; "
                  "pass --python EXE to verify a --target or site-packages directory")
        warnings.append(f"verification {status}")
    else:
        checks = list(request.checks)
        if profile.trace_minimal:
            checks += [c for c in trace_checks if c not in checks]
        # The roots whose modules must keep importing (--root, else what was installed by
        # name): the plan's, so that verification and minimal agree.
        roots = list(plan.roots)
        verifier = ImportVerifier(env, plan, checks, jobs=request.jobs, timeout=request.timeout,
                                  progress=progress, traced_checks=trace_checks if profile.trace_minimal else (),
                                  roots=roots)

    prepare = None
    strip_problems: list[str] = []
    if strip:
        prepare, strip_warning = _strip_preparer(env, plan, progress, request.jobs, strip_problems)
        if strip_warning:
            warnings.append(strip_warning)

    startup = None
    if request.measure_startup:
        from . import startup as startupmod

        if progress:
            progress("timing the imports of the distributions installed by name (start-up)")
        timed = time.perf_counter()
        startup = startupmod.measure_before(env, plan, options.bytecode or profile.bytecode)
        before_apply.append(("startup", time.perf_counter() - timed))
    try:
        try:
            result = apply_plan(plan, verifier=verifier, prepare=prepare, progress=progress)
            committed.append(result)
        finally:
            if strip_problems:
                warnings.append(_strip_summary(strip_problems))
    except VerificationFailed as exc:
        res: ApplyResult = exc.result  # type: ignore[attr-defined]
        extras = Extras(
            dry_run=False, verification="failed (rolled back)",
            failures=tuple({"kind": f.kind, "name": f.name, "distribution": f.distribution,
                            "error": f.error, "rules": list(f.rules)} for f in res.failures),
            timings=res.timings, warnings=tuple(warnings), layer_note=layer,
        )
        exc.outcome = Outcome(plan, res, extras, tuple(warnings))  # type: ignore[attr-defined]
        raise
    stripped = tuple(
        {"path": r.path, "bytes_saved": r.bytes_saved, "detail": r.detail} for r in result.replacements
    )
    timings = before_apply + [t for t in result.timings if t[0] != "total"]
    if startup is not None and request.startup_after:
        timed = time.perf_counter()
        from . import startup as startupmod

        startup = startupmod.measure_after(env, startup)
        timings = [(k, v + time.perf_counter() - timed if k == "startup" else v) for k, v in timings]
    # "total" is this call's wall time, scan to the end (the command adds what follows).
    timings.append(("total", time.perf_counter() - started))
    extras = Extras(dry_run=False, verification=status, timings=tuple(timings), stripped=stripped,
                    warnings=tuple(warnings), startup=startup, layer_note=layer,
                    verified=verifier.summary() if verifier is not None else None)
    return Outcome(plan, result, extras, tuple(warnings))


def _refuse_pending_compile(env: Environment) -> None:
    """A dry run changes nothing, so it does not settle a killed compile either."""
    import os

    from .bytecode import scratch_dir
    from .errors import PendingJournal

    if os.path.lexists(scratch_dir(env)):
        raise PendingJournal(f"an interrupted --bytecode compile left {scratch_dir(env)}; run "
                             f"'venv-prune recover {env.root}' (or prune again) to settle it")


def _is_own_environment(env: Environment) -> bool:
    try:
        return Path(sys.prefix).resolve() == env.root
    except OSError:
        return False


def _strip_estimate(env: Environment, plan: Plan) -> tuple[tuple[dict[str, Any], ...], str]:
    """What ``strip`` would save on the files that stay, for a dry run: the sizes of the
    sections ``strip --strip-unneeded`` drops (``.symtab``, ``.strtab``, ``.debug_*``), read
    from the ELF section headers of the files a real run would strip. Nothing is stripped.
    A real run may save a little less: it keeps a copy that fails its load check."""
    from . import strip as stripmod

    if not stripmod.strip_available():
        return (), "no 'strip' program on this machine (install binutils); a real run would not strip"
    candidates = stripmod.find_strip_candidates(env.root, [f.path for f in plan.staying() if not f.is_link])
    return tuple({"path": c.path, "bytes_saved": c.removable, "detail": "estimate: section sizes"}
                 for c in candidates if c.strippable), ""


def _strip_summary(problems: Sequence[str]) -> str:
    """One warning line for the files strip could not handle (issue 16: ENOSPC was silent)."""
    first = sorted(problems)[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{len(problems)} file{'s' if len(problems) != 1 else ''} left unstripped: {first}{more}"


def _strip_preparer(
    env: Environment, plan: Plan, progress: Optional[Progress], jobs: int = 2,
    problems: Optional[list[str]] = None,
) -> tuple[Optional[Callable[[Path], Sequence[Replacement]]], str]:
    """Build the callback that strips copies of ELF files that stay, checking each copy.
    What could not be stripped (strip failed, the disk is full, a copy does not load) is
    appended to ``problems``, one line each."""
    problems = [] if problems is None else problems
    try:
        from . import strip as stripmod
    except ImportError:  # pragma: no cover - module ships with the package
        return None, "stripping unavailable"
    if not stripmod.strip_available():
        return None, "no 'strip' program on this machine (install binutils); debug symbols were not stripped"
    paths = [f.path for f in plan.staying() if not f.is_link]

    def prepare(scratch: Path) -> list[Replacement]:
        candidates = stripmod.find_strip_candidates(env.root, paths)
        todo = [c for c in candidates if c.strippable]
        if progress:
            progress(f"stripping {len(todo)} ELF files (copies, each re-checked)")

        def strip_one(i: int, cand: Any) -> Optional[tuple[Any, Path, int]]:
            dst = scratch / f"strip{i:06d}"
            try:
                saved = stripmod.strip_copy(env.root / cand.path, dst)
            except Exception as exc:  # noqa: BLE001 - a file strip cannot handle stays as it is
                with contextlib.suppress(OSError):
                    os.unlink(dst)
                if isinstance(exc, PruneError):  # names the file and says it stays unstripped
                    problems.append(str(exc))
                else:
                    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    problems.append(f"{cand.path}: {why}")
                return None
            if saved <= 0:
                os.unlink(dst)
                return None
            return cand, dst, saved

        from concurrent.futures import ThreadPoolExecutor

        workers = max(1, jobs)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            stripped = []
            for n, r in enumerate(pool.map(lambda ic: strip_one(*ic), enumerate(todo)), 1):
                if progress:
                    progress(f"stripping {n}/{len(todo)}")
                if r is not None:
                    stripped.append(r)
        # Each check starts an interpreter (about a second with numpy imported): the copies
        # are checked in one batch per core, and a failing batch is split until the file
        # that fails is found (see strip.check_loads_many). origin=src: a copy must resolve
        # $ORIGIN libraries (torch/lib) as the original does.
        sys_path = env.site_paths() if env.kind == "site-packages" else ()
        batches = [stripped[k::workers] for k in range(workers)]

        def check(batch: list[tuple[Any, Path, int]]) -> list[Optional[str]]:
            return stripmod.check_loads_many(
                env.python, [(dst, cand.module, env.root / cand.path) for cand, dst, _ in batch],
                sys_path=sys_path)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(check, batches))
        ok: dict[str, Replacement] = {}
        for batch, errors in zip(batches, verdicts):
            for (cand, dst, saved), err in zip(batch, errors):
                if err is not None:
                    os.unlink(dst)
                    problems.append(f"{cand.path}: the stripped copy did not load ({err})")
                    continue
                ok[cand.path] = Replacement(cand.path, dst, saved, "strip --strip-unneeded")
        # Results keep the candidates' order, so plans and reports stay stable.
        return [ok[c.path] for c in todo if c.path in ok]

    return prepare, ""


def _site_sub(path: str, env: Environment) -> str:
    for site in env.site_packages:
        if not site:
            return path
        if path.startswith(site + "/"):
            return path[len(site) + 1:]
    return path


def check_request(request: PruneRequest) -> None:
    """Validate a request before anything is read (one clear line each).

    :raises UsageError: a field has the wrong type (a bare string where a tuple of strings
        belongs, a path that is not a string) or a value out of range.
    """
    if not isinstance(request.path, (str, os.PathLike)):
        raise UsageError(f"PruneRequest(path=...) takes a path string, not {request.path!r}")
    if not isinstance(request.profile, (str, os.PathLike)):
        raise UsageError(f"PruneRequest(profile=...) takes a profile name or a .toml path, not {request.profile!r}")
    if not isinstance(request.options, PlanOptions):
        raise UsageError(f"PruneRequest(options=...) takes a PlanOptions, not {request.options!r}")
    check_strings("PruneRequest", checks=request.checks, traces=request.traces)
    check_options(request.options)
    if request.jobs < 1:
        raise UsageError("--jobs must be at least 1")
