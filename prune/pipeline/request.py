"""What a prune is asked to do (:class:`PruneRequest`) and what it did (:class:`Outcome`).

A request is checked whole before anything is read (:func:`check_request`), so that a bad
field is one line and nothing changed, for the command line and a build script alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..apply import ApplyResult
from ..errors import UsageError
from ..model import Plan
from ..plan import PlanOptions, check_options, check_strings, remove_pattern_lists
from ..report import Extras

__all__ = ["PruneRequest", "Outcome", "check_request"]


@dataclass(frozen=True)
class PruneRequest:
    """Everything a prune needs, as the command line or a build script states it.

    Each field is the command line's option of the same name (``--keep-from`` is ``traces``,
    ``--no-verify`` is ``verify=False``, ``--max-size 500MB`` is ``max_size=500_000_000``).
    """

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
    #: A requirements file or pyproject.toml whose requirements are roots, added to
    #: ``options.roots`` (with ``extras``: its optional-dependency groups).
    requirements: Optional[str] = None
    extras: tuple[str, ...] = ()
    #: Prune a copy at this directory and leave ``path`` untouched (not for a dry run).
    output: Optional[str] = None
    #: With ``output``: rewrite the copy's scripts and pyvenv.cfg for this final path.
    relocate: Optional[str] = None
    #: Optimisation level (0-2) of ``options.bytecode == "compile"``.
    optimize: int = 0
    #: The size gate, in bytes: :attr:`Outcome.over_max_size` says whether the result exceeds it.
    max_size: Optional[int] = None


@dataclass(frozen=True)
class Outcome:
    """A finished run: the plan, what applying it did (None for a dry run), report extras.

    ``over_max_size``: the result (bytes that stay, as the report's header counts them) is
    larger than :attr:`PruneRequest.max_size`; the command line exits 1 after the report.
    """

    plan: Plan
    result: Optional[ApplyResult]
    extras: Extras
    warnings: tuple[str, ...] = field(default=())
    over_max_size: bool = False


def check_request(request: PruneRequest) -> None:
    """Validate a request before anything is read (one clear line each).

    :raises UsageError: a field has the wrong type (a bare string where a tuple of strings
        belongs, a path that is not a string), a value out of range, a pattern that is not
        gitwildmatch, or options that contradict each other.
    """
    if not isinstance(request.path, (str, os.PathLike)):
        raise UsageError(f"PruneRequest(path=...) takes a path string, not {request.path!r}")
    if not isinstance(request.profile, (str, os.PathLike)):
        raise UsageError(f"PruneRequest(profile=...) takes a profile name or a .toml path, not {request.profile!r}")
    if not isinstance(request.options, PlanOptions):
        raise UsageError(f"PruneRequest(options=...) takes a PlanOptions, not {request.options!r}")
    check_strings("PruneRequest", checks=request.checks, traces=request.traces, extras=request.extras)
    check_options(request.options)
    _check_scalars(request)
    if request.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if request.timeout <= 0:
        raise UsageError(f"--timeout {request.timeout!r}: must be more than 0 seconds")
    if request.optimize not in (0, 1, 2):
        raise UsageError(f"--optimize {request.optimize!r}: must be 0, 1 or 2")
    if request.max_size is not None and request.max_size < 0:
        raise UsageError(f"PruneRequest(max_size={request.max_size!r}): a size in bytes cannot be negative")
    _check_patterns(request.options)
    _check_combinations(request)


def _check_scalars(request: PruneRequest) -> None:
    """The type of every field that is not a string tuple: a library caller's
    ``max_size="500MB"`` or ``jobs="2"`` is one line here, not a TypeError after the prune."""
    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for name in ("jobs", "optimize"):
        if not whole(getattr(request, name)):
            raise UsageError(f"PruneRequest({name}=...) takes a whole number, not {getattr(request, name)!r}")
    if request.max_size is not None and not whole(request.max_size):
        raise UsageError(f"PruneRequest(max_size=...) takes a size in bytes (an int, e.g. 500_000_000) "
                         f"or None, not {request.max_size!r}")
    if not isinstance(request.timeout, (int, float)) or isinstance(request.timeout, bool):
        raise UsageError(f"PruneRequest(timeout=...) takes seconds (a number), not {request.timeout!r}")
    for name in ("dry_run", "verify", "measure_startup"):
        if not isinstance(getattr(request, name), bool):
            raise UsageError(f"PruneRequest({name}=...) takes True or False, not {getattr(request, name)!r}")
    if request.strip is not None and not isinstance(request.strip, bool):
        raise UsageError(f"PruneRequest(strip=...) takes True, False or None, not {request.strip!r}")
    for name in ("python", "requirements", "output", "relocate"):
        value = getattr(request, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"PruneRequest({name}=...) takes a path string or None, not {value!r}")


def _check_patterns(options: PlanOptions) -> None:
    """Refuse a bad ``--keep``/``--remove`` pattern (and a lone ``--remove '!x'``) before
    anything is read or changed."""
    from ..profiles import pattern_problem

    for flag, patterns in (("--keep", options.keep), ("--remove", options.remove)):
        for pattern in patterns:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise UsageError(f"{flag} {pattern!r}: {problem}; fix the pattern (gitwildmatch syntax)")
    remove_pattern_lists(options.remove)


def _check_combinations(request: PruneRequest) -> None:
    """Options that only make sense together, and files that must exist."""
    if request.relocate and not request.output:
        raise UsageError("--relocate needs --output DIR (it rewrites the copy for its final path)")
    if request.requirements:
        if not Path(request.requirements).is_file():
            raise UsageError(f"--requirements {request.requirements}: no such file; "
                             "pass a requirements.txt or pyproject.toml")
    elif request.extras:
        raise UsageError("--extra needs --requirements pyproject.toml")
    if request.checks and not request.verify and not request.dry_run:
        # A check runs during verification: with --no-verify it would be dropped silently.
        raise UsageError("--check runs during verification, which --no-verify turns off; "
                         "drop one of them")
