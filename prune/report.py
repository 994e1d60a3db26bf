"""Render a plan (dry run) or an applied result as text, JSON or Markdown. Pure.

All three renderers share :func:`summarise`, so they always agree. JSON carries a
``schema`` version; keys and list order are stable (sorted), so reports diff cleanly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, Optional

from ._gc import paused_gc
from .model import Plan

__all__ = ["REPORT_SCHEMA", "FORMATS", "Extras", "summarise", "render", "human_bytes"]

REPORT_SCHEMA = "venv-prune-report/1"
FORMATS = ("text", "json", "markdown")


@dataclass(frozen=True)
class Extras:
    """What only a real run knows: verification, timings, stripping, failures."""

    dry_run: bool = True
    verification: str = "not run"  # passed | failed | skipped: <why> | not run
    failures: tuple[dict[str, Any], ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    stripped: tuple[dict[str, Any], ...] = ()
    bytecode: Optional[dict[str, Any]] = None
    warnings: tuple[str, ...] = ()
    max_size: Optional[int] = None
    startup: Optional[dict[str, Any]] = None
    #: The layer rule (prune.layers.LAYER_RULE) when the environment lies on overlayfs.
    layer_note: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)
    # What verification covered (counts and what the plan removes on purpose, unverified).
    verified: Optional[dict[str, Any]] = None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _clean(s: str) -> str:
    """File names may not be UTF-8 (surrogate-escaped); show them with backslash escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _top_entry(path: str, sites: Sequence[str]) -> str:
    for site in sites:
        if not site:
            return path.split("/", 1)[0]
        if path.startswith(site + "/"):
            rest = path[len(site) + 1:]
            return f"{site}/{rest.split('/', 1)[0]}"
    return path.split("/", 1)[0]


def summarise(plan: Plan, extras: Extras = Extras()) -> dict[str, Any]:
    """The report as plain data (what the JSON renderer prints)."""
    inv = plan.inventory
    before = inv.bytes_total
    removed = plan.bytes_removed
    files_before = len(inv.files)
    by_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_dist: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    traced_by_dist: dict[str, int] = defaultdict(int)
    for a in plan.actions:
        by_rule[a.rule][0] += a.bytes
        by_rule[a.rule][1] += a.files
        key = a.distribution or "(unowned)"
        by_dist[key][0] += a.bytes
        by_dist[key][1] += a.files
    kept_by_trace: dict[str, int] = defaultdict(int)
    for k in plan.kept:
        if k.saved_by == "trace":
            kept_by_trace[k.distribution or "(unowned)"] += k.bytes
    for a in plan.actions:
        if a.trace:
            traced_by_dist[a.distribution or "(unowned)"] += a.bytes
    # Before -> after per distribution (what `du -sh site-packages/* | sort -h` shows):
    # files sorted by path lie in runs of one owner, summed run by run.
    dist_before: dict[str, int] = defaultdict(int)
    for owner, run in groupby(inv.files, key=itemgetter(3)):  # FileEntry.owner
        dist_before[owner or "(unowned)"] += sum(map(itemgetter(1), run))  # FileEntry.size
    stripped_by_dist: dict[str, int] = defaultdict(int)
    if extras.stripped:
        owners = {f.path: f.owner for f in inv.files}
        for x in extras.stripped:
            stripped_by_dist[owners.get(x["path"]) or "(unowned)"] += int(x.get("bytes_saved", 0))
    for name in dist_before:
        by_dist[name]  # every distribution gets a row, even one nothing was removed from

    # A file's top-level entry is its directory's, except directly in the root or a site:
    # sizes are summed per directory, and _top_entry asked once per directory.
    by_dir: dict[str, int] = defaultdict(int)
    remaining: dict[str, int] = defaultdict(int)
    sites = set(inv.env.site_packages)
    for d, f in plan.staying_with_directories():
        if d and d not in sites:
            by_dir[d] += f.size
        else:
            remaining[_top_entry(f.path, inv.env.site_packages)] += f.size
    for d, size in by_dir.items():
        remaining[_top_entry(d, inv.env.site_packages)] += size
    largest = sorted(remaining.items(), key=lambda kv: (-kv[1], kv[0]))[:15]

    saved: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k in plan.kept:
        saved[k.saved_by][0] += k.bytes
        saved[k.saved_by][1] += 1
    # Files kept because kept code reads them at run time (prune/evidence.py), per
    # distribution, rule and kind of evidence, with what gave it.
    evidence: dict[tuple[str, str, str], dict[str, Any]] = {}
    for k in plan.kept:
        if not k.saved_by.startswith("evidence:"):
            continue
        group = evidence.setdefault((k.distribution, k.rule, k.saved_by), {
            "distribution": k.distribution, "rule": k.rule, "saved_by": k.saved_by,
            "bytes": 0, "files": 0, "reasons": [], "paths": []})
        group["bytes"] += k.bytes
        group["files"] += 1
        if k.reason not in group["reasons"] and len(group["reasons"]) < 5:
            group["reasons"].append(k.reason)
        if len(group["paths"]) < 5:
            group["paths"].append(_clean(k.path))

    stripped_bytes = sum(int(x.get("bytes_saved", 0)) for x in extras.stripped)
    # --bytecode compile writes caches after the prune: they are part of what stays.
    compiled_bytes = int((extras.bytecode or {}).get("bytes_added", 0) or 0)
    after = before - removed - stripped_bytes + compiled_bytes
    data: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "target": {
            "root": _clean(str(inv.env.root)),
            "kind": inv.env.kind,
            "python": ".".join(map(str, inv.env.python_version)) if inv.env.python_version else None,
            "site_packages": list(inv.env.site_packages),
        },
        "profile": plan.profile,
        "dry_run": extras.dry_run,
        "options": dict(plan.options),
        "totals": {
            "bytes_before": before,
            "bytes_removed": removed,
            "bytes_after": after,
            "bytes_saved_by_strip": stripped_bytes,
            "bytes_added_by_bytecode": compiled_bytes,
            "files_before": files_before,
            "files_removed": plan.files_removed,
            "percent_removed": round(100.0 * removed / before, 2) if before else 0.0,
            "distributions_before": len(inv.distributions),
            "distributions_removed": sum(1 for d in plan.distributions if d.remove),
        },
        "rules": [
            {"rule": r, "bytes": v[0], "files": v[1]}
            for r, v in sorted(by_rule.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ],
        "distributions": [
            {"name": d, "bytes_removed": v[0], "files_removed": v[1],
             "bytes_removed_by_trace": traced_by_dist.get(d, 0),
             "bytes_kept_by_trace": kept_by_trace.get(d, 0),
             "bytes_before": dist_before.get(d, 0), "bytes_saved_by_strip": stripped_by_dist.get(d, 0),
             "bytes_after": dist_before.get(d, 0) - v[0] - stripped_by_dist.get(d, 0)}
            for d, v in sorted(by_dist.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ],
        "distribution_decisions": [
            {"name": d.name, "version": d.version, "remove": d.remove, "bytes": d.bytes,
             "reason": d.reason, "chain": list(d.chain), "requested": d.requested,
             "remove_with": d.remove_with}
            for d in sorted(plan.distributions, key=lambda d: d.name)
        ],
        "actions": [
            {"path": _clean(a.path), "kind": a.kind, "bytes": a.bytes, "files": a.files, "rule": a.rule,
             "pattern": a.pattern, "profile": a.profile, "distribution": a.distribution,
             "reason": a.reason, "trace": a.trace}
            for a in plan.actions
        ],
        "protected": [
            {"saved_by": s, "bytes": v[0], "files": v[1]}
            for s, v in sorted(saved.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ],
        "kept_on_evidence": sorted(evidence.values(), key=lambda g: (-g["bytes"], g["distribution"],
                                                                    g["rule"], g["saved_by"])),
        "largest_kept": [{"path": _clean(p), "bytes": b} for p, b in largest],
        "verification": {
            "status": extras.verification,
            "failures": list(extras.failures),
            **({"checked": {k: v for k, v in extras.verified.items() if k != "not_verified"},
                "not_verified": extras.verified.get("not_verified", [])}
               if extras.verified is not None else {}),
        },
        "timings": {k: round(v, 3) for k, v in extras.timings},
        "stripped": list(extras.stripped),
        "bytecode": extras.bytecode,
        "startup": extras.startup,
        "diagnostics": [
            {"level": d.level, "code": d.code, "message": _clean(d.message), "path": _clean(d.path)}
            for d in plan.diagnostics
        ],
        "warnings": list(extras.warnings),
        "already_lean": _already_lean(plan),
        "layer_rule": extras.layer_note,
    }
    if extras.max_size is not None:
        data["max_size"] = {"limit": extras.max_size, "exceeded": after > extras.max_size}
    data.update(extras.extra)
    return data


#: Below this share removed, the report says what the environment already lacks.
_LEAN_PERCENT = 10.0


def _already_lean(plan: Plan) -> Optional[dict[str, Any]]:
    """Why little goes from an environment (uv's, or one pruned before): what a
    pip-made venv carries that this one never had. None when a fair share goes anyway."""
    inv = plan.inventory
    if not inv.bytes_total or 100.0 * plan.bytes_removed / inv.bytes_total >= _LEAN_PERCENT:
        return None
    from collections import Counter

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


_BYTECODE_EFFECT = {
    "drop": ("caches removed: each cold start compiles the sources again (and writes caches "
             "where it can); --bytecode compile keeps start-up fast for the bytes of the caches"),
    "keep": "caches kept as they were",
    "compile": "caches rebuilt by --bytecode compile (unchecked-hash)",
}


def _startup_text(s: dict[str, Any]) -> str:
    """``Start-up (import fastapi, uvicorn; REQUESTED): 0.41 s before, 0.83 s after (+102%); ...``."""
    from .startup import describe

    mods = s["modules"]
    shown = ", ".join(mods[:6]) + (f" and {len(mods) - 6} more" if len(mods) > 6 else "")
    what = f"import {shown}" if mods else "the REQUESTED distributions' modules"
    effect = _BYTECODE_EFFECT.get(s.get("bytecode") or "", "")
    return f"Start-up ({what}): {describe(s)}" + (f"; bytecode {s['bytecode']}: {effect}" if effect else "")


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0.0%"


def _render_text(d: dict[str, Any], verbose: bool) -> str:
    t = d["totals"]
    lines: list[str] = []
    rolled_back = str(d["verification"].get("status", "")).startswith("failed")
    mode = "would remove" if d["dry_run"] else ("would have removed (rolled back)" if rolled_back else "removed")
    lines.append(f"venv-prune: {d['target']['root']} ({d['target']['kind']}, Python "
                 f"{d['target']['python'] or '?'}), profile {d['profile']}"
                 + (" [dry run]" if d["dry_run"] else ""))
    strip = t["bytes_saved_by_strip"]
    by_strip = (f" + {'about ' if d['dry_run'] else ''}{human_bytes(strip)} by strip "
                f"({_pct(strip, t['bytes_before'])})") if strip else ""
    lines.append(f"  {mode} {human_bytes(t['bytes_removed'])} of {human_bytes(t['bytes_before'])} "
                 f"({t['percent_removed']:.1f}%), {t['files_removed']} of {t['files_before']} files"
                 f"{by_strip}; {human_bytes(t['bytes_after'])} stays"
                 + (f" (compiled bytecode included: +{human_bytes(t['bytes_added_by_bytecode'])})"
                    if t["bytes_added_by_bytecode"] else ""))
    status = d["verification"]["status"]
    lines.append(f"  verification: {status}")
    checked = d["verification"].get("checked")
    if checked:
        touched = checked.get("touched_modules", 0)
        lines.append(f"    checked again: {checked['modules']} modules"
                     + (f" ({touched} beside removed files)" if touched else "")
                     + f", {checked['entry_points']} entry points, {checked['checks']} checks")
    gone = d["verification"].get("not_verified") or []
    if gone:
        names = ", ".join(f"{g['kind']} {g['name']}" for g in gone)
        lines.append(f"    not verified, removed on purpose: {names}")
    if d.get("layer_rule"):
        lines.append(f"  layers: {d['layer_rule']}")
    if d["timings"]:
        total = d["timings"].get("total")
        parts = [f"{k} {v:.1f}s" for k, v in d["timings"].items() if k != "total"]
        vshare = d["timings"].get("baseline", 0) + d["timings"].get("verify", 0)
        share = f", verification {_pct(int(vshare * 1000), int(total * 1000))} of it" if total else ""
        lines.append(f"  time: {total:.1f}s ({', '.join(parts)}{share})" if total else f"  time: {', '.join(parts)}")
    for f in d["verification"]["failures"]:
        lines.append(f"  BROKEN {f['kind']} {f['name']} ({f.get('distribution') or 'unowned'}): {f['error']}")
        if f.get("rules"):
            lines.append(f"    removed by: {', '.join(f['rules'])}")
    if d["rules"]:
        lines.append("")
        lines.append("By rule:")
        for r in d["rules"]:
            lines.append(f"  {human_bytes(r['bytes']):>10}  {r['files']:>7} files  {r['rule']}")
    if d["distributions"]:
        lines.append("")
        lines.append("By distribution, largest after first (before -> after, removed):")
        rows = sorted(d["distributions"], key=lambda r: (-r["bytes_after"], r["name"]))
        shown = rows if verbose else rows[:15]
        for r in shown:
            extra = f"  (trace: {human_bytes(r['bytes_removed_by_trace'])})" if r["bytes_removed_by_trace"] else ""
            gone = r["bytes_before"] - r["bytes_after"]
            share = "-" + _pct(gone, r["bytes_before"]) if gone else ""
            lines.append(f"  {human_bytes(r['bytes_before']):>10} -> {human_bytes(r['bytes_after']):>10}"
                         f"  {share:>7}  {r['files_removed']:>7} files  {r['name']}{extra}")
        if len(rows) > len(shown):
            lines.append(f"  ... {len(rows) - len(shown)} more (-v shows all)")
    decisions = d["distribution_decisions"]
    removed_d = [x for x in decisions if x["remove"]]
    if decisions:
        lines.append("")
        lines.append(f"Distributions: {len(removed_d)} {'would go' if d['dry_run'] else 'removed'}")
        for x in removed_d:
            lines.append(f"  - {x['name']} {x['version']} ({human_bytes(x['bytes'])}): {x['reason']}")
        # Kept only because the user installed them by name: each with the option that
        # removes it (issue 15, kind D), always shown.
        for x in decisions:
            if x.get("remove_with"):
                lines.append(f"  ? {x['name']} {x['version']} ({human_bytes(x['bytes'])}): kept, installed "
                             f"by name although a profile list names it; {x['remove_with']} removes it")
        notable = [x for x in decisions if not x["remove"] and not x.get("remove_with")
                   and (x["chain"] or verbose)]
        for x in notable if verbose else notable[:10]:
            reason = x["reason"] if x["reason"].startswith("kept") else f"kept: {x['reason']}"
            lines.append(f"  = {x['name']} {x['version']} {reason}")
    if d["stripped"]:
        saved = sum(s.get("bytes_saved", 0) for s in d["stripped"])
        lines.append("")
        lines.append(f"Would strip {len(d['stripped'])} ELF files, about {human_bytes(saved)} saved "
                     "(estimated from their section headers)" if d["dry_run"] else
                     f"Stripped {len(d['stripped'])} ELF files, {human_bytes(saved)} saved")
    if d.get("startup"):
        lines.append("")
        lines.append(_startup_text(d["startup"]))
    if d.get("bytecode"):
        b = d["bytecode"]
        lines.append("")
        lines.append(f"Bytecode: {b.get('summary', b)}")
    if d["protected"]:
        lines.append("")
        lines.append("Matched a rule but protected:")
        for p in d["protected"]:
            lines.append(f"  {human_bytes(p['bytes']):>10}  {p['files']:>7} files  {p['saved_by']}")
    if d.get("kept_on_evidence"):
        lines.append("")
        lines.append("Kept because kept code reads them at run time (evidence):")
        shown = d["kept_on_evidence"] if verbose else d["kept_on_evidence"][:10]
        for g in shown:
            lines.append(f"  {human_bytes(g['bytes']):>10}  {g['files']:>7} files  {g['distribution']} "
                         f"[{g['rule']}] {g['saved_by']}: {g['reasons'][0]}")
        if len(d["kept_on_evidence"]) > len(shown):
            lines.append(f"  ... {len(d['kept_on_evidence']) - len(shown)} more (-v shows all)")
    if d["largest_kept"]:
        lines.append("")
        lines.append("Largest things that stay:")
        for p in d["largest_kept"][:10]:
            lines.append(f"  {human_bytes(p['bytes']):>10}  {p['path']}")
    if verbose and d["actions"]:
        lines.append("")
        lines.append("Actions:")
        for a in d["actions"]:
            tr = " [trace]" if a["trace"] else ""
            lines.append(f"  {human_bytes(a['bytes']):>10}  {a['path']}{'/' if a['kind'] == 'dir' else ''}"
                         f"  [{a['rule']}: {a['pattern']}]{tr}")
    diags = [x for x in d["diagnostics"] if x["level"] == "warning" or verbose]
    if diags or d["warnings"]:
        lines.append("")
        lines.append("Diagnostics:")
        for w in d["warnings"]:
            lines.append(f"  warning: {w}")
        for x in diags:
            where = f"{x['path']}: " if x["path"] else ""
            lines.append(f"  {x['level']}: {where}{x['message']}")
    lean = d.get("already_lean")
    if lean:
        lines.append("")
        by = f"installed by {lean['installer']}, " if lean["installer"] else ""
        absent = lean["absent"]
        listed = ", ".join(absent[:-1]) + f" or {absent[-1]}" if len(absent) > 1 else absent[0]
        lines.append(f"Why so little goes: the environment is already lean ({by}it has no "
                     f"{listed}); what stays is the distributions' code and data.")
        if lean["note"]:
            lines.append(f"  {lean['note']}; see 'By distribution' for what each one keeps.")
    if "max_size" in d:
        m = d["max_size"]
        verdict = "EXCEEDED" if m["exceeded"] else "ok"
        lines.append("")
        lines.append(f"Size gate: {human_bytes(t['bytes_after'])} vs limit {human_bytes(m['limit'])}: {verdict}")
    return "\n".join(lines) + "\n"


def _render_markdown(d: dict[str, Any]) -> str:
    t = d["totals"]
    out = [f"# venv-prune report: `{d['target']['root']}`", ""]
    out.append(f"Profile **{d['profile']}**{' (dry run)' if d['dry_run'] else ''}, "
               f"verification: {d['verification']['status']}.")
    if d.get("layer_rule"):
        out += ["", f"Layers: {d['layer_rule']}."]
    out.append("")
    out.append("| | bytes | files |")
    out.append("|---|---:|---:|")
    out.append(f"| before | {human_bytes(t['bytes_before'])} | {t['files_before']} |")
    out.append(f"| removed | {human_bytes(t['bytes_removed'])} ({t['percent_removed']:.1f}%) | {t['files_removed']} |")
    out.append(f"| after | {human_bytes(t['bytes_after'])} | {t['files_before'] - t['files_removed']} |")
    if d["rules"]:
        out += ["", "## By rule", "", "| rule | bytes | files |", "|---|---:|---:|"]
        out += [f"| {r['rule']} | {human_bytes(r['bytes'])} | {r['files']} |" for r in d["rules"]]
    if d["distributions"]:
        out += ["", "## By distribution", "", "| distribution | before | after | removed | files |",
                "|---|---:|---:|---:|---:|"]
        out += [f"| {r['name']} | {human_bytes(r['bytes_before'])} | {human_bytes(r['bytes_after'])} | "
                f"{human_bytes(r['bytes_removed'])} | {r['files_removed']} |"
                for r in sorted(d["distributions"], key=lambda r: (-r["bytes_after"], r["name"]))]
    decisions = [x for x in d["distribution_decisions"] if x["remove"] or x["chain"]]
    if decisions:
        out += ["", "## Distribution decisions", "", "| distribution | decision | why |", "|---|---|---|"]
        out += [f"| {x['name']} {x['version']} | {'remove' if x['remove'] else 'keep'} | {x['reason']} |"
                for x in decisions]
    if d.get("kept_on_evidence"):
        out += ["", "## Kept because kept code reads them at run time", "",
                "| distribution | rule | evidence | files | bytes | why |", "|---|---|---|---:|---:|---|"]
        out += [f"| {g['distribution']} | {g['rule']} | {g['saved_by']} | {g['files']} | "
                f"{human_bytes(g['bytes'])} | {g['reasons'][0].replace('|', '/')} |" for g in d["kept_on_evidence"]]
    if d["largest_kept"]:
        out += ["", "## Largest things that stay", "", "| path | bytes |", "|---|---:|"]
        out += [f"| `{p['path']}` | {human_bytes(p['bytes'])} |" for p in d["largest_kept"]]
    if d["verification"]["failures"]:
        out += ["", "## Verification failures", ""]
        out += [f"- {f['kind']} `{f['name']}`: {f['error']} (removed by {', '.join(f.get('rules', [])) or '?'})"
                for f in d["verification"]["failures"]]
    if d["diagnostics"]:
        out += ["", "## Diagnostics", ""]
        out += [f"- {x['level']}: `{x['path']}` {x['message']}" for x in d["diagnostics"]]
    return "\n".join(out) + "\n"


def render(plan: Plan, fmt: str = "text", extras: Extras = Extras(), *, verbose: bool = False) -> str:
    """Render ``plan`` (with what a real run added in ``extras``) as text, json or markdown."""
    with paused_gc():
        return _render(summarise(plan, extras), fmt, verbose)


def _render(data: dict[str, Any], fmt: str, verbose: bool) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _render_markdown(data)
    return _render_text(data, verbose)
