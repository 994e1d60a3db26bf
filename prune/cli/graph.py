"""``venv-prune graph PATH``: the distribution graph, its roots, and what could go and why.

Read-only. The decisions shown are exactly the ones a prune with the same profile and roots
would make: they are the dry-run plan's own (:func:`prune.plan.build_plan`, which asks
:func:`prune.graph.decide_distributions` with the import and run evidence it finds); this
command only renders them, with the graph around them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..graph import (
    Edge,
    Graph,
    GraphDecision,
    candidates_in,
    decide_distributions,
    project_name,
    roots_from_requirements,
)
from ..model import Inventory
from ..profiles import Knowledge, Profile

__all__ = ["graph_command", "planned_decision"]

_ROOT_SOURCES = {
    "explicit": "named explicitly",
    "requested": "REQUESTED: installed by name",
    "all": "nothing is marked REQUESTED, so every distribution counts",
}


def planned_decision(inventory: Inventory, profile: Profile, roots: Sequence[str],
                     knowledge: Knowledge) -> GraphDecision:
    """The distribution decisions a prune of ``inventory`` with ``profile`` and ``roots``
    would make, with the graph, roots and candidates they came from.

    The decisions are the dry-run plan's (:func:`prune.plan.build_plan`): the same import and
    run evidence, the same distributions kept whole (an unreadable RECORD, a kept file), the
    same rounds. The roots, their source and the graph do not depend on that evidence, so
    they come from :func:`prune.graph.decide_distributions` without it, which also checks the
    root names first (one line naming a mistyped one). A profile that needs a trace
    (minimal) is planned without one, as this command takes none: a distribution only a
    trace would keep is shown removed. A plan removing every distribution installed by
    name, which a prune refuses, is shown as planned.

    :raises UsageError: a root is not installed.
    """
    from dataclasses import replace

    from .._gc import paused_gc
    from ..plan import PlanOptions, build_plan
    from ..plan.distributions import distribution_sizes
    from ..sources import DiskSources

    outline = decide_distributions(
        inventory.distributions,
        marker_env=inventory.env.marker_environment(),
        roots=list(roots) or None,
        removable=profile.remove_distributions,
        dev_tools=dict(knowledge.dev_tools) if profile.remove_dev_tools else None,
        sizes=dict(distribution_sizes(inventory.files)),
        dev_extras=knowledge.dev_extras,
        lists_remove_requested=profile.lists_remove_requested,
    )
    planned = replace(profile, requires_trace=False) if profile.requires_trace else profile
    # force: the plan is shown even where a prune would refuse it (it removes every
    # distribution installed by name); without --remove-dist it changes nothing else.
    options = PlanOptions(roots=tuple(roots) or None, force=True)
    with DiskSources(inventory.env.root, inventory) as sources, paused_gc():
        decisions = build_plan(inventory, planned, options, sources=sources, knowledge=knowledge).distributions
    if not decisions:  # the profile removes no whole distribution: every one stays
        return outline
    return replace(outline, decisions=decisions, candidates=candidates_in(decisions))


def _summary(inventory: Inventory, decision: GraphDecision) -> dict[str, Any]:
    """Everything the graph command shows, as plain data in a stable order."""
    graph = decision.graph
    env = inventory.env
    version = env.python_version
    reaches = {
        root: sorted(graph.reachable([root]) - {root}) for root in decision.roots
    }
    candidates = set(decision.candidates)
    return {
        "environment": str(env.root),
        "kind": env.kind,
        "python_version": f"{version[0]}.{version[1]}" if version else None,
        "root_source": decision.root_source,
        "roots": list(decision.roots),
        "reaches": reaches,
        "candidates": list(decision.candidates),
        "bytes_removed": decision.bytes_removed,
        "distributions": [
            {
                "name": d.name,
                "version": d.version,
                "remove": d.remove,
                "candidate": d.name in candidates,
                "bytes": d.bytes,
                "reason": d.reason,
                "chain": list(d.chain),
                "requires": [e.target for e in graph.requires[d.name]],
                "required_by": sorted({e.source for e in graph.required_by[d.name]}),
            }
            for d in decision.decisions
        ],
        "missing": [list(m) for m in graph.missing],
        "diagnostics": [
            {"level": x.level, "code": x.code, "message": x.message, "path": x.path}
            for x in (*inventory.diagnostics, *decision.diagnostics)
        ],
    }


def _render_text(data: Mapping[str, Any]) -> str:
    from ..report.units import human_bytes

    dists = data["distributions"]
    labels = {d["name"]: f"{d['name']} {d['version']}" for d in dists}
    width = max((len(v) for v in labels.values()), default=0)
    version = f", Python {data['python_version']}" if data["python_version"] else ""
    total = sum(d["bytes"] for d in dists)
    roots = ", ".join(labels[r] for r in data["roots"]) or "none"
    lines = [
        (f"{data['environment']} ({data['kind']}{version}): {len(dists)} distributions, "
        f"{human_bytes(total)}"),
        f"roots ({_ROOT_SOURCES[data['root_source']]}): {roots}",
    ]
    if data["reaches"]:
        lines += ["", "needed by each root:"]
        for root, reached in data["reaches"].items():
            lines.append(f"  {labels[root]}: {', '.join(reached) or 'nothing else'}")

    def row(d: Mapping[str, Any]) -> str:
        reason = d["reason"].split(": ", 1)[1] if ": " in d["reason"] else d["reason"]
        return f"  {labels[d['name']]:<{width}}  {human_bytes(d['bytes']):>10}  {reason}"

    gone = [d for d in dists if d["remove"]]
    kept_candidates = [d for d in dists if d["candidate"] and not d["remove"]]
    kept = [d for d in dists if not d["candidate"] and not d["remove"]]
    lines += ["", f"removed ({len(gone)}, {human_bytes(data['bytes_removed'])}):"]
    lines += [row(d) for d in gone] or ["  nothing"]
    if kept_candidates:
        size = human_bytes(sum(d["bytes"] for d in kept_candidates))
        lines += ["", (f"removal candidates kept ({len(kept_candidates)}, {size}; only explicit "
                  f"--root/--requirements remove them):")]
        lines += [row(d) for d in kept_candidates]
    lines += ["", f"kept ({len(kept)}):"]
    lines += [row(d) for d in kept] or ["  nothing"]
    if data["missing"]:
        lines += ["", "required but not installed (markers hold for the target):"]
        lines += [f"  {labels.get(name, name)}: {req}" for name, req in data["missing"]]
    return "\n".join(lines)


def _tree(data: Mapping[str, Any], graph: Graph, *, reverse: bool) -> list[dict[str, Any]]:
    """The requirement graph as pipdeptree draws it: top-level distributions (nothing
    installed requires them) with what they require below; reversed, the distributions that
    require nothing, with what requires them below. A distribution on its own path is shown
    once more, marked as a cycle, and not expanded again."""
    from packaging.requirements import InvalidRequirement, Requirement

    dists = {d["name"]: d for d in data["distributions"]}

    def spec(requirement: str) -> str:
        try:
            return str(Requirement(requirement).specifier) or "any"
        except InvalidRequirement:
            return requirement

    def node(name: str, edge: Edge | None, path: tuple[str, ...]) -> dict[str, Any]:
        d = dists[name]
        out: dict[str, Any] = {"name": name, "version": d["version"], "remove": d["remove"]}
        if edge is not None:
            out["required"] = spec(edge.requirement) if not reverse else edge.requirement
            if edge.extra:
                out["extra"] = edge.extra
        if name in path:
            out["cycle"] = True
            return out
        edges = graph.required_by[name] if reverse else graph.requires[name]
        out["children"] = [node(e.source if reverse else e.target, e, path + (name,))
                           for e in sorted(edges, key=lambda e: (e.source if reverse else e.target, e.extra))
                           if (e.source if reverse else e.target) in dists]
        return out

    incoming = graph.requires if reverse else graph.required_by
    tops = [n for n in sorted(dists) if not any(
        (e.target if reverse else e.source) in dists for e in incoming[n])]
    nodes = [node(n, None, ()) for n in tops]
    # Distributions that require one another in a loop have no top: each loop is drawn from
    # its first member not yet shown.
    shown: set[str] = set()

    def mark(n: dict[str, Any]) -> None:
        shown.add(n["name"])
        for c in n.get("children", ()):
            mark(c)

    for n in nodes:
        mark(n)
    for name in sorted(dists):
        if name not in shown:
            nodes.append(node(name, None, ()))
            mark(nodes[-1])
    return nodes


def _render_tree(nodes: list[dict[str, Any]], *, reverse: bool) -> str:
    lines: list[str] = []

    def walk(n: dict[str, Any], depth: int) -> None:
        if not depth:
            label = f"{n['name']}=={n['version']}"
        elif reverse:
            label = f"{n['name']}=={n['version']} [requires: {n['required']}]"
        else:
            label = f"{n['name']} [required: {n['required']}, installed: {n['version']}]"
        if depth:
            if n.get("extra"):
                label += f" (extra: {n['extra']})"
        if n["remove"]:
            label += "  <- goes"
        if n.get("cycle"):
            label += "  (cycle)"
        lines.append(("  " * depth + "- " if depth else "") + label)
        for c in n.get("children", ()):
            walk(c, depth + 1)

    for n in nodes:
        walk(n, 0)
    return "\n".join(lines)


@click.command(
    "graph",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--root", "roots", multiple=True, metavar="NAME",
              help="A distribution the application needs (repeatable). With roots, every "
                   "distribution they do not need is removed.")
@click.option("--requirements", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Take roots from a requirements file or a pyproject.toml.")
@click.option("--extra", "extras", multiple=True, metavar="NAME",
              help="With --requirements pyproject.toml: also an optional-dependencies group.")
@click.option("--profile", default="standard", show_default=True, metavar="NAME",
              help="Profile deciding whether development tools and pip/setuptools/wheel go.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--tree", is_flag=True,
              help="Draw the requirements as a tree, as pipdeptree does ('<- goes': a prune removes it).")
@click.option("--reverse", "-r", is_flag=True,
              help="A tree of what requires each distribution (pipdeptree --reverse); implies --tree.")
def graph_command(path: Path, roots: tuple[str, ...], requirements: Path | None,
                  extras: tuple[str, ...], profile: str, fmt: str, tree: bool = False,
                  reverse: bool = False) -> None:
    """Show the distribution graph of the environment at PATH: the roots, what each root
    needs, and which distributions a prune would remove, with their sizes and why.

    Roots are --root and --requirements names, else the distributions pip or uv marked
    REQUESTED, else all of them. Development tools (pytest, mypy, black, ...) are never roots
    by themselves. Nothing a kept distribution requires or imports is ever removed.

    \b
    Examples:
      venv-prune graph /opt/venv
      venv-prune graph /opt/venv --root flask --root gunicorn
      venv-prune graph /opt/venv --requirements pyproject.toml --extra postgres
      venv-prune graph /opt/venv --format json > graph.json
      venv-prune graph /opt/venv --tree
      venv-prune graph /opt/venv --reverse      # who requires h11?
    """
    from ..env import locate
    from ..profiles import load_knowledge, load_profile
    from ..scan import scan

    if extras and requirements is None:
        raise UsageError("--extra needs --requirements pyproject.toml")
    env = locate(path)
    marker_env = env.marker_environment()
    chosen = load_profile(profile)
    inventory = scan(env)
    installed = {d.name for d in inventory.distributions}
    root_names = list(roots)
    if requirements is not None:
        root_names += roots_from_requirements(requirements, extras, marker_env=marker_env)
        own = project_name(requirements)
        if own and own in installed:
            root_names.append(own)
    decision = planned_decision(inventory, chosen, root_names, load_knowledge())
    data = _summary(inventory, decision)
    if tree or reverse:
        nodes = _tree(data, decision.graph, reverse=reverse)
        click.echo(json.dumps(nodes, indent=2) if fmt == "json" else _render_tree(nodes, reverse=reverse))
        return
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(_render_text(data))
