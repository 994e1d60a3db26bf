"""What the user asked of a plan beyond the profile: :class:`PlanOptions`, and the checks that
refuse a malformed one before any planning starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import UsageError

__all__ = ["PlanOptions", "check_options", "check_strings"]


@dataclass(frozen=True)
class PlanOptions:
    """What the user asked for beyond the profile. Distribution names are canonicalised.

    ``keep``/``remove``: extra gitwildmatch patterns (anchoring as in profiles).
    ``keep_modules``: dotted module names kept whole. ``roots``: explicit root distributions
    (None: REQUESTED ones). ``keep_dists``/``remove_dists``: overrides; ``force`` allows
    removing a distribution something requires. ``bytecode``: overrides the profile's.
    ``trace_paths``/``trace_modules``: files used and modules imported by traced runs
    (``--keep-from``); ``trace_dirs``: directories they listed (kept as directories).
    ``trace_commands``: the commands the traces ran, re-run as checks by verification.
    """

    keep: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    keep_modules: tuple[str, ...] = ()
    roots: Optional[tuple[str, ...]] = None
    keep_dists: tuple[str, ...] = ()
    remove_dists: tuple[str, ...] = ()
    force: bool = False
    bytecode: Optional[str] = None
    trace_paths: frozenset[str] = frozenset()
    trace_dirs: frozenset[str] = frozenset()
    trace_modules: frozenset[str] = frozenset()
    has_trace: bool = False
    trace_commands: tuple[tuple[str, ...], ...] = field(default=())


def check_strings(owner: str, **fields: object) -> None:
    """Refuse a field that should hold strings but holds a bare string or anything else (a
    tester's ``PlanOptions(keep="certifi/")`` kept every file named c, e, r, t, i or f, and
    ``PruneRequest(checks="python -c 1")`` ran ten one-letter shell commands).

    :raises UsageError: naming the field and what to pass instead.
    """
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, str):
            raise UsageError(f"{owner}({name}={value!r}) takes a tuple of strings, not one string; "
                             f"write {name}=({value!r},)")
        if not isinstance(value, (tuple, list, frozenset, set)) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{owner}({name}={value!r}) takes a tuple of strings")


def check_options(options: PlanOptions) -> None:
    """:raises UsageError: a pattern or name field of ``options`` is not a tuple of strings."""
    check_strings("PlanOptions", keep=options.keep, remove=options.remove, keep_modules=options.keep_modules,
                  roots=options.roots, keep_dists=options.keep_dists, remove_dists=options.remove_dists)
