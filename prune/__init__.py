"""venv-prune: make Python environments small without breaking them.

The library API, in pipeline order::

    from prune import locate, scan, load_profile, build_plan, PlanOptions, apply_plan, render

    env = locate("/opt/venv")
    plan = build_plan(scan(env), load_profile("aggressive"))
    print(render(plan, "text"))          # a dry run is just rendering the plan
    result = apply_plan(plan)            # transactional: stage, (verify), commit

or everything at once with :func:`prune.pipeline.run` (``from prune import run, PruneRequest``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .env import Environment, locate
from .errors import (
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
from .plan import PlanOptions, build_plan, explain
from .profiles import Profile, Rule, list_profiles, load_profile
from .report import render, summarise
from .scan import scan

if TYPE_CHECKING:
    from .apply import ApplyResult, Failure, RecoverResult, apply_plan, recover
    from .pipeline import Outcome, PruneRequest, run

# Applying (and the whole-job pipeline, which applies) is imported on first use: a dry run
# never needs it, and the command line starts a little faster without it.
_LAZY = {
    "ApplyResult": "apply", "Failure": "apply", "RecoverResult": "apply", "apply_plan": "apply",
    "recover": "apply", "Outcome": "pipeline", "PruneRequest": "pipeline", "run": "pipeline",
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
    "Action", "ApplyResult", "Diagnostic", "DistDecision", "Distribution", "Environment",
    "EnvironmentNotFound", "Failure", "FileEntry", "Inventory", "Keep", "Outcome", "PendingJournal",
    "Plan", "PlanOptions", "Profile", "ProfileError", "PruneError", "PruneRequest", "RecoverResult",
    "Rule", "TraceError", "UnsafePath", "UsageError", "VerificationFailed",
    "apply_plan", "build_plan", "explain", "list_profiles", "load_profile", "locate", "recover",
    "render", "run", "scan", "summarise",
]
