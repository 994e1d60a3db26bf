"""The whole job in one call (:func:`run`): check the request, read its files, then prune the
environment (or a copy of it) under its lock, step by step, and finish what follows the commit.

The steps of one prune, in order (:class:`_Job`): settle what earlier runs left; merge the
traces; scan and plan; then either the dry run's report, or verification set up, stripping
prepared, start-up timed, the transaction (stage, verify, commit), and the report's extras.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

from .._gc import paused_gc
from .._lock import env_lock
from .._signals import SignalGate, signal_name, signal_number
from ..apply import ApplyResult, apply_plan, ensure_no_pending
from ..env import Environment, locate
from ..errors import Interrupted, VerificationFailed
from ..layers import layer_note
from ..model import Plan, Progress
from ..plan import PlanOptions, build_plan
from ..profiles import Profile, load_profile
from ..report import Extras
from ..scan import FindWalk, scan
from ..sources import DiskSources
from .finish import finished, pruned_copy
from .inputs import RequirementRoots, TracedOptions, load_traces, requirement_roots
from .request import Outcome, PruneRequest, check_request
from .stripping import Preparer, strip_estimate, strip_preparer, strip_summary
from .verifier import ImportVerifier

__all__ = ["run"]


def run(request: PruneRequest, *, progress: Optional[Progress] = None, walk: Optional[FindWalk] = None) -> Outcome:
    """Prune (or dry-run) one environment, the whole job as the command line does it:
    requirements roots, ``--output`` (prune a copy), verification, stripping, the
    transaction, ``--bytecode compile``, ``--relocate`` and the size gate.

    :param progress: called with short status lines.
    :param walk: a walk of the environment already under way (:func:`prune.scan.prestart`);
        used when it is a walk of what is scanned, else left to its owner to close.
    :raises EnvironmentNotFound, UsageError, ProfileError: bad input; nothing changed.
    :raises PendingJournal: an interrupted run awaits ``recover``.
    :raises Busy: another run holds the environment's lock.
    :raises VerificationFailed: a break was found and rolled back (``.outcome`` has the report).
    :raises ApplyFailed: the operating system refused a step; everything was rolled back.
    :raises Interrupted: SIGINT or SIGTERM; when it came after the commit (during ``--bytecode
        compile``), ``.outcome`` has the committed prune's report.
    """
    check_request(request)
    env = locate(request.path, python=request.python)
    roots = requirement_roots(request.requirements, request.extras, env)
    if request.output and not request.dry_run:
        def prune_copy(copy: Environment) -> Outcome:
            return _prune(request, copy, roots, progress, None)

        outcome = pruned_copy(request, env, prune_copy, progress)
    else:
        outcome = _prune(request, env, roots, progress, walk)
    return finished(request, outcome, progress)


def _prune(request: PruneRequest, env: Environment, roots: RequirementRoots,
           progress: Optional[Progress], walk: Optional[FindWalk]) -> Outcome:
    """Prune (or dry-run) ``env`` in place, holding its lock from before the scan to the commit."""
    from .. import _tmp

    _tmp.clean_stale()  # scratch directories of runs that were killed
    profile = load_profile(request.profile)
    # One run at a time per environment, from before the scan to the commit: a dry run
    # shares the lock (it changes nothing, but must not plan a half-staged tree).
    # SIGTERM (a cancelled docker build) ends a run as Ctrl-C does, in every phase: before the
    # transaction nothing has changed, inside it apply rolls back or finishes the commit, after
    # it the prune is complete (issue 16: SIGTERM outside staging killed the run without a word).
    with SignalGate(), env_lock(env.root, shared=request.dry_run):
        ensure_no_pending(env)
        job = _Job(request, env, profile, progress)
        try:
            return job.run(roots, walk)
        except KeyboardInterrupt as exc:
            signum = signal_number(exc)
            if job.committed:
                raise Interrupted(f"{signal_name(signum)} after the prune was committed: the prune is "
                                  "complete; its report was not made", signum) from None
            raise Interrupted(f"{signal_name(signum)}: stopped before anything was changed", signum) from None


class _Job:
    """One prune of one environment, under its lock: each method is one step, in order.

    ``warnings`` and ``timings`` collect what the report says, step by step; ``committed``
    turns true the moment the transaction has committed (a signal after that rolls nothing back).
    """

    def __init__(self, request: PruneRequest, env: Environment, profile: Profile,
                 progress: Optional[Progress]) -> None:
        self.request = request
        self.env = env
        self.profile = profile
        self.progress = progress
        self.warnings: list[str] = []
        self.timings: list[tuple[str, float]] = []
        self.committed = False
        self.started = 0.0
        self.layer: Optional[str] = None
        self.strip = profile.strip if request.strip is None else request.strip

    def run(self, roots: RequirementRoots, walk: Optional[FindWalk]) -> Outcome:
        self.settle_earlier_runs()
        traced = self.traced_options()
        plan = self.scan_and_plan(traced.options, roots, walk)
        if self.request.dry_run:
            return self.dry_run(plan)
        verifier, status = self.verifier(plan, traced.checks)
        prepare, strip_problems = self.strip_preparer(plan)
        startup = self.startup_before(plan)
        result = self.transaction(plan, verifier, prepare, strip_problems)
        return self.applied(plan, result, verifier, status, startup)

    def settle_earlier_runs(self) -> None:
        """A compile a killed run left is settled (a dry run refuses it instead: it changes
        nothing); pruning the tool's own environment is worth a warning."""
        from ..bytecode import finish_pending

        if self.request.dry_run:
            _refuse_pending_compile(self.env)
        else:
            settled = finish_pending(self.env)  # before the scan, which would see its scratch tree
            if settled:
                self.warnings.append(settled)
        if _is_own_environment(self.env):
            self.warnings.append(f"{self.env.root} is the environment venv-prune itself runs from; "
                                 "pruning it may remove the tool's own dependencies")

    def traced_options(self) -> TracedOptions:
        """The request's plan options with its ``--keep-from`` traces merged in."""
        if not self.request.traces:
            return TracedOptions(self.request.options, ())
        return load_traces(self.request.options, self.request.traces)

    def scan_and_plan(self, options: PlanOptions, roots: RequirementRoots, walk: Optional[FindWalk]) -> Plan:
        """Scan the environment and plan; the requirements' roots join the options' here,
        where the scan has seen which distributions are installed."""
        self.started = time.perf_counter()
        inventory = scan(self.env, progress=self.progress, walk=walk)
        scanned = time.perf_counter()
        options = roots.added_to(options, inventory)
        # The planner reads sources through the reader it is handed (with its grep); see
        # prune._gc: the planner allocates and frees almost nothing.
        with DiskSources(self.env.root, inventory) as sources, paused_gc():
            plan = build_plan(inventory, self.profile, options, sources=sources)
        self.timings = [("scan", scanned - self.started), ("plan", time.perf_counter() - scanned)]
        self.layer = layer_note(self.env.root)
        return plan

    def dry_run(self, plan: Plan) -> Outcome:
        """The report of a dry run: the plan, and what stripping would save."""
        estimate: tuple[dict[str, Any], ...] = ()
        if self.strip:
            estimate, strip_warning = strip_estimate(self.env, plan)
            self.warnings += [strip_warning] if strip_warning else []
        extras = Extras(dry_run=True, verification="not run (dry run)", warnings=tuple(self.warnings),
                        stripped=estimate, layer_note=self.layer)
        return Outcome(plan, None, extras, tuple(self.warnings))

    def verifier(self, plan: Plan, trace_checks: tuple[str, ...]) -> tuple[Optional[ImportVerifier], str]:
        """What verifies the transaction (None when it is skipped), and the report's status."""
        request, env = self.request, self.env
        if not request.verify:
            return None, "skipped (--no-verify)"
        if env.python is None:
            status = ("skipped: no interpreter found for this environment; "
                      "pass --python EXE to verify a --target or site-packages directory")
            self.warnings.append(f"verification {status}")
            return None, status
        minimal = self.profile.trace_minimal
        checks = list(request.checks)
        if minimal:
            checks += [c for c in trace_checks if c not in checks]
        # The roots whose modules must keep importing (--root, else what was installed by
        # name): the plan's, so that verification and minimal agree.
        verifier = ImportVerifier(env, plan, checks, jobs=request.jobs, timeout=request.timeout,
                                  progress=self.progress, traced_checks=trace_checks if minimal else (),
                                  roots=list(plan.roots))
        return verifier, "passed"

    def strip_preparer(self, plan: Plan) -> tuple[Optional[Preparer], list[str]]:
        """The transaction's strip step (None without ``--strip``), and the list that collects
        the files it could not strip."""
        problems: list[str] = []
        if not self.strip:
            return None, problems
        prepare, strip_warning = strip_preparer(self.env, plan, self.progress, self.request.jobs, problems)
        if strip_warning:
            self.warnings.append(strip_warning)
        return prepare, problems

    def startup_before(self, plan: Plan) -> Optional[dict[str, Any]]:
        """Time the imports of the distributions installed by name, before the prune."""
        if not self.request.measure_startup:
            return None
        from .. import startup as startupmod

        if self.progress:
            self.progress("timing the imports of the distributions installed by name (start-up)")
        timed = time.perf_counter()
        startup = startupmod.measure_before(self.env, plan, self.request.options.bytecode or self.profile.bytecode)
        self.timings.append(("startup", time.perf_counter() - timed))
        return startup

    def transaction(self, plan: Plan, verifier: Optional[ImportVerifier], prepare: Optional[Preparer],
                    strip_problems: list[str]) -> ApplyResult:
        """Stage, verify, commit (:func:`prune.apply.apply_plan`).

        :raises VerificationFailed: rolled back; ``.outcome`` holds the failed run's report.
        """
        try:
            try:
                result = apply_plan(plan, verifier=verifier, prepare=prepare, progress=self.progress)
                self.committed = True
            finally:
                if strip_problems:
                    self.warnings.append(strip_summary(strip_problems))
        except VerificationFailed as exc:
            res: ApplyResult = exc.result  # type: ignore[attr-defined]
            extras = Extras(
                dry_run=False, verification="failed (rolled back)",
                failures=tuple({"kind": f.kind, "name": f.name, "distribution": f.distribution,
                                "error": f.error, "rules": list(f.rules)} for f in res.failures),
                timings=res.timings, warnings=tuple(self.warnings), layer_note=self.layer,
            )
            exc.outcome = Outcome(plan, res, extras, tuple(self.warnings))  # type: ignore[attr-defined]
            raise
        return result

    def applied(self, plan: Plan, result: ApplyResult, verifier: Optional[ImportVerifier], status: str,
                startup: Optional[dict[str, Any]]) -> Outcome:
        """The committed prune's outcome: timings, stripping, start-up after (unless
        ``--bytecode compile`` times it after the compile), what verification covered."""
        stripped = tuple(
            {"path": r.path, "bytes_saved": r.bytes_saved, "detail": r.detail} for r in result.replacements
        )
        timings = self.timings + [t for t in result.timings if t[0] != "total"]
        if startup is not None and self.request.options.bytecode != "compile":
            from .. import startup as startupmod

            timed = time.perf_counter()
            startup = startupmod.measure_after(self.env, startup)
            timings = [(k, v + time.perf_counter() - timed if k == "startup" else v) for k, v in timings]
        # "total" is this call's wall time, scan to the end (the command adds what follows).
        timings.append(("total", time.perf_counter() - self.started))
        extras = Extras(dry_run=False, verification=status, timings=tuple(timings), stripped=stripped,
                        warnings=tuple(self.warnings), startup=startup, layer_note=self.layer,
                        verified=verifier.summary() if verifier is not None else None)
        return Outcome(plan, result, extras, tuple(self.warnings))


def _refuse_pending_compile(env: Environment) -> None:
    """A dry run changes nothing, so it does not settle a killed compile either."""
    import os

    from ..bytecode import scratch_dir
    from ..errors import PendingJournal

    if os.path.lexists(scratch_dir(env)):
        raise PendingJournal(f"an interrupted --bytecode compile left {scratch_dir(env)}; run "
                             f"'venv-prune recover {env.root}' (or prune again) to settle it")


def _is_own_environment(env: Environment) -> bool:
    try:
        return Path(sys.prefix).resolve() == env.root
    except OSError:
        return False
