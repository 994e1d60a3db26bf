"""Deciding which whole distributions stay and which go, each with its chain of reasons.

Pure: a function of the scanned distributions, the target's marker environment, the profile's
lists and the evidence the caller found (imports, runs). :func:`decide_distributions` reads as
its phases, in order: check the names, apply the profile's lists, choose the roots, keep what
the roots need (to a fixpoint over requirements, imports and runs), keep the candidates that
only explicit roots remove, refuse a forced removal of something needed, give every removed
distribution its reason (issue 4, DESIGN.md "Distributions as a graph", invariant 6).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Union

from packaging.utils import canonicalize_name

from ..errors import UsageError
from ..model import Diagnostic, DistDecision, Distribution
from .build import Graph, Owners, build_graph, provided_modules

__all__ = [
    "SEEDED",
    "DevTools",
    "GraphDecision",
    "candidates_in",
    "decide_distributions",
    "dev_tool_reasons",
    "every_requested_removed",
    "installed_by_name",
]

# Installers and build tools that environment creation itself installs: ensurepip marks pip
# (and setuptools before Python 3.12) REQUESTED in every `python -m venv`, and builder stages
# upgrade them by name (`pip install -U pip setuptools wheel`). Their REQUESTED mark is not the
# user's word that the application runs them; evidence is (kept code importing pkg_resources
# or distutils, running `python -m pip`, ...), and --keep-dist.
SEEDED = frozenset({"pip", "setuptools", "wheel"})

DevTools = Union[Sequence[str], Mapping[str, str], None]

# The reason of a distribution no root needs, kept because only explicit roots remove such
# ones: what makes it a "removal candidate" (see candidates_in).
_CANDIDATE_KEPT = ("kept: not needed by the roots, but without explicit roots only development "
                   "tools and removable distributions go (a removal candidate)")


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


@dataclass(frozen=True)
class _Why:
    """One step of a chain: ``name`` is kept or removed because of ``text``, via ``parent``."""

    text: str
    parent: str | None = None


@dataclass(frozen=True)
class _Lists:
    """What the profile's lists and ``--remove-dist`` take, after the user's word.

    ``dev_reasons``: development tools that go, each with the list's reason ("" for none);
    ``removable``: distributions the profile removes; ``forced``: ``--remove-dist`` names;
    ``by_name``: installed by name (:func:`installed_by_name`); ``listed_by_name``: installed
    by name and listed, kept as roots (name -> what the list calls it).
    """

    dev_reasons: Mapping[str, str]
    removable: frozenset[str]
    forced: frozenset[str]
    by_name: frozenset[str]
    listed_by_name: Mapping[str, str]


@dataclass(frozen=True)
class _Roots:
    """The roots chosen: where they came from, the reason each gets, and what the lists'
    distributions (which never become roots implicitly) need."""

    source: str
    why: str
    chosen: tuple[str, ...]
    needed_by_seeds: frozenset[str]


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
    graph = build_graph(distributions, marker_env=marker_env,
                        dev_extras=frozenset(dev_extras) if dev_tools is not None else frozenset())
    root_list, keep_list, remove_list = _checked_names(graph, roots or (), keep, remove)
    lists = _profile_lists(graph, dev_tools, removable, remove_list,
                           obey_lists=lists_remove_requested or bool(root_list))
    start = _choose_roots(graph, root_list, lists)
    marks = _Marks(graph, imports or {}, runs or {}, marker_env, lists.forced)
    _keep_what_roots_need(marks, start, lists, keep_list)
    by_name_kept = _keep_listed_by_name(marks, lists)
    candidates = tuple(n for n in sorted(graph.distributions) if n not in marks.why)
    if start.source != "explicit":
        _keep_candidates(marks, candidates, start.needed_by_seeds)
    if marks.blocked and not force:
        _refuse_blocked(marks)
    removed = _removal_reasons(marks, start, lists)
    return GraphDecision(
        decisions=_decisions(graph, marks.why, removed, sizes or {}, lists.by_name, by_name_kept),
        roots=start.chosen,
        root_source=start.source,
        candidates=candidates,
        graph=graph,
        diagnostics=graph.diagnostics,
    )


# --- the phases, in order -----------------------------------------------------------------


def _checked_names(graph: Graph, roots: Sequence[str], keep: Sequence[str],
                   remove: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """``roots``, ``keep`` and ``remove`` canonicalised, after checking them all.

    :raises UsageError: every problem at once: a name not installed (with close matches), a
        name both kept (or a root) and removed, an editable install named for removal.
    """
    names = sorted(graph.distributions)
    problems: list[str] = []
    root_list = _canonical_names(roots, "root", names, problems)
    keep_list = _canonical_names(keep, "--keep-dist", names, problems)
    remove_list = _canonical_names(remove, "--remove-dist", names, problems)
    for name in remove_list:
        if name in keep_list:
            problems.append(f"{name} is named by both --keep-dist and --remove-dist")
        elif name in root_list:
            problems.append(f"{name} is both a root and named by --remove-dist")
        elif graph.distributions[name].editable:
            problems.append(f"{name} is an editable install, which venv-prune never removes")
    if problems:
        raise UsageError(
            "; ".join(problems) + "; run 'venv-prune graph PATH' to list what is installed")
    return root_list, keep_list, remove_list


def _canonical_names(values: Sequence[str], what: str, installed: Sequence[str],
                     problems: list[str]) -> list[str]:
    """Canonicalise names, recording every one that is not installed (with close matches)."""
    out: list[str] = []
    for value in values:
        name = canonicalize_name(value)
        if name in installed:
            if name not in out:
                out.append(name)
            continue
        close = difflib.get_close_matches(name, installed, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        problems.append(f"{what} {value!r} is not installed{hint}")
    return out


def dev_tool_reasons(names: Iterable[str], dev_tools: Sequence[str] | Mapping[str, str],
                     ) -> dict[str, str]:
    """The canonical ``names`` that match a development-tool pattern (``pytest``,
    ``pytest-*``, ``*-stubs``: fnmatch on canonical names), each with the reason
    ``dev_tools`` maps its first matching pattern to ("" for a plain list)."""
    # Each pattern canonicalised once, not once per name.
    patterns = [(p, canonicalize_name(p)) for p in dev_tools]
    reasons: dict[str, str] = {}
    for name in names:
        for p, canonical in patterns:
            if fnmatchcase(name, canonical):
                reason = dev_tools.get(p, "") if isinstance(dev_tools, Mapping) else ""
                reasons[name] = str(reason)
                break
    return reasons


def _profile_lists(graph: Graph, dev_tools: DevTools, removable: Sequence[str],
                   remove_list: Sequence[str], *, obey_lists: bool) -> _Lists:
    """What the lists take. The user's word beats profile lists (issue 15, kind D): what was
    installed by name stays unless ``obey_lists`` (the profile is aggressive, or the user
    named the roots) or ``--remove-dist`` names it."""
    names = sorted(graph.distributions)
    dev_reasons = dev_tool_reasons(names, dev_tools) if dev_tools is not None else {}
    removable_set = {canonicalize_name(n) for n in removable} & set(names)
    forced = frozenset(remove_list)
    by_name = installed_by_name(graph)
    listed_by_name: dict[str, str] = {}  # name -> what the list calls it
    for name in sorted(by_name - SEEDED - forced):
        if name in dev_reasons:
            detail = f" ({dev_reasons[name]})" if dev_reasons[name] else ""
            listed_by_name[name] = f"the development-tools list names it{detail}"
        elif name in removable_set:
            listed_by_name[name] = "the profile lists it as removable"
    if obey_lists:
        listed_by_name = {}
    for name in listed_by_name:
        dev_reasons.pop(name, None)
        removable_set.discard(name)
    return _Lists(dev_reasons, frozenset(removable_set), forced, by_name, listed_by_name)


def _choose_roots(graph: Graph, root_list: Sequence[str], lists: _Lists) -> _Roots:
    """Explicit roots, else the REQUESTED distributions, else every distribution.

    Development tools, removable and --remove-dist distributions (the seeds) never become
    roots implicitly; without explicit roots they, and what only they need, are what goes.
    """
    names = sorted(graph.distributions)
    seeds = {n for n in names
             if n in lists.dev_reasons or n in lists.removable or n in lists.forced}
    needed_by_seeds = graph.reachable(seeds)
    if root_list:
        return _Roots("explicit", "kept: root (named explicitly)", tuple(root_list),
                      needed_by_seeds)
    # Every REQUESTED mark makes a root, trusted or not: a dependency that uv or a full
    # lock marked may be imported by the application itself, outside the environment.
    requested = [n for n in names if graph.distributions[n].requested and n not in seeds]
    if requested:
        return _Roots("requested", "kept: root (REQUESTED: installed by name)",
                      tuple(requested), needed_by_seeds)
    return _Roots("all", "kept: root (nothing is marked REQUESTED, so every distribution counts)",
                  tuple(n for n in names if n not in needed_by_seeds), needed_by_seeds)


class _Marks:
    """The distributions kept so far, each with its reason, and the fixpoint that keeps
    whatever a kept one needs: what it requires, imports (``imports``) or runs (``runs``),
    and setuptools for a ``*-nspkg.pth``. A ``forced`` name (``--remove-dist``) is not kept
    but recorded in ``blocked`` with the first reason it was needed for.
    """

    def __init__(self, graph: Graph, imports: Mapping[str, Sequence[tuple[str, str]]],
                 runs: Mapping[str, Sequence[tuple[str, str, str]]],
                 marker_env: Mapping[str, str], forced: Collection[str]) -> None:
        self.graph = graph
        self.why: dict[str, _Why] = {}
        self.blocked: dict[str, _Why] = {}
        self._imports = imports
        self._runs = runs
        self._marker_env = marker_env
        self._forced = forced
        self._queue: deque[str] = deque()
        self._owners: Owners | None = None

    def mark(self, name: str, reason: _Why) -> None:
        if name in self._forced:
            self.blocked.setdefault(name, reason)
            return
        if name not in self.why:
            self.why[name] = reason
            self._queue.append(name)

    def _owners_of(self, module: str) -> set[str]:
        # Which distribution defines a module is asked only about imports; building the index
        # reads every file name, so it is built on the first question (a plan's first pass
        # has no import evidence: on a 100k-file environment that pass then costs nothing).
        if self._owners is None:
            self._owners = Owners(self.graph.distributions.values(),
                                  provided_modules(self._marker_env))
        return self._owners.of(module)

    def expand(self) -> None:
        """Keep, to a fixpoint, whatever the distributions marked since the last call need."""
        graph, dists = self.graph, self.graph.distributions
        while self._queue:
            name = self._queue.popleft()
            label = graph.label(name)
            for edge in graph.requires[name]:
                extra = f" [{edge.extra}]" if edge.extra else ""
                self.mark(edge.target, _Why(
                    f"kept: required by {label}{extra} ({edge.requirement})", name))
            for module, path in sorted(self._imports.get(name, ())):
                for owner in sorted(self._owners_of(module) - {name}):
                    self.mark(owner, _Why(f"kept: {label} imports {module} ({path})", name))
            for needed, what, path in sorted(self._runs.get(name, ())):
                if needed in dists and needed != name:
                    self.mark(needed, _Why(f"kept: {label} {what} ({path})", name))
            if "setuptools" in dists and name != "setuptools":
                for path in dists[name].files:
                    if path.endswith("-nspkg.pth"):
                        self.mark("setuptools", _Why(
                            f"kept: {label} ships {path.rsplit('/', 1)[-1]}, which needs "
                            f"setuptools ({path})", name))
                        break


def _keep_what_roots_need(marks: _Marks, start: _Roots, lists: _Lists,
                          keep_list: Sequence[str]) -> None:
    """Keep the roots, ``--keep-dist`` names and editable installs, and what they need; then
    the roots marked REQUESTED only because uv or a full lock marks dependencies too."""
    dists = marks.graph.distributions
    loose: list[str] = []
    for name in start.chosen:
        if name in lists.listed_by_name:
            continue
        if start.source == "requested" and name not in lists.by_name:
            loose.append(name)
        else:
            marks.mark(name, _Why(start.why))
    for name in keep_list:
        marks.mark(name, _Why("kept: named with --keep-dist"))
    for name in sorted(dists):
        if dists[name].editable:
            marks.mark(name, _Why("kept: editable install (its source tree is never touched)"))
    marks.expand()
    # Still roots, but what the distributions installed by name require is explained by that
    # requirement (h11 is kept because httpcore and uvicorn require it, issue 17), so these
    # come after.
    for name in loose:
        marks.mark(name, _Why(
            "kept: root (marked REQUESTED by uv, which marks dependencies too)"
            if dists[name].installer.lower() == "uv" else
            "kept: root (REQUESTED, as every distribution here is: a full lock installs so)"))
    marks.expand()


def _keep_listed_by_name(marks: _Marks, lists: _Lists) -> frozenset[str]:
    """Keep, as roots, what was installed by name although a list names it; returns those
    kept only so (the ones a ``--remove-dist`` would remove).

    They come last, so that a reason to keep them that --remove-dist could not override (a
    kept distribution requires, imports or runs it) is the one reported.
    """
    kept_by_name: set[str] = set()
    for name, listed in lists.listed_by_name.items():
        if name not in marks.why:
            kept_by_name.add(name)
            marks.mark(name, _Why(f"kept: installed by name (REQUESTED), although {listed}; "
                                  f"--remove-dist {name} or --profile aggressive removes it"))
    marks.expand()
    return frozenset(kept_by_name)


def _keep_candidates(marks: _Marks, candidates: Sequence[str],
                     needed_by_seeds: Collection[str]) -> None:
    """Without explicit roots, keep the unneeded distributions that are not development
    tools, removable, or needed only by those: only explicit roots say the application does
    not need them."""
    for name in candidates:
        if name not in needed_by_seeds:
            marks.mark(name, _Why(_CANDIDATE_KEPT))
    marks.expand()


def _refuse_blocked(marks: _Marks) -> None:
    """:raises UsageError: naming each ``--remove-dist`` distribution a kept one needs, with
    the chain that keeps it."""
    parts = []
    for name in sorted(marks.blocked):
        need = marks.blocked[name]
        chain = " <- ".join(reversed(_chain(need.parent, marks.why))) if need.parent else ""
        text = need.text.replace("kept: ", "", 1)
        parts.append(f"{name} ({text}{'; ' + chain if chain else ''})")
    raise UsageError(
        "cannot remove what a kept distribution needs: " + ", ".join(parts)
        + "; drop it from --remove-dist, or add --force to remove it anyway"
    )


def _removal_reasons(marks: _Marks, start: _Roots, lists: _Lists) -> dict[str, _Why]:
    """Why each distribution not kept goes: named, not needed by explicit roots, a list's,
    or needed only by removed distributions."""
    graph = marks.graph
    removed: dict[str, _Why] = {}
    for name in sorted(graph.distributions):
        if name not in marks.why:
            reason = _listed_removal(name, marks, start, lists)
            if reason is not None:
                removed[name] = reason
    _needed_only_by_removed(graph, marks.why, removed)
    return removed


def _listed_removal(name: str, marks: _Marks, start: _Roots, lists: _Lists) -> _Why | None:
    """The reason ``name`` goes when something names it; None when it goes only because
    removed distributions alone need it."""
    if name in lists.forced:
        text = "removed: named with --remove-dist"
        if name in marks.blocked:
            requirer = marks.blocked[name].parent
            who = marks.graph.label(requirer) if requirer else "kept code"
            text += f" (forced although {who} needs it)"
        return _Why(text)
    if (start.source == "explicit" and name not in lists.dev_reasons
            and name not in lists.removable):
        shown = ", ".join(start.chosen[:5]) + (", ..." if len(start.chosen) > 5 else "")
        return _Why(f"removed: not needed by the roots ({shown})")
    if name in lists.dev_reasons:
        detail = f": {lists.dev_reasons[name]}" if lists.dev_reasons[name] else ""
        return _Why(f"removed: development tool{detail}{_named(name, lists.by_name)}")
    if name in lists.removable:
        return _Why("removed: removable by the profile, and nothing kept requires or imports it"
                    + _named(name, lists.by_name))
    return None


def _needed_only_by_removed(graph: Graph, kept: Mapping[str, _Why],
                            removed: dict[str, _Why]) -> None:
    """Give whatever remains (needed only by removed distributions) its reason, naming one
    removed distribution that requires it."""
    pending = [n for n in sorted(graph.distributions) if n not in kept and n not in removed]
    while pending:
        progress = False
        for name in list(pending):
            users = [e for e in graph.required_by[name] if e.source in removed]
            if users or not graph.required_by[name]:
                via = users[0].source if users else None
                text = (f"removed: needed only by removed distributions (required by "
                        f"{graph.label(via)})") if via else "removed: not needed by the roots"
                removed[name] = _Why(text, via)
                pending.remove(name)
                progress = True
        if not progress:
            for name in pending:
                removed[name] = _Why("removed: needed only by removed distributions")
            break


def _decisions(graph: Graph, kept: Mapping[str, _Why], removed: Mapping[str, _Why],
               sizes: Mapping[str, int], by_name: Collection[str],
               kept_by_name: Collection[str]) -> tuple[DistDecision, ...]:
    """One decision per distribution, sorted by name, with its chain of reasons."""
    all_why = {**kept, **removed}
    return tuple(
        DistDecision(
            name=name,
            version=graph.distributions[name].version,
            remove=name not in kept,
            bytes=int(sizes.get(name, 0)),
            reason=all_why[name].text,
            chain=_chain(name, all_why),
            requested=name in by_name,
            remove_with=f"--remove-dist {name}" if name in kept_by_name else "",
        )
        for name in sorted(graph.distributions)
    )


# --- helpers ------------------------------------------------------------------------------


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


def _named(name: str, by_name: Collection[str]) -> str:
    """The note a list removal of a distribution installed by name carries."""
    if name not in by_name or name in SEEDED:
        return ""
    return f" (installed by name, REQUESTED; --keep-dist {name} keeps it)"


def candidates_in(decisions: Iterable[DistDecision]) -> tuple[str, ...]:
    """The removal candidates among decisions made by :func:`decide_distributions` (also as
    a plan carries them): every removed distribution, and every kept one whose chain starts
    at a candidate kept only because no explicit roots were given. The same names as that
    call's :attr:`GraphDecision.candidates`, in the decisions' order."""
    return tuple(d.name for d in decisions
                 if d.remove or (d.chain and d.chain[0].split(" ", 1)[-1] == _CANDIDATE_KEPT))


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
