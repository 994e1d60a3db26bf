"""The start-up cost of a prune: how long the application's own imports take, before and after.

Dropping bytecode caches is most of what a prune saves on small environments, and it makes
every cold start compile the sources again: on the scientific stack importing the stack took
2.1-3.1 s with caches and 4.2-5.3 s without (issue 17). So the report states it, measured on
the distributions the user installed by name (REQUESTED): their top-level modules are
imported in a fresh interpreter of the target, once before the prune and once after (after
``--bytecode compile`` when that was asked for).

The interpreter runs with ``-B``: the measurement never writes a cache into the environment
(it would be a change a dry run or a ``--bytecode drop`` did not ask for, and it would make
the next run warm).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .env import Environment
from .model import Plan

__all__ = ["StartupProbe", "startup_modules", "time_imports", "describe"]

#: Modules of what environment creation installs, never the application's.
_SEEDED = frozenset({"pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "distutils-precedence"})
_MAX_MODULES = 20
#: Best of up to three runs, fewer when one run is slow (the sample is then already large).
_RUNS = 3
_BUDGET_SECONDS = 1.0


@dataclass(frozen=True)
class StartupProbe:
    """What is timed: ``modules`` (dotted names) of ``distributions`` (canonical names)."""

    modules: tuple[str, ...]
    distributions: tuple[str, ...]


def startup_modules(plan: Plan) -> StartupProbe:
    """The top-level modules of the REQUESTED distributions that stay (pip, setuptools and
    wheel left out: venv marks them REQUESTED), sorted, at most 20. Where a lock file or uv
    marked the dependencies REQUESTED too, only the marked distributions nothing else
    installed requires are taken: importing fastapi imports pydantic anyway. Every staying
    distribution counts when nothing is REQUESTED. Which modules import is found when timing."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from .verify import importable_modules

    removed = {d.name for d in plan.distributions if d.remove}
    dists = [d for d in plan.inventory.distributions if d.name not in removed
             and d.name not in ("pip", "setuptools", "wheel")]
    chosen = {d.name for d in dists if d.requested} or {d.name for d in dists}
    required: set[str] = set()
    for d in dists:
        for text in d.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            # What an extra brings in (fastapi[standard] -> uvicorn) was asked for by name.
            name = canonicalize_name(req.name)
            if name != d.name and (req.marker is None or "extra" not in str(req.marker)):
                required.add(name)
    chosen = (chosen - required) or chosen
    per_dist: dict[str, list[str]] = {}
    for m in importable_modules(plan.inventory):
        if m.distribution in chosen and m.name not in _SEEDED and not m.name.startswith("_"):
            per_dist.setdefault(m.distribution, []).append(m.name)
    modules: list[str] = []
    for dist, names in per_dist.items():
        plain = [n for n in names if "." not in n]  # a namespace package lists submodules
        # The module named like its distribution is the one applications import
        # (matplotlib, not its pylab; else up to three: PyYAML's yaml, scikit-learn's sklearn).
        named = [n for n in plain if canonicalize_name(n) == dist]
        modules += named or (plain or names)[:3]
    return StartupProbe(tuple(sorted(modules)[:_MAX_MODULES]), tuple(sorted(chosen)))


_TIMER = (
    "import importlib, sys, time\n"
    "ok = []\n"
    "start = time.perf_counter()\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except BaseException:\n"
    "        continue\n"
    "    ok.append(name)\n"
    "elapsed = time.perf_counter() - start\n"
    "sys.stdout.write('\\n@@venv-prune-startup@@ %r %s\\n' % (elapsed, ','.join(ok)))\n"
)


def time_imports(env: Environment, modules: Sequence[str], *,
                 flags: Sequence[str] = ()) -> Optional[tuple[float, tuple[str, ...]]]:
    """Seconds to import ``modules`` in a fresh target interpreter (best of up to three runs,
    fewer past a one-second budget), and the modules that imported; None when there is no
    interpreter, nothing to import or nothing imported. Writes nothing (``-B``)."""
    from .bytecode import measure_env, run_interpreter

    if env.python is None or not modules:
        return None
    sites = [p for p in env.site_paths() if p.is_dir()]
    args = [str(env.python), *flags, "-B", "-c", _TIMER, *modules]
    environ = measure_env(env, sites)
    best: Optional[float] = None
    imported: tuple[str, ...] = ()
    spent = 0.0
    for _ in range(_RUNS):
        started = time.perf_counter()
        try:
            proc = run_interpreter(args, env=environ)
        except (subprocess.TimeoutExpired, OSError):
            break
        spent += time.perf_counter() - started
        line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("@@venv-prune-startup@@ ")), "")
        if proc.returncode != 0 or not line:
            break
        _, seconds, names = (line.split(" ", 2) + [""])[:3]
        imported = tuple(n for n in names.strip().split(",") if n)
        best = float(seconds) if best is None else min(best, float(seconds))
        if spent > _BUDGET_SECONDS:
            break
    if best is None or not imported:
        return None
    return round(best, 3), imported


def describe(startup: dict[str, Any]) -> str:
    """One line for the text report: ``0.41 s before, 0.83 s after (+102%) ...``."""
    before, after = startup.get("seconds_before"), startup.get("seconds_after")
    if before is None or after is None:
        return "not measured (" + (startup.get("why") or "nothing imported") + ")"
    change = f"{100.0 * (after - before) / before:+.0f}%" if before else "n/a"
    return f"{before:.2f} s before, {after:.2f} s after ({change})"


def measure_before(env: Environment, plan: Plan, bytecode: str) -> Optional[dict[str, Any]]:
    """Time the REQUESTED distributions' imports before a prune; the report's ``startup``
    (``seconds_after`` filled by :func:`measure_after`). None without an interpreter."""
    if env.python is None:
        return None
    probe = startup_modules(plan)
    timed = time_imports(env, probe.modules)
    return {
        "distributions": list(probe.distributions),
        "modules": list(timed[1]) if timed else [],
        "bytecode": bytecode,
        "seconds_before": timed[0] if timed else None,
        "seconds_after": None,
        "why": None if timed else "none of their modules imported before pruning",
    }


def measure_after(env: Environment, startup: Optional[dict[str, Any]], *, bytecode: Optional[str] = None,
                  flags: Sequence[str] = ()) -> Optional[dict[str, Any]]:
    """``startup`` with the same modules timed again now (after the prune, or after
    ``--bytecode compile``: pass ``bytecode`` to say so)."""
    if startup is None or not startup["modules"]:
        return startup
    timed = time_imports(env, startup["modules"], flags=flags)
    out = {**startup, "seconds_after": timed[0] if timed else None}
    if bytecode:
        out["bytecode"] = bytecode
    if timed is None:
        out["why"] = "the modules did not import in the timing run after pruning"
    return out
