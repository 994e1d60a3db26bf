"""The Markdown report (for a CI summary or a pull request): a title, the totals as a table,
then one table or list per section, each left out when empty. It lists every row (no -v)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .units import human_bytes

__all__ = ["render_markdown"]

Data = Mapping[str, Any]


def render_markdown(data: Data) -> str:
    """The summary (:func:`prune.report.summarise`) as Markdown, newline-terminated."""
    lines = [line for section in _SECTIONS for line in section(data)]
    return "\n".join(lines) + "\n"


def _header(d: Data) -> list[str]:
    """Title, profile and verdict, the layer rule, and before / removed / after."""
    t = d["totals"]
    out = [f"# venv-prune report: `{d['target']['root']}`", "",
           f"Profile **{d['profile']}**{' (dry run)' if d['dry_run'] else ''}, "
           f"verification: {d['verification']['status']}."]
    if d.get("layer_rule"):
        out += ["", f"Layers: {d['layer_rule']}."]
    return out + [
        "",
        "| | bytes | files |",
        "|---|---:|---:|",
        f"| before | {human_bytes(t['bytes_before'])} | {t['files_before']} |",
        f"| removed | {human_bytes(t['bytes_removed'])} ({t['percent_removed']:.1f}%) | {t['files_removed']} |",
        f"| after | {human_bytes(t['bytes_after'])} | {t['files_before'] - t['files_removed']} |",
    ]


def _by_rule(d: Data) -> list[str]:
    if not d["rules"]:
        return []
    return ["", "## By rule", "", "| rule | bytes | files |", "|---|---:|---:|"] + [
        f"| {r['rule']} | {human_bytes(r['bytes'])} | {r['files']} |" for r in d["rules"]]


def _by_distribution(d: Data) -> list[str]:
    if not d["distributions"]:
        return []
    return ["", "## By distribution", "", "| distribution | before | after | removed | files |",
            "|---|---:|---:|---:|---:|"] + [
        f"| {r['name']} | {human_bytes(r['bytes_before'])} | {human_bytes(r['bytes_after'])} | "
        f"{human_bytes(r['bytes_removed'])} | {r['files_removed']} |"
        for r in sorted(d["distributions"], key=lambda r: (-r["bytes_after"], r["name"]))]


def _distribution_decisions(d: Data) -> list[str]:
    """Distributions removed, or kept for a reason (a requirement chain)."""
    decisions = [x for x in d["distribution_decisions"] if x["remove"] or x["chain"]]
    if not decisions:
        return []
    return ["", "## Distribution decisions", "", "| distribution | decision | why |", "|---|---|---|"] + [
        f"| {x['name']} {x['version']} | {'remove' if x['remove'] else 'keep'} | {x['reason']} |"
        for x in decisions]


def _kept_on_evidence(d: Data) -> list[str]:
    if not d.get("kept_on_evidence"):
        return []
    return ["", "## Kept because kept code reads them at run time", "",
            "| distribution | rule | evidence | files | bytes | why |", "|---|---|---|---:|---:|---|"] + [
        f"| {g['distribution']} | {g['rule']} | {g['saved_by']} | {g['files']} | "
        f"{human_bytes(g['bytes'])} | {g['reasons'][0].replace('|', '/')} |" for g in d["kept_on_evidence"]]


def _largest_kept(d: Data) -> list[str]:
    if not d["largest_kept"]:
        return []
    return ["", "## Largest things that stay", "", "| path | bytes |", "|---|---:|"] + [
        f"| `{p['path']}` | {human_bytes(p['bytes'])} |" for p in d["largest_kept"]]


def _failures(d: Data) -> list[str]:
    failures = d["verification"]["failures"]
    if not failures:
        return []
    return ["", "## Verification failures", ""] + [
        f"- {f['kind']} `{f['name']}`: {f['error']} (removed by {', '.join(f.get('rules', [])) or '?'})"
        for f in failures]


def _diagnostics(d: Data) -> list[str]:
    if not d["diagnostics"]:
        return []
    return ["", "## Diagnostics", ""] + [f"- {x['level']}: `{x['path']}` {x['message']}" for x in d["diagnostics"]]


#: The sections in the order they print.
_SECTIONS: tuple[Callable[[Data], list[str]], ...] = (
    _header, _by_rule, _by_distribution, _distribution_decisions, _kept_on_evidence, _largest_kept,
    _failures, _diagnostics,
)
