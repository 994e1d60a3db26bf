"""``explain``: why a path goes or stays, in one paragraph, read from what the plan decided.

The plan's actions say what goes and by which rule; its ``kept`` entries say what a rule
matched and what saved it. A path no rule matched stays; the paragraph then names what
would protect it anyway, asked of the same protections the planner applied
(:func:`prune.plan.rules.active_protections`: a knowledge-base protection whose ``when``
names no installed distribution does not apply, and is not named).
"""

from __future__ import annotations

import os
from typing import Optional

from ..model import Plan
from ..paths import site_relative
from ..profiles import Knowledge, load_knowledge
from .rules import active_protections

__all__ = ["explain", "in_environment"]


def _explained_path(plan: Plan, path: str) -> str:
    """``path`` relative to the root: given absolute, relative to the root, or relative to the
    current directory when only that names something under the root."""
    root = str(plan.inventory.env.root)
    if not os.path.isabs(path) and not os.path.lexists(os.path.join(root, path)) and os.path.lexists(path):
        path = os.path.abspath(path)
    if os.path.isabs(path):
        path = os.path.relpath(os.path.realpath(path) if not os.path.islink(path) else path, root)
    return path.replace(os.sep, "/").strip("/")


def in_environment(plan: Plan, path: str) -> bool:
    """Whether ``path`` (as :func:`explain` takes it) names a file or directory the scan saw."""
    rel = _explained_path(plan, path)
    return bool(rel) and not rel.startswith("../") and (
        any(f.path == rel or f.path.startswith(rel + "/") for f in plan.inventory.files)
        or any(a.path == rel for a in plan.actions) or any(k.path == rel for k in plan.kept))


def _decided(plan: Plan, rel: str) -> Optional[str]:
    """What the plan decided about ``rel``: the action that removes it, or what saved it
    from the rule that matched it."""
    for a in plan.actions:
        if rel == a.path or rel.startswith(a.path + "/"):
            what = "is removed" if rel == a.path else f"is removed with {a.path}/"
            trace = " (trace-driven)" if a.trace else ""
            owner = f", owned by {a.distribution}" if a.distribution else ""
            return (f"{rel} {what}: rule '{a.rule}' (pattern {a.pattern!r}, profile {a.profile}"
                    f"{owner}){trace}: {a.reason}")
    for k in plan.kept:
        if rel == k.path or k.path.startswith(rel + "/"):
            return (f"{rel} stays: rule '{k.rule}' matched it, but it is protected by "
                    f"{k.saved_by}: {k.reason}")
    return None


def _protected(plan: Plan, rel: str, knowledge: Knowledge) -> Optional[str]:
    """What protects ``rel`` whatever a profile says: a knowledge-base protection that
    applies to this environment, distribution metadata, a ``.mo`` catalog."""
    found = site_relative(rel, plan.inventory.env.site_packages)
    for prot in active_protections(knowledge, plan.inventory):
        if found is None:
            hit = prot.scope == "root" and (prot.spec.match_file(rel) or prot.spec.match_file(rel + "/"))
        else:
            hit = prot.scope != "root" and prot.spec.match_file(found[1])
        if hit:
            return (f"{rel} stays: protected by knowledge:{prot.id} (no profile removes it): "
                    f"{prot.reason} ({prot.source})")
    if found is not None:
        if found[1].split("/", 1)[0].endswith((".dist-info", ".egg-info")):
            return f"{rel} stays: distribution metadata, removed only with its distribution"
        if rel.endswith(".mo"):
            return f"{rel} stays: compiled translations (.mo) are always protected"
    return None


def explain(plan: Plan, path: str, *, knowledge: Optional[Knowledge] = None) -> str:
    """Why ``path`` (relative to the root, or absolute under it) goes or stays, in one
    paragraph: the action and rule that remove it, or what saves it.

    :param knowledge: the knowledge base the plan was made with (default: the built-in one).
    """
    root = str(plan.inventory.env.root)
    rel = _explained_path(plan, path)
    said = _decided(plan, rel) or _protected(plan, rel, knowledge or load_knowledge())
    if said is not None:
        return said
    for d in plan.distributions:
        inv_dist = plan.inventory.distribution(d.name)
        if inv_dist and not d.remove and any(f == rel or f.startswith(rel + "/") for f in inv_dist.files):
            return f"{rel} stays: owned by {d.name} {d.version}, which is kept ({d.reason})"
    if not any(f.path == rel or f.path.startswith(rel + "/") for f in plan.inventory.files):
        return f"{rel} is not in the environment (paths are relative to {root})"
    return f"{rel} stays: no rule of profile {plan.profile!r} removes it"
