"""The text report (the default, on a terminal): a header with the totals and the verdict,
then one block per section, each left out when it has nothing to say.

Every section is a function of the summary (:func:`prune.report.summarise`) and ``verbose``
(``-v``: every row instead of the first ten or fifteen) that returns its lines, a block
starting with an empty line. The command line colours a few of these lines by pattern
(``prune.cli.prune._STYLES``): keep "  verification: ...", "  BROKEN" and "Size gate: ..." as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .units import human_bytes

__all__ = ["render_text"]

Data = Mapping[str, Any]

#: Rows shown without -v in the longer lists.
_SHOWN_DISTRIBUTIONS = 15
_SHOWN = 10

_BYTECODE_EFFECT = {
    "drop": ("caches removed: each cold start compiles the sources again (and writes caches "
             "where it can); --bytecode compile keeps start-up fast for the bytes of the caches"),
    "keep": "caches kept as they were",
    "compile": "caches rebuilt by --bytecode compile (unchecked-hash)",
}


def render_text(data: Data, *, verbose: bool = False) -> str:
    """The summary as text lines, newline-terminated."""
    lines = [line for section in _SECTIONS for line in section(data, verbose)]
    return "\n".join(lines) + "\n"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0.0%"


def _header(d: Data, verbose: bool) -> list[str]:
    """What was pruned, with which profile, and how much goes and stays."""
    t = d["totals"]
    rolled_back = str(d["verification"].get("status", "")).startswith("failed")
    mode = "would remove" if d["dry_run"] else ("would have removed (rolled back)" if rolled_back else "removed")
    strip = t["bytes_saved_by_strip"]
    by_strip = (f" + {'about ' if d['dry_run'] else ''}{human_bytes(strip)} by strip "
                f"({_pct(strip, t['bytes_before'])})") if strip else ""
    compiled = (f" (compiled bytecode included: +{human_bytes(t['bytes_added_by_bytecode'])})"
                if t["bytes_added_by_bytecode"] else "")
    return [
        f"venv-prune: {d['target']['root']} ({d['target']['kind']}, Python "
        f"{d['target']['python'] or '?'}), profile {d['profile']}" + (" [dry run]" if d["dry_run"] else ""),
        f"  {mode} {human_bytes(t['bytes_removed'])} of {human_bytes(t['bytes_before'])} "
        f"({t['percent_removed']:.1f}%), {t['files_removed']} of {t['files_before']} files"
        f"{by_strip}; {human_bytes(t['bytes_after'])} stays{compiled}",
    ]


def _verification(d: Data, verbose: bool) -> list[str]:
    """The verdict, what was checked again, and what went unverified on purpose."""
    v = d["verification"]
    lines = [f"  verification: {v['status']}"]
    checked = v.get("checked")
    if checked:
        touched = checked.get("touched_modules", 0)
        lines.append(f"    checked again: {checked['modules']} modules"
                     + (f" ({touched} beside removed files)" if touched else "")
                     + f", {checked['entry_points']} entry points, {checked['checks']} checks")
    gone = v.get("not_verified") or []
    if gone:
        names = ", ".join(f"{g['kind']} {g['name']}" for g in gone)
        lines.append(f"    not verified, removed on purpose: {names}")
    return lines


def _layers(d: Data, verbose: bool) -> list[str]:
    return [f"  layers: {d['layer_rule']}"] if d.get("layer_rule") else []


def _time(d: Data, verbose: bool) -> list[str]:
    """Wall time per phase, and verification's share of the total."""
    timings = d["timings"]
    if not timings:
        return []
    total = timings.get("total")
    parts = [f"{k} {v:.1f}s" for k, v in timings.items() if k != "total"]
    if not total:
        return [f"  time: {', '.join(parts)}"]
    vshare = timings.get("baseline", 0) + timings.get("verify", 0)
    share = f", verification {_pct(int(vshare * 1000), int(total * 1000))} of it"
    return [f"  time: {total:.1f}s ({', '.join(parts)}{share})"]


def _failures(d: Data, verbose: bool) -> list[str]:
    """Each module or entry point that broke, and the rules that removed what it needed."""
    lines = []
    for f in d["verification"]["failures"]:
        lines.append(f"  BROKEN {f['kind']} {f['name']} ({f.get('distribution') or 'unowned'}): {f['error']}")
        if f.get("rules"):
            lines.append(f"    removed by: {', '.join(f['rules'])}")
    return lines


def _by_rule(d: Data, verbose: bool) -> list[str]:
    if not d["rules"]:
        return []
    return ["", "By rule:"] + [f"  {human_bytes(r['bytes']):>10}  {r['files']:>7} files  {r['rule']}"
                               for r in d["rules"]]


def _by_distribution(d: Data, verbose: bool) -> list[str]:
    """Each distribution before -> after, largest after first (the first 15 without -v)."""
    if not d["distributions"]:
        return []
    lines = ["", "By distribution, largest after first (before -> after, removed):"]
    rows = sorted(d["distributions"], key=lambda r: (-r["bytes_after"], r["name"]))
    shown = rows if verbose else rows[:_SHOWN_DISTRIBUTIONS]
    for r in shown:
        trace = f"  (trace: {human_bytes(r['bytes_removed_by_trace'])})" if r["bytes_removed_by_trace"] else ""
        gone = r["bytes_before"] - r["bytes_after"]
        share = "-" + _pct(gone, r["bytes_before"]) if gone else ""
        lines.append(f"  {human_bytes(r['bytes_before']):>10} -> {human_bytes(r['bytes_after']):>10}"
                     f"  {share:>7}  {r['files_removed']:>7} files  {r['name']}{trace}")
    if len(rows) > len(shown):
        lines.append(f"  ... {len(rows) - len(shown)} more (-v shows all)")
    return lines


def _distribution_decisions(d: Data, verbose: bool) -> list[str]:
    """Distributions that go (``-``), kept only because installed by name (``?``, always shown,
    each with the option that removes it: issue 15, kind D), and kept for a reason (``=``)."""
    decisions = d["distribution_decisions"]
    if not decisions:
        return []
    removed = [x for x in decisions if x["remove"]]
    lines = ["", f"Distributions: {len(removed)} {'would go' if d['dry_run'] else 'removed'}"]
    for x in removed:
        lines.append(f"  - {x['name']} {x['version']} ({human_bytes(x['bytes'])}): {x['reason']}")
    for x in decisions:
        if x.get("remove_with"):
            lines.append(f"  ? {x['name']} {x['version']} ({human_bytes(x['bytes'])}): kept, installed "
                         f"by name although a profile list names it; {x['remove_with']} removes it")
    notable = [x for x in decisions if not x["remove"] and not x.get("remove_with") and (x["chain"] or verbose)]
    for x in notable if verbose else notable[:_SHOWN]:
        reason = x["reason"] if x["reason"].startswith("kept") else f"kept: {x['reason']}"
        lines.append(f"  = {x['name']} {x['version']} {reason}")
    return lines


def _stripped(d: Data, verbose: bool) -> list[str]:
    if not d["stripped"]:
        return []
    saved = sum(s.get("bytes_saved", 0) for s in d["stripped"])
    if d["dry_run"]:
        return ["", f"Would strip {len(d['stripped'])} ELF files, about {human_bytes(saved)} saved "
                    "(estimated from their section headers)"]
    return ["", f"Stripped {len(d['stripped'])} ELF files, {human_bytes(saved)} saved"]


def _startup(d: Data, verbose: bool) -> list[str]:
    """``Start-up (import fastapi, uvicorn): 0.41 s before, 0.83 s after (+102%); bytecode ...``."""
    s = d.get("startup")
    if not s:
        return []
    from ..startup import describe

    mods = s["modules"]
    shown = ", ".join(mods[:6]) + (f" and {len(mods) - 6} more" if len(mods) > 6 else "")
    what = f"import {shown}" if mods else "the REQUESTED distributions' modules"
    effect = _BYTECODE_EFFECT.get(s.get("bytecode") or "", "")
    return ["", f"Start-up ({what}): {describe(s)}" + (f"; bytecode {s['bytecode']}: {effect}" if effect else "")]


def _bytecode(d: Data, verbose: bool) -> list[str]:
    b = d.get("bytecode")
    return ["", f"Bytecode: {b.get('summary', b)}"] if b else []


def _protected(d: Data, verbose: bool) -> list[str]:
    if not d["protected"]:
        return []
    return ["", "Matched a rule but protected:"] + [
        f"  {human_bytes(p['bytes']):>10}  {p['files']:>7} files  {p['saved_by']}" for p in d["protected"]]


def _kept_on_evidence(d: Data, verbose: bool) -> list[str]:
    groups = d.get("kept_on_evidence")
    if not groups:
        return []
    lines = ["", "Kept because kept code reads them at run time (evidence):"]
    shown = groups if verbose else groups[:_SHOWN]
    for g in shown:
        lines.append(f"  {human_bytes(g['bytes']):>10}  {g['files']:>7} files  {g['distribution']} "
                     f"[{g['rule']}] {g['saved_by']}: {g['reasons'][0]}")
    if len(groups) > len(shown):
        lines.append(f"  ... {len(groups) - len(shown)} more (-v shows all)")
    return lines


def _largest_kept(d: Data, verbose: bool) -> list[str]:
    if not d["largest_kept"]:
        return []
    return ["", "Largest things that stay:"] + [
        f"  {human_bytes(p['bytes']):>10}  {p['path']}" for p in d["largest_kept"][:_SHOWN]]


def _actions(d: Data, verbose: bool) -> list[str]:
    """Every action with its rule and pattern (-v only); a directory ends in ``/``."""
    if not (verbose and d["actions"]):
        return []
    lines = ["", "Actions:"]
    for a in d["actions"]:
        tr = " [trace]" if a["trace"] else ""
        lines.append(f"  {human_bytes(a['bytes']):>10}  {a['path']}{'/' if a['kind'] == 'dir' else ''}"
                     f"  [{a['rule']}: {a['pattern']}]{tr}")
    return lines


def _diagnostics(d: Data, verbose: bool) -> list[str]:
    """The run's warnings, then the scan's and plan's warnings (and, with -v, everything else)."""
    diags = [x for x in d["diagnostics"] if x["level"] == "warning" or verbose]
    if not (diags or d["warnings"]):
        return []
    lines = ["", "Diagnostics:"] + [f"  warning: {w}" for w in d["warnings"]]
    for x in diags:
        where = f"{x['path']}: " if x["path"] else ""
        lines.append(f"  {x['level']}: {where}{x['message']}")
    return lines


def _already_lean(d: Data, verbose: bool) -> list[str]:
    lean = d.get("already_lean")
    if not lean:
        return []
    by = f"installed by {lean['installer']}, " if lean["installer"] else ""
    absent = lean["absent"]
    listed = ", ".join(absent[:-1]) + f" or {absent[-1]}" if len(absent) > 1 else absent[0]
    lines = ["", f"Why so little goes: the environment is already lean ({by}it has no "
                 f"{listed}); what stays is the distributions' code and data."]
    if lean["note"]:
        lines.append(f"  {lean['note']}; see 'By distribution' for what each one keeps.")
    return lines


def _size_gate(d: Data, verbose: bool) -> list[str]:
    if "max_size" not in d:
        return []
    m = d["max_size"]
    verdict = "EXCEEDED" if m["exceeded"] else "ok"
    return ["", f"Size gate: {human_bytes(d['totals']['bytes_after'])} vs limit {human_bytes(m['limit'])}: {verdict}"]


#: The sections in the order they print.
_SECTIONS: tuple[Callable[[Data, bool], list[str]], ...] = (
    _header, _verification, _layers, _time, _failures, _by_rule, _by_distribution,
    _distribution_decisions, _stripped, _startup, _bytecode, _protected, _kept_on_evidence,
    _largest_kept, _actions, _diagnostics, _already_lean, _size_gate,
)
