"""The files a request names, read into plan options: import traces (``--keep-from``) and
requirements (``--requirements``), each read once and before anything changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from ..env import Environment
from ..errors import UsageError
from ..model import Inventory
from ..plan import PlanOptions

__all__ = ["TracedOptions", "load_traces", "RequirementRoots", "requirement_roots"]


@dataclass(frozen=True)
class TracedOptions:
    """What the traces add: plan options, and the traced commands as shell checks
    (``cd CWD && ARGV``) that minimal re-runs during verification."""

    options: PlanOptions
    checks: tuple[str, ...]


def load_traces(options: PlanOptions, paths: Sequence[str]) -> TracedOptions:
    """Merge the ``--keep-from`` traces at ``paths`` into ``options``.

    :raises UsageError: a trace reached no Python process of the environment.
    :raises TraceError: a trace file cannot be read.
    """
    import shlex

    from ..trace import load_trace

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
    merged = replace(options, trace_paths=frozenset(used), trace_dirs=frozenset(dirs),
                     trace_modules=frozenset(modules), has_trace=True, trace_commands=tuple(commands))
    return TracedOptions(merged, tuple(checks))


@dataclass(frozen=True)
class RequirementRoots:
    """The roots a requirements file names, and the project a pyproject.toml describes
    (``pip install .`` then ``--requirements pyproject.toml``: the project itself is a root
    when it is installed)."""

    names: tuple[str, ...] = ()
    project: Optional[str] = None

    def added_to(self, options: PlanOptions, inventory: Inventory) -> PlanOptions:
        """``options`` with these roots after its own (``--root``), the project last when
        ``inventory`` holds it; unchanged when the request named no requirements."""
        if not self.names and not self.project:
            return options
        roots = [*(options.roots or ()), *self.names]
        if self.project and any(d.name == self.project for d in inventory.distributions):
            roots.append(self.project)
        return replace(options, roots=tuple(roots) if roots else None)


def requirement_roots(requirements: Optional[str], extras: Sequence[str], env: Environment) -> RequirementRoots:
    """Read ``requirements`` (markers evaluated for ``env``'s interpreter).

    :raises UsageError: the file cannot be read or a requirement cannot be parsed.
    """
    if not requirements:
        return RequirementRoots()
    from ..graph import project_name, roots_from_requirements

    path = Path(requirements)
    names = roots_from_requirements(path, list(extras), marker_env=env.marker_environment())
    return RequirementRoots(tuple(names), project_name(path))
