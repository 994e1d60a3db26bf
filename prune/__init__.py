"""venv-prune: make Python environments small without breaking them.

The library API, in pipeline order::

    from prune import locate, scan, load_profile, build_plan, PlanOptions, apply_plan, render

    env = locate("/opt/venv")
    plan = build_plan(scan(env), load_profile("aggressive"))
    print(render(plan, "text"))          # a dry run is just rendering the plan
    result = apply_plan(plan)            # the transaction alone: stage, commit (no verify, no strip)

or the whole job as the command does it with :func:`prune.pipeline.run` (``from prune import
run, PruneRequest``): requirements roots, ``--output``, verification, stripping, ``--bytecode
compile``, ``--relocate`` and the size gate included.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .env import Environment, locate
from .errors import (
    ApplyFailed,
    Busy,
    EnvironmentNotFound,
    PendingJournal,
    ProfileError,
    PruneError,
    TraceError,
    UnsafePath,
    UsageError,
    VerificationFailed,
)
from .model import Action, Diagnostic, DistDecision, Distribution, FileEntry, Inventory, Keep, Plan

# Imported now (light: importlib-metadata is imported when metadata is read) because the
# function shares the submodule's name: bound here, first, it is what ``prune.scan`` means.
from .scan import scan

if TYPE_CHECKING:
    from .apply import ApplyResult, Failure, RecoverResult, apply_plan, recover
    from .pipeline import Outcome, PruneRequest, run
    from .plan import PlanOptions, build_plan, explain
    from .profiles import Profile, Rule, list_profiles, load_profile
    from .report import render, summarise

# The rest is imported on first use: the command line starts the tree walk before it loads
# the planner (pathspec, packaging) and the transaction code, so that both happen at once.
_LAZY = {
    "ApplyResult": "apply", "Failure": "apply", "RecoverResult": "apply", "apply_plan": "apply",
    "recover": "apply", "Outcome": "pipeline", "PruneRequest": "pipeline", "run": "pipeline",
    "PlanOptions": "plan", "build_plan": "plan", "explain": "plan",
    "Profile": "profiles", "Rule": "profiles", "list_profiles": "profiles", "load_profile": "profiles",
    "render": "report", "summarise": "report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__",
    "Action", "ApplyFailed", "ApplyResult", "Busy", "Diagnostic", "DistDecision", "Distribution", "Environment",
    "EnvironmentNotFound", "Failure", "FileEntry", "Inventory", "Keep", "Outcome", "PendingJournal",
    "Plan", "PlanOptions", "Profile", "ProfileError", "PruneError", "PruneRequest", "RecoverResult",
    "Rule", "TraceError", "UnsafePath", "UsageError", "VerificationFailed",
    "apply_plan", "build_plan", "explain", "list_profiles", "load_profile", "locate", "recover",
    "render", "run", "scan", "summarise",
]
