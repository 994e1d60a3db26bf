"""Building the requirement graph, and which distribution defines a module.

Pure: built from :class:`~prune.model.Distribution` metadata and the PEP 508 marker
environment of the *target* interpreter (``Environment.marker_environment()``), never the
interpreter running venv-prune. Requirements and markers are parsed by :mod:`packaging`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..imports import module_name_for
from ..model import Diagnostic, Distribution
from ..paths import under_site

__all__ = ["Edge", "Graph", "Owners", "build_graph", "marker_holds", "provided_modules"]

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


def provided_modules(marker_env: Mapping[str, str]) -> dict[str, str]:
    """Top-level module -> the distribution that provides it on the target interpreter,
    for modules no file of that name provides (``distutils`` from setuptools on 3.12+)."""
    return {module: dist for module, dist, marker in _PROVIDED
            if not marker or marker_holds(Marker(marker), marker_env, "")}


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


def marker_holds(marker: Marker | None, env: Mapping[str, str], extra: str) -> bool:
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
    parsed, diagnostics = _parse_requirements(dists.values())
    reqs = _Requirements(parsed, marker_env)
    active = _installed_extras(dists, reqs, dev_extras)
    edges, missing = _edges_to_fixpoint(dists, reqs, active)
    forward: dict[str, list[Edge]] = {name: [] for name in dists}
    reverse: dict[str, list[Edge]] = {name: [] for name in dists}
    for edge in edges:
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
        diagnostics=tuple(diagnostics),
    )


def _parse_requirements(
    dists: Iterable[Distribution],
) -> tuple[dict[str, list[Requirement]], list[Diagnostic]]:
    """Each distribution's Requires-Dist, parsed; an unparseable one becomes a warning."""
    diagnostics: list[Diagnostic] = []
    parsed: dict[str, list[Requirement]] = {}
    for d in dists:
        reqs: list[Requirement] = []
        for raw in d.requires:
            try:
                reqs.append(Requirement(raw))
            except InvalidRequirement as exc:
                diagnostics.append(Diagnostic(
                    "warning", "invalid-requirement",
                    f"{d.name} {d.version}: ignoring unparseable Requires-Dist {raw!r} ({exc})",
                    d.metadata_dir,
                ))
        parsed[d.name] = reqs
    return parsed, diagnostics


class _Requirements:
    """Which requirements of a distribution hold on the target: its base ones, and those each
    of its extras adds. Marker results are computed once per (distribution, extra): building
    the graph asks again on every round of extras."""

    def __init__(self, parsed: Mapping[str, list[Requirement]],
                 marker_env: Mapping[str, str]) -> None:
        self._parsed = parsed
        self._env = marker_env
        self._base = {name: [r for r in reqs if marker_holds(r.marker, marker_env, "")]
                      for name, reqs in parsed.items()}
        self._extra: dict[tuple[str, str], list[Requirement]] = {}

    def base(self, name: str) -> list[Requirement]:
        return self._base[name]

    def extra(self, name: str, extra: str) -> list[Requirement]:
        """Requirements whose marker holds with ``extra`` active and not without it."""
        key = (name, extra)
        if key not in self._extra:
            base = self._base[name]
            self._extra[key] = [
                r for r in self._parsed[name]
                if r.marker is not None and r not in base
                and marker_holds(r.marker, self._env, extra)
            ]
        return self._extra[key]


def _installed_extras(dists: Mapping[str, Distribution], reqs: _Requirements,
                      dev_extras: Collection[str]) -> dict[str, set[str]]:
    """Per distribution, the declared extras whose requirements are all installed (except
    ``dev_extras``, which installation alone does not activate)."""
    active: dict[str, set[str]] = {name: set() for name in dists}
    for name, d in dists.items():
        for declared in sorted({canonicalize_name(x) for x in d.extras}):
            extra_reqs = reqs.extra(name, declared)
            if declared in dev_extras:
                continue
            if extra_reqs and all(canonicalize_name(r.name) in dists for r in extra_reqs):
                active[name].add(declared)
    return active


def _edges_to_fixpoint(
    dists: Mapping[str, Distribution], reqs: _Requirements, active: dict[str, set[str]],
) -> tuple[list[Edge], set[tuple[str, str]]]:
    """The edges of base requirements and active extras, with the requirements naming
    something not installed; extras an edge asks for (``pkg[x]``) are added to ``active``
    and the edges made again, until no extra is newly activated."""
    while True:
        edges: dict[tuple[str, str, str], Edge] = {}
        missing: set[tuple[str, str]] = set()
        asked: set[tuple[str, str]] = set()
        for name in sorted(dists):
            groups = [("", reqs.base(name))]
            groups += [(x, reqs.extra(name, x)) for x in sorted(active[name])]
            for extra, group in groups:
                for r in group:
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
            return list(edges.values()), missing
        for target, extra in new:
            active[target].add(extra)


class Owners:
    """Which distributions define a module, from their files (RECORD) and top_level.txt.

    :param provided: top-level module -> distribution, for modules no file provides
        (:func:`provided_modules`).
    """

    def __init__(self, distributions: Iterable[Distribution],
                 provided: Mapping[str, str] | None = None) -> None:
        self.provided = dict(provided or {})
        self.exact: dict[str, set[str]] = {}
        self.under: dict[str, set[str]] = {}
        self.names: set[str] = set()
        for d in distributions:
            self.names.add(d.name)
            self._add(d)

    def _add(self, d: Distribution) -> None:
        tops: set[str] = set()
        packages: set[str] = set()  # prefixes already under this distribution
        for f in d.files:
            rel = under_site(f, d.site)
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
