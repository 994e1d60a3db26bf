"""Verification as the transaction sees it: which modules, entry points and checks must keep
working, captured before staging and compared after (:class:`ImportVerifier`, the verifier
:func:`prune.apply.apply_plan` calls; the checking itself is :mod:`prune.verify`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..env import Environment
from ..errors import UsageError
from ..model import Failure, Plan, Progress
from ..paths import under_site

__all__ = ["ImportVerifier"]


class ImportVerifier:
    """Adapter between the transactional apply and :mod:`prune.verify`."""

    def __init__(self, env: Environment, plan: Plan, checks: Sequence[str], *,
                 jobs: int, timeout: float, progress: Optional[Progress] = None,
                 traced_checks: Sequence[str] = (), roots: Optional[Sequence[str]] = None) -> None:
        """``roots``: the root distributions (``--root``; default: those installed by name,
        REQUESTED), whose top-level modules and entry points are checked unless a rule (not
        a trace) removes them on purpose; ``traced_checks``: the checks that re-run traced
        commands (minimal), named as such when they fail before pruning."""
        from .. import verify

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
                sub = under_site(a.path, site)
                if sub is not None:
                    subs.add(sub)
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
