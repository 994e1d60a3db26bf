"""Distributions as a graph: who requires whom, what the application needs, what can go.

Pure: the graph is built from :class:`~prune.model.Distribution` metadata and a PEP 508 marker
environment for the *target* interpreter (``Environment.marker_environment()``), never the
interpreter running venv-prune. :func:`decide_distributions` turns it into one
:class:`~prune.model.DistDecision` per distribution, each with the chain of reasons that keeps
or removes it (issue 4, DESIGN.md "Distributions as a graph", invariant 6).

Requirements and markers are parsed by :mod:`packaging`; only the requirements-file reader
(:func:`roots_from_requirements`) is hand-written, since no library we depend on reads pip's
file format.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Union

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .errors import UsageError
from .imports import module_name_for
from .model import Diagnostic, DistDecision, Distribution

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "Edge",
    "Graph",
    "GraphDecision",
    "build_graph",
    "decide_distributions",
    "every_requested_removed",
    "installed_by_name",
    "is_dev_tool",
    "provided_modules",
    "project_name",
    "roots_from_requirements",
]

# Modules a distribution provides although its RECORD may not name them, each with the PEP 508
# marker (on the target interpreter) under which it does: kept code that imports them needs
# that distribution. pkg_resources: a missing RECORD (issue 4: fs imports pkg_resources).
# distutils: Python 3.12 removed it from the standard library (PEP 632); from then on only
# setuptools provides it, through distutils-precedence.pth and _distutils_hack (issue 15:
# undetected-chromedriver does `from distutils.version import LooseVersion`).
_PROVIDED: tuple[tuple[str, str, str], ...] = (
    ("pkg_resources", "setuptools", ""),
    ("_distutils_hack", "setuptools", ""),
    ("distutils", "setuptools", 'python_version >= "3.12"'),
)

# Installers and build tools that environment creation itself installs: ensurepip marks pip
# (and setuptools before Python 3.12) REQUESTED in every `python -m venv`, and builder stages
# upgrade them by name (`pip install -U pip setuptools wheel`). Their REQUESTED mark is not the
# user's word that the application runs them; evidence is (kept code importing pkg_resources
# or distutils, running `python -m pip`, ...), and --keep-dist.
SEEDED = frozenset({"pip", "setuptools", "wheel"})

DevTools = Union[Sequence[str], Mapping[str, str], None]


def provided_modules(marker_env: Mapping[str, str]) -> dict[str, str]:
    """Top-level module -> the distribution that provides it on the target interpreter,
    for modules no file of that name provides (``distutils`` from setuptools on 3.12+)."""
    return {module: dist for module, dist, marker in _PROVIDED
            if not marker or _applies(Marker(marker), marker_env, "")}


@dataclass(frozen=True)
class Edge:
    """``source`` requires ``target`` (canonical names).

    ``requirement`` is the requirement as written, without its marker (``Werkzeug>=3.1``);
    ``extra`` is the extra of ``source`` that brings it in ("" for a base requirement).
    """

    source: str
    target: str
    requirement: str
    extra: str = ""


@dataclass(frozen=True)
class Graph:
    """Installed distributions and the requirements between them, for one target interpreter.

    ``requires`` and ``required_by`` map every distribution to its outgoing and incoming
    edges (sorted). ``active_extras`` lists, per distribution, the extras whose requirements
    are all installed or that another distribution asks for (``pkg[extra]``).
    ``missing`` lists ``(distribution, requirement)`` pairs naming something not installed.
    """

    distributions: Mapping[str, Distribution]
    requires: Mapping[str, tuple[Edge, ...]]
    required_by: Mapping[str, tuple[Edge, ...]]
    active_extras: Mapping[str, tuple[str, ...]]
    missing: tuple[tuple[str, str], ...]
    diagnostics: tuple[Diagnostic, ...] = ()

    def label(self, name: str) -> str:
        """``"flask 3.1.0"``: the name as installed, with its version."""
        dist = self.distributions.get(name)
        return f"{dist.name} {dist.version}" if dist else name

    def reachable(self, names: Iterable[str]) -> frozenset[str]:
        """Every distribution the given ones require, directly or not (including them)."""
        seen: set[str] = set()
        todo = [n for n in names if n in self.distributions]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(e.target for e in self.requires.get(name, ()))
        return frozenset(seen)


@dataclass(frozen=True)
class GraphDecision:
    """What :func:`decide_distributions` decided.

    ``decisions`` has one entry per installed distribution, sorted by name. ``roots`` are the
    roots used and ``root_source`` where they came from (``"explicit"``, ``"requested"`` or
    ``"all"``). ``candidates`` are the distributions not needed by any root (nor by ``keep``
    or an editable install), sorted: without explicit roots they are reported but kept,
    unless they are development tools, removable, or needed only by removed ones.
    """

    decisions: tuple[DistDecision, ...]
    roots: tuple[str, ...]
    root_source: str
    candidates: tuple[str, ...]
    graph: Graph
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions if d.remove)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions if not d.remove)

    @property
    def bytes_removed(self) -> int:
        return sum(d.bytes for d in self.decisions if d.remove)

    def decision(self, name: str) -> DistDecision | None:
        key = canonicalize_name(name)
        for d in self.decisions:
            if d.name == key:
                return d
        return None


# --- building the graph -------------------------------------------------------------------


def _applies(marker: Marker | None, env: Mapping[str, str], extra: str) -> bool:
    """Whether a requirement's marker holds on the target, with ``extra`` active.

    A marker that cannot be evaluated counts as true: keeping a requirement we are unsure
    about costs bytes, dropping one breaks the application.
    """
    if marker is None:
        return True
    try:
        return bool(marker.evaluate({**env, "extra": extra}))
    except (UndefinedComparison, UndefinedEnvironmentName, ValueError, TypeError):
        return True


def _written(req: Requirement) -> str:
    """The requirement as written, without its marker: ``requests[socks]>=2.0``."""
    text = req.name
    if req.extras:
        text += "[" + ",".join(sorted(req.extras)) + "]"
    if req.url:
        return f"{text} @ {req.url}"
    return text + str(req.specifier)


def build_graph(
    distributions: Sequence[Distribution], *, marker_env: Mapping[str, str],
    dev_extras: Collection[str] = (),
) -> Graph:
    """Build the requirement graph of installed distributions for the target interpreter.

    A base requirement is an edge when its marker holds in ``marker_env``. An extra of a
    distribution is active when all of its requirements (those whose marker holds with
    ``extra == "x"`` but not without it) are installed, or when an edge asks for it
    (``pkg[x]``); its requirements are then edges too. Self-requirements
    (``pkg[a]; extra == "all"``) only activate extras. Unparseable requirements become
    diagnostics; requirements on distributions that are not installed go to ``missing``.

    :param distributions: as scanned; names are canonical.
    :param marker_env: PEP 508 marker values of the target interpreter.
    :param dev_extras: extra names (``tests``, ``cover``, ...) that installation alone does not
        activate: that pytest is installed does not mean ``pure-eval[tests]`` is in use. They
        still activate when a requirement asks for them.
    """
    dists = {d.name: d for d in distributions}
    diags: list[Diagnostic] = []
    parsed: dict[str, list[Requirement]] = {}
    for d in dists.values():
        reqs: list[Requirement] = []
        for raw in d.requires:
            try:
                reqs.append(Requirement(raw))
            except InvalidRequirement as exc:
                diags.append(Diagnostic(
                    "warning", "invalid-requirement",
                    f"{d.name} {d.version}: ignoring unparseable Requires-Dist {raw!r} ({exc})",
                    d.metadata_dir,
                ))
        parsed[d.name] = reqs

    # Marker results per (distribution, extra), computed once: the loop below revisits them.
    base: dict[str, list[Requirement]] = {
        name: [r for r in reqs if _applies(r.marker, marker_env, "")]
        for name, reqs in parsed.items()
    }
    cache: dict[tuple[str, str], list[Requirement]] = {}

    def extra_reqs(name: str, extra: str) -> list[Requirement]:
        key = (name, extra)
        if key not in cache:
            cache[key] = [
                r for r in parsed[name]
                if r.marker is not None and r not in base[name]
                and _applies(r.marker, marker_env, extra)
            ]
        return cache[key]

    active: dict[str, set[str]] = {name: set() for name in dists}
    for name, d in dists.items():
        for declared in sorted({canonicalize_name(x) for x in d.extras}):
            reqs = extra_reqs(name, declared)
            if declared in dev_extras:
                continue
            if reqs and all(canonicalize_name(r.name) in dists for r in reqs):
                active[name].add(declared)

    # Edges, then extras that edges ask for (pkg[x]), until no extra is newly activated.
    while True:
        edges: dict[tuple[str, str, str], Edge] = {}
        missing: set[tuple[str, str]] = set()
        asked: set[tuple[str, str]] = set()
        for name in sorted(dists):
            groups = [("", base[name])] + [(x, extra_reqs(name, x)) for x in sorted(active[name])]
            for extra, reqs in groups:
                for r in reqs:
                    target: str = canonicalize_name(r.name)
                    if target in dists:
                        asked.update((target, canonicalize_name(x)) for x in r.extras)
                    if target == name:
                        continue
                    if target not in dists:
                        missing.add((name, str(r)))
                        continue
                    edges.setdefault((name, target, extra), Edge(name, target, _written(r), extra))
        new = {(t, x) for t, x in asked if x not in active[t]}
        if not new:
            break
        for target, extra in new:
            active[target].add(extra)

    forward: dict[str, list[Edge]] = {name: [] for name in dists}
    reverse: dict[str, list[Edge]] = {name: [] for name in dists}
    for edge in edges.values():
        forward[edge.source].append(edge)
        reverse[edge.target].append(edge)
    return Graph(
        distributions=dists,
        requires={
            n: tuple(sorted(es, key=lambda e: (e.target, e.extra))) for n, es in forward.items()
        },
        required_by={
            n: tuple(sorted(es, key=lambda e: (e.source, e.extra))) for n, es in reverse.items()
        },
        active_extras={n: tuple(sorted(xs)) for n, xs in active.items()},
        missing=tuple(sorted(missing)),
        diagnostics=tuple(diags),
    )


# --- module ownership ---------------------------------------------------------------------


def _site_relative(dist: Distribution, path: str) -> str | None:
    if not dist.site:
        return path
    prefix = dist.site + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


class _Owners:
    """Which distributions define a module, from their files (RECORD) and top_level.txt."""

    def __init__(self, distributions: Iterable[Distribution],
                 provided: Mapping[str, str] | None = None) -> None:
        self.provided = dict(provided or {})
        self.exact: dict[str, set[str]] = {}
        self.under: dict[str, set[str]] = {}
        self.names: set[str] = set()
        for d in distributions:
            self.names.add(d.name)
            tops: set[str] = set()
            packages: set[str] = set()  # prefixes already under this distribution
            for f in d.files:
                rel = _site_relative(d, f)
                found = module_name_for(rel) if rel is not None else None
                if found is None:
                    continue
                module = found[0]
                self.exact.setdefault(module, set()).add(d.name)
                self.under.setdefault(module, set()).add(d.name)
                package = module.rpartition(".")[0]
                while package and package not in packages:
                    packages.add(package)
                    self.under.setdefault(package, set()).add(d.name)
                    package = package.rpartition(".")[0]
                tops.add(module.split(".", 1)[0])
            # top_level.txt speaks for distributions whose RECORD does not (egg-info installs).
            for top in d.top_level:
                if top and top not in tops:
                    self.exact.setdefault(top, set()).add(d.name)
                    self.under.setdefault(top, set()).add(d.name)

    def of(self, module: str) -> set[str]:
        """Distributions needed to import ``module`` (a dotted or top-level name).

        Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``: every distribution defining
        one of them is needed. When none defines any (a namespace package such as
        ``google``), every distribution with modules under the longest matching prefix is.
        """
        parts = module.split(".")
        found: set[str] = set()
        for i in range(1, len(parts) + 1):
            found |= self.exact.get(".".join(parts[:i]), set())
        if not found:
            for i in range(len(parts), 0, -1):
                under = self.under.get(".".join(parts[:i]))
                if under:
                    found = set(under)
                    break
        if not found and self.provided.get(parts[0]) in self.names:
            found = {self.provided[parts[0]]}
        return found


# --- deciding -----------------------------------------------------------------------------


def is_dev_tool(name: str, patterns: Iterable[str]) -> bool:
    """Whether canonical ``name`` matches a development-tool pattern (``pytest``,
    ``pytest-*``, ``*-stubs``: fnmatch on canonical names)."""
    return any(fnmatchcase(name, canonicalize_name(p)) for p in patterns)


@dataclass(frozen=True)
class _Why:
    """One step of a chain: ``name`` is kept or removed because of ``text``, via ``parent``."""

    text: str
    parent: str | None = None


def _chain(name: str, why: Mapping[str, _Why]) -> tuple[str, ...]:
    """``("flask kept: root (REQUESTED)", "werkzeug kept: required by flask 3.1.0 (...)")``."""
    steps: list[str] = []
    seen: set[str] = set()
    current: str | None = name
    while current is not None and current not in seen and current in why:
        seen.add(current)
        steps.append(f"{current} {why[current].text}")
        current = why[current].parent
    return tuple(reversed(steps))


def _canonical_names(values: Sequence[str], what: str, installed: Iterable[str],
                     problems: list[str]) -> list[str]:
    """Canonicalise names, recording every one that is not installed (with close matches)."""
    known = sorted(installed)
    out: list[str] = []
    for value in values:
        name = canonicalize_name(value)
        if name in known:
            if name not in out:
                out.append(name)
            continue
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        problems.append(f"{what} {value!r} is not installed{hint}")
    return out


def decide_distributions(
    distributions: Sequence[Distribution],
    *,
    marker_env: Mapping[str, str],
    roots: Sequence[str] | None = None,
    removable: Sequence[str] = (),
    dev_tools: DevTools = None,
    keep: Sequence[str] = (),
    remove: Sequence[str] = (),
    force: bool = False,
    imports: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    sizes: Mapping[str, int] | None = None,
    dev_extras: Collection[str] = (),
    runs: Mapping[str, Sequence[tuple[str, str, str]]] | None = None,
    lists_remove_requested: bool = False,
) -> GraphDecision:
    """Decide which whole distributions stay and which go, each with its chain of reasons.

    Roots are ``roots`` when given (non-empty); everything they do not need is removed.
    Otherwise the REQUESTED distributions are roots, else every distribution; development
    tools and ``removable`` never become roots that way. Without explicit roots only these
    go: development tools (when ``dev_tools`` is not None), ``removable`` distributions,
    ``remove``, and whatever only they need; other unneeded distributions are reported in
    ``candidates`` and kept.

    A distribution the user installed by name (:func:`installed_by_name`) is removed by a
    profile list (``dev_tools``, ``removable``) only when ``lists_remove_requested`` (the
    aggressive profile) or explicit ``roots`` say so, or ``remove`` names it; otherwise it is
    a root, kept with ``remove_with`` naming the option that removes it (issue 15, kind D).
    pip, setuptools and wheel (:data:`SEEDED`) are exempt: environment creation marks them.

    Whatever the roots, a distribution is never removed while a kept one requires it
    (markers evaluated for the target), imports one of its modules (``imports``), runs one
    (``runs``), or, for setuptools, ships a ``*-nspkg.pth``; this runs to a fixpoint.
    Editable installs and ``keep`` are always kept.

    :param distributions: as scanned (canonical names).
    :param marker_env: PEP 508 marker values of the target interpreter.
    :param roots: distributions the application needs, or None.
    :param removable: removed unless something kept needs them (pip, setuptools, wheel).
    :param dev_tools: development-tool names or patterns (``pytest-*``), optionally mapped
        to a reason; None when the profile does not remove development tools.
    :param keep: distributions to keep whatever the roots say.
    :param remove: distributions to remove whatever the roots say.
    :param force: remove ``remove`` names even when a kept distribution requires them.
    :param imports: distribution -> ``(imported module, file)`` pairs found by a static scan
        of its kept modules; dotted names are resolved more precisely than top-level ones.
    :param sizes: distribution -> bytes it occupies (for reports).
    :param dev_extras: development extras (``tests``, ``cover``) that installation alone does
        not activate (see :func:`build_graph`); used only when ``dev_tools`` is given.
    :param runs: distribution -> ``(needed distribution, what it does, file)`` triples: kept
        code that runs a module or a console script of another distribution
        (``("pip", "runs python -m pip", "spacy/cli/download.py")``).
    :param lists_remove_requested: profile lists remove distributions installed by name.
    :raises UsageError: a name in ``roots``, ``keep`` or ``remove`` is not installed; a
        name is both kept (or a root) and removed; ``remove`` names an editable install; or,
        without ``force``, ``remove`` names a distribution that a kept one requires.
    """
    imports = imports or {}
    runs = runs or {}
    sizes = sizes or {}
    graph = build_graph(distributions, marker_env=marker_env,
                        dev_extras=frozenset(dev_extras) if dev_tools is not None else frozenset())
    dists = graph.distributions
    names = sorted(dists)

    problems: list[str] = []
    root_list = _canonical_names(roots or (), "root", names, problems)
    keep_list = _canonical_names(keep, "--keep-dist", names, problems)
    remove_list = _canonical_names(remove, "--remove-dist", names, problems)
    for name in remove_list:
        if name in keep_list:
            problems.append(f"{name} is named by both --keep-dist and --remove-dist")
        elif name in root_list:
            problems.append(f"{name} is both a root and named by --remove-dist")
        elif dists[name].editable:
            problems.append(f"{name} is an editable install, which venv-prune never removes")
    if problems:
        raise UsageError(
            "; ".join(problems) + "; run 'venv-prune graph PATH' to list what is installed")

    dev_reasons: dict[str, str] = {}
    if dev_tools is not None:
        # Each pattern canonicalised once (is_dev_tool does it per call), not once per name.
        patterns = [(p, canonicalize_name(p)) for p in dev_tools]
        for name in names:
            for p, canonical in patterns:
                if fnmatchcase(name, canonical):
                    reason = dev_tools.get(p, "") if isinstance(dev_tools, Mapping) else ""
                    dev_reasons[name] = str(reason)
                    break
    removable_set = {canonicalize_name(n) for n in removable} & set(names)
    removed_forced = set(remove_list)

    # The user's word beats profile lists (issue 15, kind D): what was installed by name
    # stays unless the profile is aggressive, the user named the roots, or names it.
    by_name = installed_by_name(graph)
    listed_by_name: dict[str, str] = {}  # name -> what the list calls it
    for name in sorted(by_name - SEEDED - removed_forced):
        if name in dev_reasons:
            listed_by_name[name] = (f"the development-tools list names it"
                                    f"{' (' + dev_reasons[name] + ')' if dev_reasons[name] else ''}")
        elif name in removable_set:
            listed_by_name[name] = "the profile lists it as removable"
    if not lists_remove_requested and not root_list:
        for name in listed_by_name:
            dev_reasons.pop(name, None)
            removable_set.discard(name)
    else:
        listed_by_name = {}

    # Development tools, removable and --remove-dist distributions never become roots
    # implicitly; without explicit roots they, and what only they need, are what goes.
    seeds = {n for n in names if n in dev_reasons or n in removable_set or n in removed_forced}
    needed_by_seeds = graph.reachable(seeds)
    if root_list:
        root_source = "explicit"
        root_why = "kept: root (named explicitly)"
        chosen = root_list
    else:
        # Every REQUESTED mark makes a root, trusted or not: a dependency that uv or a full
        # lock marked may be imported by the application itself, outside the environment.
        requested = [n for n in names if dists[n].requested and n not in seeds]
        if requested:
            root_source, chosen = "requested", requested
            root_why = "kept: root (REQUESTED: installed by name)"
        else:
            root_source = "all"
            chosen = [n for n in names if n not in needed_by_seeds]
            root_why = "kept: root (nothing is marked REQUESTED, so every distribution counts)"

    # Which distribution defines a module is asked only about imports; building the index
    # reads every file name, so it is built on the first question (a plan's first pass has
    # no import evidence: on a 100k-file environment that pass then costs nothing here).
    owners_index: list[_Owners] = []

    def owners_of(module: str) -> set[str]:
        if not owners_index:
            owners_index.append(_Owners(dists.values(), provided_modules(marker_env)))
        return owners_index[0].of(module)

    why: dict[str, _Why] = {}
    blocked: dict[str, _Why] = {}
    queue: deque[str] = deque()

    def mark(name: str, reason: _Why) -> None:
        if name in removed_forced:
            blocked.setdefault(name, reason)
            return
        if name not in why:
            why[name] = reason
            queue.append(name)

    def expand() -> None:
        while queue:
            name = queue.popleft()
            label = graph.label(name)
            for edge in graph.requires[name]:
                extra = f" [{edge.extra}]" if edge.extra else ""
                text = f"kept: required by {label}{extra} ({edge.requirement})"
                mark(edge.target, _Why(text, name))
            for module, path in sorted(imports.get(name, ())):
                for owner in sorted(owners_of(module) - {name}):
                    mark(owner, _Why(f"kept: {label} imports {module} ({path})", name))
            for needed, what, path in sorted(runs.get(name, ())):
                if needed in dists and needed != name:
                    mark(needed, _Why(f"kept: {label} {what} ({path})", name))
            if "setuptools" in dists and name != "setuptools":
                for path in dists[name].files:
                    if path.endswith("-nspkg.pth"):
                        mark("setuptools", _Why(
                            f"kept: {label} ships {path.rsplit('/', 1)[-1]}, which needs "
                            f"setuptools ({path})", name))
                        break

    loose: list[str] = []
    for name in chosen:
        if name in listed_by_name:
            continue
        if root_source == "requested" and name not in by_name:
            loose.append(name)
        else:
            mark(name, _Why(root_why))
    for name in keep_list:
        mark(name, _Why("kept: named with --keep-dist"))
    for name in names:
        if dists[name].editable:
            mark(name, _Why("kept: editable install (its source tree is never touched)"))
    expand()
    # Marked REQUESTED only because uv or a full lock marks dependencies too: still roots,
    # but what the distributions installed by name require is explained by that requirement
    # (h11 is kept because httpcore and uvicorn require it, issue 17), so these come after.
    for name in loose:
        mark(name, _Why(
            "kept: root (marked REQUESTED by uv, which marks dependencies too)"
            if dists[name].installer.lower() == "uv" else
            "kept: root (REQUESTED, as every distribution here is: a full lock installs so)"))
    expand()
    # Installed by name but listed: kept as roots last, so that a reason to keep them that
    # --remove-dist could not override (a kept distribution requires, imports or runs it)
    # is the one reported; the rest are candidates, with the option that removes them.
    candidates_by_name: set[str] = set()
    for name, listed in listed_by_name.items():
        if name not in why:
            candidates_by_name.add(name)
            mark(name, _Why(f"kept: installed by name (REQUESTED), although {listed}; "
                            f"--remove-dist {name} or --profile aggressive removes it"))
    expand()
    candidates = tuple(n for n in names if n not in why)

    if root_source != "explicit":
        # Unneeded distributions that are not development tools, removable, or needed only
        # by those stay: only explicit roots say the application does not need them.
        for name in candidates:
            if name not in needed_by_seeds:
                mark(name, _Why(
                    "kept: not needed by the roots, but without explicit roots only development "
                    "tools and removable distributions go (a removal candidate)"))
        expand()

    if blocked and not force:
        parts = []
        for name in sorted(blocked):
            need = blocked[name]
            chain = " <- ".join(reversed(_chain(need.parent, why))) if need.parent else ""
            text = need.text.replace("kept: ", "", 1)
            parts.append(f"{name} ({text}{'; ' + chain if chain else ''})")
        raise UsageError(
            "cannot remove what a kept distribution needs: " + ", ".join(parts)
            + "; drop it from --remove-dist, or add --force to remove it anyway"
        )

    removed_why: dict[str, _Why] = {}
    for name in names:
        if name in why:
            continue
        if name in removed_forced:
            text = "removed: named with --remove-dist"
            if name in blocked:
                requirer = blocked[name].parent
                who = graph.label(requirer) if requirer else "kept code"
                text += f" (forced although {who} needs it)"
            removed_why[name] = _Why(text)
        elif root_source == "explicit" and name not in dev_reasons and name not in removable_set:
            shown = ", ".join(chosen[:5]) + (", ..." if len(chosen) > 5 else "")
            removed_why[name] = _Why(f"removed: not needed by the roots ({shown})")
        elif name in dev_reasons:
            detail = f": {dev_reasons[name]}" if dev_reasons[name] else ""
            removed_why[name] = _Why(f"removed: development tool{detail}{_named(name, by_name)}")
        elif name in removable_set:
            removed_why[name] = _Why(
                "removed: removable by the profile, and nothing kept requires or imports it"
                + _named(name, by_name))
    # Whatever remains is needed only by removed distributions; name one of them.
    pending = [n for n in names if n not in why and n not in removed_why]
    while pending:
        progress = False
        for name in list(pending):
            users = [e for e in graph.required_by[name] if e.source in removed_why]
            if users or not graph.required_by[name]:
                via = users[0].source if users else None
                text = (f"removed: needed only by removed distributions (required by "
                        f"{graph.label(via)})") if via else "removed: not needed by the roots"
                removed_why[name] = _Why(text, via)
                pending.remove(name)
                progress = True
        if not progress:
            for name in pending:
                removed_why[name] = _Why("removed: needed only by removed distributions")
            break

    all_why = {**why, **removed_why}
    decisions = tuple(
        DistDecision(
            name=name,
            version=dists[name].version,
            remove=name not in why,
            bytes=int(sizes.get(name, 0)),
            reason=all_why[name].text,
            chain=_chain(name, all_why),
            requested=name in by_name,
            remove_with=f"--remove-dist {name}" if name in candidates_by_name else "",
        )
        for name in names
    )
    return GraphDecision(
        decisions=decisions,
        roots=tuple(chosen),
        root_source=root_source,
        candidates=candidates,
        graph=graph,
        diagnostics=graph.diagnostics,
    )


def _named(name: str, by_name: Collection[str]) -> str:
    """The note a list removal of a distribution installed by name carries."""
    if name not in by_name or name in SEEDED:
        return ""
    return f" (installed by name, REQUESTED; --keep-dist {name} keeps it)"


def installed_by_name(graph: Graph) -> frozenset[str]:
    """The distributions the user installed by name, as far as REQUESTED can tell.

    pip writes REQUESTED for what its command line or requirements file named. uv writes it
    for everything it installs, dependencies included, and a full lock (``pip freeze``
    output) installed with pip names every distribution. So where the installer (the
    INSTALLER file) is uv, or every distribution is marked, only the marked distributions
    no other installed one requires count: the top of the graph, what a user asks for.
    """
    dists = graph.distributions
    marked = [n for n, d in dists.items() if d.requested]
    # pip, setuptools and wheel may come from venv or virtualenv seeding, marked or not.
    everything = all(d.requested for n, d in dists.items() if n not in SEEDED) and bool(marked)
    out = set()
    for name in marked:
        loose = everything or dists[name].installer.lower() == "uv"
        if loose and any(e.source != name for e in graph.required_by.get(name, ())):
            continue
        out.add(name)
    return frozenset(out)


def every_requested_removed(decisions: Sequence[DistDecision],
                            remove: Collection[str] = ()) -> tuple[DistDecision, ...]:
    """The distributions installed by name when a plan removes every one of them and not
    only on the user's word (``remove``: the ``--remove-dist`` names); else ``()``.

    pip, setuptools and wheel (:data:`SEEDED`) do not count: environment creation marks
    them. Such a plan removes the application itself, and is refused unless forced
    (issue 15, kind D: jupyter-kernel-gateway and ipykernel, 81 of 81 distributions).
    """
    named = tuple(d for d in decisions if d.requested and d.name not in SEEDED)
    removed_all = bool(named) and all(d.remove for d in named)
    if not removed_all or {d.name for d in named} <= {canonicalize_name(r) for r in remove}:
        return ()
    return named


# --- roots from files ---------------------------------------------------------------------

_COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION_TAIL = re.compile(r"\s--?[A-Za-z]")
_EGG = re.compile(r"#.*?\begg=([A-Za-z0-9][A-Za-z0-9._-]*)")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc


def project_name(path: Path) -> str | None:
    """The canonical ``[project].name`` of a pyproject.toml, or None (requirements files,
    dynamic names). The CLI adds it to the roots when that project is itself installed.
    """
    if path.suffix != ".toml":
        return None
    name = _load_toml(path).get("project", {}).get("name")
    return canonicalize_name(name) if isinstance(name, str) else None


def _requirement_name(
    text: str, where: str, marker_env: Mapping[str, str] | None
) -> str | None:
    """The canonical name a requirement line installs; None when its marker excludes it."""
    egg = _EGG.search(text)
    if egg:
        return canonicalize_name(egg.group(1))
    try:
        req = Requirement(text)
    except InvalidRequirement:
        filename = text.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            if filename.endswith(".whl"):
                return canonicalize_name(parse_wheel_filename(filename)[0])
            return canonicalize_name(parse_sdist_filename(filename)[0])
        except (InvalidWheelFilename, InvalidSdistFilename):
            raise UsageError(
                f"{where}: cannot tell which distribution {text!r} installs; "
                "write it as 'NAME @ URL' or add '#egg=NAME'"
            ) from None
    if marker_env is not None and not _applies(req.marker, marker_env, ""):
        return None
    return canonicalize_name(req.name)


def _from_requirements_txt(path: Path, marker_env: Mapping[str, str] | None,
                           seen: set[Path]) -> list[str]:
    real = path.resolve()
    if real in seen:
        return []
    seen.add(real)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from exc
    # pip's format: backslash joins lines, '#' after whitespace starts a comment.
    logical = re.sub(r"\\\r?\n", " ", text).splitlines()
    out: list[str] = []
    for number, raw in enumerate(logical, 1):
        line = _COMMENT.sub("", raw).strip()
        where = f"{path}:{number}"
        if not line:
            continue
        include = re.match(r"(?:-r|--requirement)(?:\s*=?\s*)(\S+)$", line)
        if include:
            out += _from_requirements_txt(path.parent / include.group(1), marker_env, seen)
            continue
        editable = re.match(r"(?:-e|--editable)(?:\s*=?\s*)(\S+)$", line)
        if editable:
            target = editable.group(1)
            egg = _EGG.search(target)
            if egg:
                out.append(canonicalize_name(egg.group(1)))
            else:
                local = path.parent / target
                # An editable install is always kept; its name only matters for the report.
                pyproject = local / "pyproject.toml"
                name = project_name(pyproject) if pyproject.is_file() else None
                if name:
                    out.append(name)
            continue
        if line.startswith("-"):
            continue  # -c constraints, -i/--index-url, -f, --hash on its own line, ...
        cut = _OPTION_TAIL.search(line)
        if cut:
            line = line[: cut.start()].strip()
        name = _requirement_name(line, where, marker_env)
        if name:
            out.append(name)
    return out


def roots_from_requirements(
    path: Path, extras: Sequence[str] = (), *, marker_env: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Root distribution names from a requirements file or a pyproject.toml.

    A requirements file: one requirement per line; comments, options and constraints files
    are skipped, ``-r FILE`` includes are followed (relative to the including file), ``-e``
    lines and URLs give their ``#egg=NAME`` (or a wheel/sdist file name, or ``NAME @ URL``).
    A pyproject.toml: ``[project].dependencies`` plus the ``[project.optional-dependencies]``
    groups named in ``extras``.

    :param marker_env: when given, requirements whose marker is false on the target are left
        out (``pywin32; sys_platform == "win32"`` is not installed on Linux).
    :returns: canonical names, in file order, without duplicates.
    :raises UsageError: unreadable file, invalid TOML, an unknown extra, ``extras`` given for
        a requirements file, or a line whose distribution cannot be told.
    """
    if path.suffix == ".toml":
        data = _load_toml(path)
        project = data.get("project")
        if not isinstance(project, dict):
            raise UsageError(f"{path}: has no [project] table; pass a requirements file or a "
                             "PEP 621 pyproject.toml")
        groups = project.get("optional-dependencies", {}) or {}
        by_canonical = {canonicalize_name(k): k for k in groups}
        base = project.get("dependencies", []) or []
        lines = [(f"{path} [project.dependencies]", r) for r in base]
        for extra in extras:
            key = by_canonical.get(canonicalize_name(extra))
            if key is None:
                available = ", ".join(sorted(groups)) or "none"
                raise UsageError(f"{path}: no optional-dependencies group {extra!r} "
                                 f"(available: {available})")
            lines += [(f"{path} [project.optional-dependencies.{key}]", r) for r in groups[key]]
        own = project_name(path)
        names: list[str] = []
        for where, text in lines:
            name = _requirement_name(str(text), where, marker_env)
            if name and name != own:
                names.append(name)
    else:
        if extras:
            raise UsageError(f"--extra needs a pyproject.toml, not {path.name}")
        names = _from_requirements_txt(path, marker_env, set())
    return tuple(dict.fromkeys(names))
