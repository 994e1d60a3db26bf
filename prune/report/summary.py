"""The report as plain data: :func:`summarise` builds it section by section, in the order the
JSON report prints them; the text and Markdown renderers read the same data.

JSON carries a ``schema`` version; keys and list order are stable (sorted), so reports diff
cleanly. Sizes are bytes; paths are relative to the environment's root, as in the plan.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any, Optional

from ..env import Environment
from ..model import Action, Diagnostic, DistDecision, FileEntry, Keep, Plan
from ..paths import top_entry
from .extras import Extras

__all__ = ["REPORT_SCHEMA", "summarise"]

REPORT_SCHEMA = "venv-prune-report/1"

#: A file no distribution owns is reported under this name.
UNOWNED = "(unowned)"

#: How many of the largest things that stay the report lists.
_LARGEST = 15

#: Below this share removed, the report says what the environment already lacks.
_LEAN_PERCENT = 10.0

#: Named fields of FileEntry by position: on a named tuple itemgetter is twice as fast as
#: attrgetter (4 ms against 10 ms per 100k files).
_owner = itemgetter(FileEntry._fields.index("owner"))
_size = itemgetter(FileEntry._fields.index("size"))


def summarise(plan: Plan, extras: Extras = Extras()) -> dict[str, Any]:
    """The report as plain data (what the JSON renderer prints), one key per section."""
    totals = _totals(plan, extras)
    data: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "target": _target(plan.inventory.env),
        "profile": plan.profile,
        "dry_run": extras.dry_run,
        "options": dict(plan.options),
        "totals": totals,
        "rules": _rules(plan.actions),
        "distributions": _distributions(plan, extras.stripped),
        "distribution_decisions": _distribution_decisions(plan.distributions),
        "actions": _actions(plan.actions),
        "protected": _protected(plan.kept),
        "kept_on_evidence": _kept_on_evidence(plan.kept),
        "largest_kept": _largest_kept(plan),
        "verification": _verification(extras),
        "timings": {k: round(v, 3) for k, v in extras.timings},
        "stripped": list(extras.stripped),
        "bytecode": extras.bytecode,
        "startup": extras.startup,
        "diagnostics": _diagnostics(plan.diagnostics),
        "warnings": list(extras.warnings),
        "already_lean": _already_lean(plan),
        "layer_rule": extras.layer_note,
    }
    if extras.max_size is not None:
        data["max_size"] = {"limit": extras.max_size, "exceeded": totals["bytes_after"] > extras.max_size}
    return data


def _clean(s: str) -> str:
    """File names may not be UTF-8 (surrogate-escaped); show them with backslash escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _target(env: Environment) -> dict[str, Any]:
    """Which environment: root, kind, Python version ("3.11", None when unknown), sites."""
    return {
        "root": _clean(str(env.root)),
        "kind": env.kind,
        "python": ".".join(map(str, env.python_version)) if env.python_version else None,
        "site_packages": list(env.site_packages),
    }


def _stripped_bytes(stripped: Iterable[dict[str, Any]]) -> int:
    return sum(int(x.get("bytes_saved", 0)) for x in stripped)


def _totals(plan: Plan, extras: Extras) -> dict[str, Any]:
    """Before, removed and after, in bytes and files; ``bytes_after`` counts stripping and
    the caches ``--bytecode compile`` writes after the prune (they are part of what stays)."""
    inv = plan.inventory
    before = inv.bytes_total
    removed = plan.bytes_removed
    stripped = _stripped_bytes(extras.stripped)
    compiled = int((extras.bytecode or {}).get("bytes_added", 0) or 0)
    return {
        "bytes_before": before,
        "bytes_removed": removed,
        "bytes_after": before - removed - stripped + compiled,
        "bytes_saved_by_strip": stripped,
        "bytes_added_by_bytecode": compiled,
        "files_before": len(inv.files),
        "files_removed": plan.files_removed,
        "percent_removed": round(100.0 * removed / before, 2) if before else 0.0,
        "distributions_before": len(inv.distributions),
        "distributions_removed": sum(1 for d in plan.distributions if d.remove),
    }


def _rules(actions: Iterable[Action]) -> list[dict[str, Any]]:
    """Bytes and files removed per rule id, largest first."""
    by_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in actions:
        by_rule[a.rule][0] += a.bytes
        by_rule[a.rule][1] += a.files
    return [{"rule": r, "bytes": v[0], "files": v[1]}
            for r, v in sorted(by_rule.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def _bytes_before_by_owner(files: Iterable[FileEntry]) -> dict[str, int]:
    """Bytes per distribution before the prune (what ``du -sh site-packages/*`` shows): files
    sorted by path lie in runs of one owner, summed run by run."""
    before: dict[str, int] = defaultdict(int)
    for owner, run in groupby(files, key=_owner):
        before[owner or UNOWNED] += sum(map(_size, run))
    return before


def _stripped_by_owner(files: Iterable[FileEntry], stripped: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Bytes stripping saves per distribution (keyed like the plan's owners)."""
    by_owner: dict[str, int] = defaultdict(int)
    if stripped:
        owners = {f.path: f.owner for f in files}
        for x in stripped:
            by_owner[owners.get(x["path"]) or UNOWNED] += int(x.get("bytes_saved", 0))
    return by_owner


def _distributions(plan: Plan, stripped: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distribution (and one for unowned files), before -> after, with what was
    removed, removed or kept by the trace, and saved by stripping; most removed first."""
    removed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    traced: dict[str, int] = defaultdict(int)
    for a in plan.actions:
        key = a.distribution or UNOWNED
        removed[key][0] += a.bytes
        removed[key][1] += a.files
        if a.trace:
            traced[key] += a.bytes
    kept_by_trace: dict[str, int] = defaultdict(int)
    for k in plan.kept:
        if k.saved_by == "trace":
            kept_by_trace[k.distribution or UNOWNED] += k.bytes
    before = _bytes_before_by_owner(plan.inventory.files)
    by_strip = _stripped_by_owner(plan.inventory.files, stripped)
    for name in before:
        removed[name]  # every distribution gets a row, even one nothing was removed from
    return [
        {"name": d, "bytes_removed": v[0], "files_removed": v[1],
         "bytes_removed_by_trace": traced.get(d, 0),
         "bytes_kept_by_trace": kept_by_trace.get(d, 0),
         "bytes_before": before.get(d, 0), "bytes_saved_by_strip": by_strip.get(d, 0),
         "bytes_after": before.get(d, 0) - v[0] - by_strip.get(d, 0)}
        for d, v in sorted(removed.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


def _distribution_decisions(decisions: Iterable[DistDecision]) -> list[dict[str, Any]]:
    """Every distribution's keep-or-remove decision with its reason, by name."""
    return [
        {"name": d.name, "version": d.version, "remove": d.remove, "bytes": d.bytes,
         "reason": d.reason, "chain": list(d.chain), "requested": d.requested,
         "remove_with": d.remove_with}
        for d in sorted(decisions, key=lambda d: d.name)
    ]


def _actions(actions: Iterable[Action]) -> list[dict[str, Any]]:
    """Every action, in the plan's order (by path), with the rule and pattern that decided it."""
    return [
        {"path": _clean(a.path), "kind": a.kind, "bytes": a.bytes, "files": a.files, "rule": a.rule,
         "pattern": a.pattern, "profile": a.profile, "distribution": a.distribution,
         "reason": a.reason, "trace": a.trace}
        for a in actions
    ]


def _protected(kept: Iterable[Keep]) -> list[dict[str, Any]]:
    """Bytes and files a rule matched but something saved, per ``saved_by``, largest first."""
    saved: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k in kept:
        saved[k.saved_by][0] += k.bytes
        saved[k.saved_by][1] += 1
    return [{"saved_by": s, "bytes": v[0], "files": v[1]}
            for s, v in sorted(saved.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def _kept_on_evidence(kept: Iterable[Keep]) -> list[dict[str, Any]]:
    """Files kept because kept code reads them at run time (prune/evidence.py), grouped per
    distribution, rule and kind of evidence, with the first five reasons and paths; largest first."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for k in kept:
        if not k.saved_by.startswith("evidence:"):
            continue
        group = groups.setdefault((k.distribution, k.rule, k.saved_by), {
            "distribution": k.distribution, "rule": k.rule, "saved_by": k.saved_by,
            "bytes": 0, "files": 0, "reasons": [], "paths": []})
        group["bytes"] += k.bytes
        group["files"] += 1
        if k.reason not in group["reasons"] and len(group["reasons"]) < 5:
            group["reasons"].append(k.reason)
        if len(group["paths"]) < 5:
            group["paths"].append(_clean(k.path))
    return sorted(groups.values(), key=lambda g: (-g["bytes"], g["distribution"], g["rule"], g["saved_by"]))


def _largest_kept(plan: Plan) -> list[dict[str, Any]]:
    """The largest top-level entries that stay (``lib/python3.11/site-packages/numpy``),
    largest first. A file's top-level entry is its directory's, except directly in the root or
    a site: sizes are summed per directory, and :func:`top_entry` asked once per directory."""
    sites = plan.inventory.env.site_packages
    by_dir: dict[str, int] = defaultdict(int)
    remaining: dict[str, int] = defaultdict(int)
    site_set = set(sites)
    for d, f in plan.staying_with_directories():
        if d and d not in site_set:
            by_dir[d] += f.size
        else:
            remaining[top_entry(f.path, sites)] += f.size
    for d, size in by_dir.items():
        remaining[top_entry(d, sites)] += size
    largest = sorted(remaining.items(), key=lambda kv: (-kv[1], kv[0]))[:_LARGEST]
    return [{"path": _clean(p), "bytes": b} for p, b in largest]


def _verification(extras: Extras) -> dict[str, Any]:
    """Status, failures, and (after a real run) what was checked and what was removed unverified."""
    section: dict[str, Any] = {"status": extras.verification, "failures": list(extras.failures)}
    if extras.verified is not None:
        section["checked"] = {k: v for k, v in extras.verified.items() if k != "not_verified"}
        section["not_verified"] = extras.verified.get("not_verified", [])
    return section


def _diagnostics(diagnostics: Iterable[Diagnostic]) -> list[dict[str, Any]]:
    return [
        {"level": d.level, "code": d.code, "message": _clean(d.message), "path": _clean(d.path)}
        for d in diagnostics
    ]


def _already_lean(plan: Plan) -> Optional[dict[str, Any]]:
    """Why little goes from an environment (uv's, or one pruned before): what a
    pip-made venv carries that this one never had. None when a fair share goes anyway."""
    inv = plan.inventory
    if not inv.bytes_total or 100.0 * plan.bytes_removed / inv.bytes_total >= _LEAN_PERCENT:
        return None
    installers = Counter(d.installer.strip().lower() for d in inv.distributions if d.installer.strip())
    installer = installers.most_common(1)[0][0] if installers else ""
    names = {d.name for d in inv.distributions}
    absent = [n for n in ("pip", "setuptools", "wheel") if n not in names]
    if not any("__pycache__/" in f.path or f.path.endswith(".pyc") for f in inv.files):
        absent.append("bytecode caches (__pycache__)")
    if not absent:
        return None
    notes = {"uv": "uv installs no pip into the venv and compiles no bytecode unless asked "
                   "(--compile-bytecode)"}
    return {"installer": installer or None, "absent": absent, "note": notes.get(installer, "")}
