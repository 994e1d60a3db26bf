"""Which distributions go whole: the dependency graph's decision (:mod:`prune.graph`), fed
with what kept code imports and runs.

Imports can only keep distributions, never remove them, so the graph first decides without
them; that bounds the set whose modules the (costly) source scan looks for. Only a kept
distribution's imports keep anything, so the scan reads kept distributions' files only,
round by round: first those kept without any evidence, then those the evidence kept. The
result is what scanning every file gives, without parsing the files of development tools
that go (flaskdev: 689 files of pytest, mypy and friends importing each other).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from itertools import groupby
from typing import Optional

from packaging.utils import canonicalize_name

from ..errors import UsageError
from ..graph import SEEDED, decide_distributions, dev_tool_reasons, every_requested_removed, provided_modules
from ..imports import is_evidence_file, is_test_harness
from ..model import Diagnostic, DistDecision, Distribution, FileEntry, Inventory, Plan
from ..paths import site_relative
from ..profiles import Knowledge, Profile
from .options import PlanOptions
from .protect import is_sourceless_pyc
from .sources import SourceReader
from .state import entry_field

__all__ = ["RUN_MARKERS", "decide_dists", "dist_top_levels", "distribution_sizes", "with_kept_reasons",
           "refuse_removing_everything_named", "requested_removed_warnings", "root_distributions"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OWNER, _SIZE = entry_field("owner"), entry_field("size")

Imports = Mapping[str, Sequence[tuple[str, str]]]
Runs = Mapping[str, Sequence[tuple[str, str, str]]]

#: Words a file that runs a module or a program by name must contain (run_references).
RUN_MARKERS = (b'"-m"', b"'-m'", b" -m ", b"which(", b"find_spec(", b"find_loader(",
               b"get_loader(", b"find_executable(", b"subprocess", b"system(", b"popen(",
               b"spawnlp(", b"spawnvp(", b"execlp(", b"execvp(", b"run_command(")


def distribution_sizes(files: Iterable[FileEntry]) -> dict[str, int]:
    """distribution -> bytes of its files. A distribution's files lie mostly together in
    path order: summed run by run, with the per-file steps in C (groupby, map)."""
    sizes: dict[str, int] = defaultdict(int)
    for owner, run in groupby(files, key=_OWNER):
        if owner:
            sizes[owner] += sum(map(_SIZE, run))
    return sizes


def _keep_unreadable(inv: Inventory, options: PlanOptions) -> list[str]:
    """The distributions kept whole: ``--keep-dist`` ones, and those whose RECORD could not be
    read (which files are their own is unknown: issue 16, ``--remove-dist six`` left six.py
    behind, silently).

    :raises UsageError: ``--remove-dist`` names a distribution whose RECORD is unreadable.
    """
    unreadable = {d.name: d.record_error for d in inv.distributions if d.record_error}
    for name in options.remove_dists:
        reason = unreadable.get(canonicalize_name(name))
        if reason:
            dist = inv.distribution(canonicalize_name(name))
            where = f"{dist.metadata_dir}/RECORD" if dist else "its RECORD"
            raise UsageError(f"--remove-dist {name}: {where} cannot be read ({reason}); venv-prune "
                             "cannot tell which files are its own; make it readable and run again")
    return sorted(set(options.keep_dists) | set(unreadable))


def decide_dists(inv: Inventory, profile: Profile, options: PlanOptions, knowledge: Knowledge,
                 sources: SourceReader, sizes: Mapping[str, int],
                 ) -> tuple[tuple[DistDecision, ...], list[Diagnostic]]:
    """Ask the graph which distributions go (pip/setuptools/wheel, dev tools, unreachable),
    feeding it, round by round, what kept distributions' code imports and runs.

    Where the profile says what development tools run keeps nothing
    (``keep_what_dev_tools_run = false``, aggressive), a run found in a listed tool's code
    (IPython's ``%pip`` magic runs ``python -m pip``) is set aside, and each distribution
    removed although a kept tool runs it gets a warning naming the run and ``--keep-dist``.

    :returns: (the decisions, those warnings).
    :raises UsageError: from the graph (an unknown name, a required distribution named for
        removal without ``force``), or :func:`_keep_unreadable`'s.
    """
    explicit = bool(options.roots) or bool(options.remove_dists)
    if not profile.remove_distributions and not profile.remove_dev_tools and not explicit:
        return (), []
    tools = (dict(knowledge.dev_tools)
             if profile.remove_dev_tools and not profile.keep_what_dev_tools_run else {})
    set_aside: dict[str, list[tuple[str, str, str]]] = {}
    decisions = _decide_rounds(inv, profile, options, knowledge, sources, sizes, tools, set_aside)
    return decisions, _tool_run_warnings(decisions, set_aside, knowledge)


def _tool_run_warnings(decisions: Sequence[DistDecision], set_aside: Runs,
                       knowledge: Knowledge) -> list[Diagnostic]:
    """A warning for each distribution removed although a kept development tool runs it."""
    by_name = {d.name: d for d in decisions}
    reasons = dev_tool_reasons(set_aside, dict(knowledge.dev_tools))
    out: list[Diagnostic] = []
    for user, runs in sorted(set_aside.items()):
        if by_name.get(user) is not None and by_name[user].remove:
            continue
        for needed, what, path in runs:
            d = by_name.get(needed)
            if d is None or not d.remove:
                continue
            out.append(Diagnostic(
                "warning", "dev-tool-run",
                f"{d.name} {d.version} ({d.bytes / 2**20:.1f} MiB) is removed although the kept "
                f"{user} ({reasons.get(user) or 'development tool'}) {what} ({path}): what a "
                f"development tool runs keeps nothing in this profile; --keep-dist {d.name} keeps it"))
    return out


def _decide_rounds(inv: Inventory, profile: Profile, options: PlanOptions, knowledge: Knowledge,
                   sources: SourceReader, sizes: Mapping[str, int], tools: Mapping[str, str],
                   set_aside: dict[str, list[tuple[str, str, str]]]) -> tuple[DistDecision, ...]:
    """The graph's decision, fed round by round with what kept code imports and runs; the
    runs of the development tools in ``tools`` go to ``set_aside`` instead."""
    keep_whole = _keep_unreadable(inv, options)

    def decide(imports: Imports, runs: Runs) -> tuple[DistDecision, ...]:
        decision = decide_distributions(
            inv.distributions,
            marker_env=inv.env.marker_environment(),
            roots=list(options.roots) if options.roots else None,
            removable=list(profile.remove_distributions),
            dev_tools=dict(knowledge.dev_tools) if profile.remove_dev_tools else None,
            keep=keep_whole,
            remove=list(options.remove_dists),
            force=options.force,
            imports=imports,
            sizes=sizes,
            dev_extras=knowledge.dev_extras,
            runs=runs,
            lists_remove_requested=profile.lists_remove_requested,
        )
        return tuple(decision.decisions)

    first = decide({}, {})
    maybe = {d.name for d in first if d.remove}
    if not maybe:
        return first
    decided = first
    evidence: dict[str, list[tuple[str, str]]] = {}
    run_evidence: dict[str, list[tuple[str, str, str]]] = {}
    scanned: set[str] = set()
    while True:
        kept = {d.name for d in decided if not d.remove} - scanned
        found, ran = _distribution_needs(inv, sources, maybe, kept) if kept else ({}, {})
        scanned |= kept
        if not found and not ran:
            return decided
        evidence.update(found)
        by_tools = dev_tool_reasons(ran, tools) if tools else {}
        run_evidence.update({k: v for k, v in ran.items() if k not in by_tools})
        set_aside.update({k: list(v) for k, v in ran.items() if k in by_tools})
        decided = decide(evidence, run_evidence)


def _names_of(inv: Inventory, dists: Container[str], modules: dict[str, str], programs: dict[str, str]) -> None:
    """Add to ``modules`` (top-level module -> distribution) and ``programs`` (console
    script -> distribution) those of ``dists``, and the modules they provide on the target
    (``distutils`` from setuptools on Python 3.12+, :func:`prune.graph.provided_modules`)."""
    for dist in inv.distributions:
        if dist.name not in dists:
            continue
        for top in dist_top_levels(dist, inv.env.site_packages):
            modules.setdefault(top, dist.name)
        for script in dist.console_scripts:
            programs.setdefault(script, dist.name)
    for module, provider in provided_modules(inv.env.marker_environment()).items():
        if provider in dists:
            modules.setdefault(module, provider)


def _distribution_needs(
    inv: Inventory, sources: SourceReader, maybe: set[str], owners: Container[str],
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str, str]]]]:
    """What the files of the distributions in ``owners`` need of the distributions in
    ``maybe`` (those that might be removed): (the imports of :func:`_distribution_imports`,
    the runs of :func:`_distribution_runs`)."""
    candidates: dict[str, str] = {}
    programs: dict[str, str] = {}
    _names_of(inv, maybe, candidates, programs)
    if not candidates and not programs:
        return {}, {}
    return (_distribution_imports(inv, sources, candidates, owners),
            _distribution_runs(inv, sources, candidates, programs, owners))


def _distribution_imports(inv: Inventory, sources: SourceReader, candidates: Mapping[str, str],
                          owners: Container[str]) -> dict[str, list[tuple[str, str]]]:
    """distribution -> [(imported module, file)]: the imports, by files of ``owners``, of the
    top-level modules in ``candidates`` (module -> distribution).

    Each source file is first checked for those names as bytes (cheap) and parsed only on
    a hit. Test directories, ``conftest.py`` and ``setup.py`` files are skipped: code that only
    tests or builds imports does not keep a distribution.
    """
    needles = tuple(sorted({t.encode() for t in candidates}))
    result: dict[str, list[tuple[str, str]]] = defaultdict(list)
    sources.hint(needles)  # one read of each file answers this question and the import check's
    existing = {fe.path for fe in inv.files}
    for fe in inv.files:
        if fe.owner is None or fe.owner not in owners:
            continue
        if fe.path.endswith("-nspkg.pth"):
            result[fe.owner].append(("pkg_resources", fe.path))
        elif fe.is_link:
            continue
        elif is_sourceless_pyc(fe.path, existing):
            # A sourceless module's bytecode may come from another Python version, so it is
            # not unmarshalled: a candidate's name among its bytes counts as an import
            # (keeping a distribution costs bytes; removing a needed one breaks the module).
            data = sources.read_bytes(fe.path)
            for top, dist_name in candidates.items():
                if dist_name != fe.owner and top.encode() in data:
                    result[fe.owner].append((top, fe.path))
        elif fe.path.endswith(".py") and is_evidence_file(fe.path) and sources.contains(fe.path, needles):
            # Only imports whose absence breaks the module count (not try/except ImportError,
            # not TYPE_CHECKING): werkzeug's guarded `import pkg_resources` must not keep
            # setuptools. The full dotted name goes to the graph (google.protobuf is
            # protobuf's, not every google-* distribution's).
            for mod in sources.required(fe.path):
                owner = candidates.get(mod.split(".", 1)[0])
                if owner is not None and owner != fe.owner:
                    result[fe.owner].append((mod, fe.path))
    return {k: sorted(set(v)) for k, v in result.items()}


def _distribution_runs(
    inv: Inventory, sources: SourceReader, modules: Mapping[str, str],
    programs: Mapping[str, str], owners: Container[str],
) -> dict[str, list[tuple[str, str, str]]]:
    """distribution -> [(needed distribution, what, file)]: kept files (of ``owners``) that
    run or look up a module (top-level name in ``modules``) or a program (console script in
    ``programs``) of another distribution (:func:`prune.imports.run_references`: ``[sys.executable,
    "-m", "pip"]``, ``find_spec("pip")``, ``shutil.which("black")``; issue 15, kind C)."""
    # The installers running each other (setuptools' develop command and build-egg fetcher
    # run `python -m pip`) is build work: it does not keep pip for a kept setuptools.
    # Test helpers shipped as packages (torch/testing/_internal, pandas/_testing) run pip
    # and pytest for test suites: test work, as tests/ is.
    paths = [fe.path for fe in inv.files
             if fe.owner is not None and fe.owner in owners and fe.owner not in SEEDED
             and not fe.is_link and fe.path.endswith(".py") and is_evidence_file(fe.path)
             and not is_test_harness(fe.path)]
    paths = sources.may_contain(paths, RUN_MARKERS)
    owner_of = {fe.path: fe.owner for fe in inv.files if fe.owner is not None}
    names = tuple({n.encode() for n in modules} | {n.encode() for n in programs})
    result: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for path in paths:
        found = sources.runs(path, names)
        if not found:
            continue
        user = owner_of[path]
        for kind, name in found:
            if kind == "module":
                needed = modules.get(name.split(".", 1)[0])
                what = f"runs python -m {name} or looks the module up"
            else:
                needed = programs.get(name)
                what = f"runs or looks up the program {name}"
            if needed is not None and needed != user:
                result[user].add((needed, what, path))
    return {k: sorted(v) for k, v in result.items()}


def dist_top_levels(dist: Distribution, sites: Sequence[str]) -> set[str]:
    """The top-level modules a distribution provides: its ``top_level.txt`` names and the
    first component of each of its files in a site-packages directory."""
    tops = set(dist.top_level)
    for f in dist.files:
        found = site_relative(f, sites)
        if found is None:
            continue
        first = found[1].split("/", 1)[0]
        if first.endswith((".dist-info", ".egg-info", ".pth")) or first == "__pycache__":
            continue
        name = first[:-3] if first.endswith(".py") else first.split(".", 1)[0]
        if _IDENT.match(name):
            tops.add(name)
    return tops


def with_kept_reasons(decisions: tuple[DistDecision, ...], extra_keep: Mapping[str, str],
                      named: Container[str]) -> tuple[DistDecision, ...]:
    """The decisions with the reason an earlier pass found for keeping a distribution (a kept
    file inside it), where the user did not name it with ``--keep-dist``."""
    if not extra_keep:
        return decisions
    return tuple(replace(d, reason=extra_keep[d.name]) if d.name in extra_keep and d.name not in named else d
                 for d in decisions)


def requested_removed_warnings(decisions: Sequence[DistDecision], options: PlanOptions) -> list[Diagnostic]:
    """A warning for each distribution installed by name that a profile list removes:
    allowed (aggressive), never silent. None with explicit roots (the user's word)."""
    if options.roots:
        return []
    return [Diagnostic(
        "warning", "requested-removed",
        f"{d.name} {d.version} ({d.bytes / 2**20:.1f} MiB) was installed by name "
        f"(REQUESTED) and is removed: "
        f"{d.reason.replace('removed: ', '', 1).split(' (installed by name')[0]}; "
        f"--keep-dist {d.name} keeps it")
        for d in decisions
        if d.remove and d.requested and d.name not in SEEDED and d.name not in options.remove_dists]


def refuse_removing_everything_named(plan: Plan, options: PlanOptions) -> None:
    """Refuse a plan that removes every distribution the user installed by name (issue 15,
    kind D: a profile list took jupyter-kernel-gateway and ipykernel, 81 of 81
    distributions). Explicit roots are the user's word on what stays; ``--force`` overrides.

    :raises UsageError: listing those distributions, their sizes and the ways out.
    """
    if options.force or options.roots:
        return
    named = every_requested_removed(plan.distributions, options.remove_dists)
    if named:
        listed = ", ".join(f"{d.name} {d.version} ({d.bytes / 2**20:.1f} MiB)" for d in named)
        raise UsageError(
            f"the plan removes every distribution installed by name (REQUESTED): {listed}; "
            f"keep one with --keep-dist {named[0].name}, name what the application needs with "
            "--root NAME, or add --force to remove them anyway")


def root_distributions(inventory: Inventory, decisions: Sequence[DistDecision],
                       named: Optional[Sequence[str]], removable: Iterable[str] = (), *,
                       dev_tools: Iterable[str] = ()) -> frozenset[str]:
    """The distributions the user chose: named with ``--root``, else installed by name.

    Installed by name: those the graph's ``decisions`` mark so and keep
    (:func:`prune.graph.installed_by_name`: where uv or a full lock marked the dependencies
    REQUESTED too, only the marked distributions nothing else requires); without decisions,
    the same rule applied here. Minus ``removable`` (pip, setuptools and wheel, marked
    REQUESTED by a venv's seeding, not by the user) and ``dev_tools`` (names or fnmatch
    patterns: a profile that removes development tools never takes them as roots, as the
    graph does not). Empty when nothing is marked REQUESTED.
    """
    if named:
        return frozenset(str(canonicalize_name(r)) for r in named)
    if decisions:
        chosen = {d.name for d in decisions if d.requested and not d.remove}
    else:
        chosen = _installed_by_name(inventory)
    skip = {str(canonicalize_name(r)) for r in removable}
    patterns = [str(canonicalize_name(t)) for t in dev_tools]
    return frozenset(n for n in chosen if n not in skip and not any(fnmatchcase(n, t) for t in patterns))


def _installed_by_name(inventory: Inventory) -> set[str]:
    """:func:`prune.graph.installed_by_name` without a graph: the REQUESTED distributions,
    but where uv installed one or every distribution is marked, only those no other
    installed distribution requires (an extra's requirements excepted)."""
    from packaging.requirements import InvalidRequirement, Requirement

    dists = inventory.distributions
    marked = [d for d in dists if d.requested]
    everything = len(marked) == len(dists)
    required: set[str] = set()
    for dist in dists:
        for text in dist.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            name = str(canonicalize_name(req.name))
            if name != dist.name and (req.marker is None or "extra" not in str(req.marker)):
                required.add(name)
    return {d.name for d in marked
            if not ((everything or d.installer.lower() == "uv") and d.name in required)}
