"""The distribution graph: edges from metadata, roots, and which distributions go and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune.errors import UsageError
from prune.graph import (
    build_graph,
    candidates_in,
    decide_distributions,
    dev_tool_reasons,
    project_name,
    roots_from_requirements,
)
from prune.model import Distribution

SITE = "lib/python3.12/site-packages"


def env_for(version: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython", "implementation_version": f"{version}.0",
        "os_name": "posix", "platform_machine": "x86_64",
        "platform_python_implementation": "CPython", "platform_release": "6.1",
        "platform_system": "Linux", "platform_version": "#1", "python_full_version": f"{version}.0",
        "python_version": version, "sys_platform": "linux",
    }


ENV = env_for("3.12")


def dist(
    name: str, *requires: str, version: str = "1.0", extras: Sequence[str] = (),
    requested: bool = False, editable: bool = False, files: Sequence[str] | None = None,
    top_level: Sequence[str] = (),
) -> Distribution:
    module = name.replace("-", "_")
    if files is None:
        files = (f"{SITE}/{module}/__init__.py",)
    return Distribution(
        name=name, display_name=name, version=version,
        metadata_dir=f"{SITE}/{module}-{version}.dist-info", site=SITE,
        files=tuple(files), top_level=tuple(top_level), requires=tuple(requires),
        extras=tuple(extras), entry_points=(), requested=requested, editable=editable,
    )


def removed(decision: object) -> set[str]:
    return set(decision.removed)  # type: ignore[attr-defined]


DEV = ["pytest", "pytest-*", "coverage", "mypy", "black", "ipython"]


# --- the graph ------------------------------------------------------------------------------


def test_markers_are_evaluated_for_the_target_interpreter() -> None:
    dists = [
        dist("app", "old; python_version < '3.9'", "new; python_version >= '3.12'"),
        dist("old"), dist("new"),
    ]
    for version, needed, gone in (("3.8", "old", "new"), ("3.12", "new", "old")):
        graph = build_graph(dists, marker_env=env_for(version))
        assert [e.target for e in graph.requires["app"]] == [needed]
        decision = decide_distributions(dists, marker_env=env_for(version), roots=["app"])
        assert removed(decision) == {gone}


def test_extra_is_active_only_when_all_its_requirements_are_installed() -> None:
    base = dist("lib", "a; extra == 'full'", "b; extra == 'full'", "c; extra == 'one'",
                "zz; extra == 'one'", extras=["full", "one"])
    graph = build_graph([base, dist("a"), dist("b"), dist("c")], marker_env=ENV)
    assert graph.active_extras["lib"] == ("full",)
    assert {(e.target, e.extra) for e in graph.requires["lib"]} == {("a", "full"), ("b", "full")}
    decision = decide_distributions(
        [base, dist("a"), dist("b"), dist("c")], marker_env=ENV, roots=["lib"])
    assert removed(decision) == {"c"}
    assert decision.decision("a").reason == "kept: required by lib 1.0 [full] (a)"  # type: ignore[union-attr]


def test_extra_asked_for_by_another_distribution_is_active() -> None:
    dists = [
        dist("app", "lib[socks]>=1"),
        dist("lib", "pysocks; extra == 'socks'", "missing; extra == 'socks'", extras=["socks"]),
        dist("pysocks"),
    ]
    graph = build_graph(dists, marker_env=ENV)
    assert graph.active_extras["lib"] == ("socks",)
    assert ("lib", 'missing; extra == "socks"') in graph.missing
    assert removed(decide_distributions(dists, marker_env=ENV, roots=["app"])) == set()


def test_development_extras_do_not_keep_development_tools() -> None:
    # pure-eval[tests] needs pytest; pytest being installed does not make that extra in use.
    dists = [dist("pure-eval", "pytest; extra == 'tests'", extras=["tests"], requested=True),
             dist("pytest", requested=True)]
    assert build_graph(dists, marker_env=ENV).active_extras["pure-eval"] == ("tests",)
    graph = build_graph(dists, marker_env=ENV, dev_extras={"tests"})
    assert graph.active_extras["pure-eval"] == ()
    decision = decide_distributions(dists, marker_env=ENV, dev_tools=DEV, dev_extras={"tests"},
                                    lists_remove_requested=True)
    assert removed(decision) == {"pytest"}
    # Asked for by name, the extra is in use after all.
    asked = [*dists, dist("app", "pure-eval[tests]", requested=True)]
    decision = decide_distributions(asked, marker_env=ENV, dev_tools=DEV, dev_extras={"tests"})
    assert removed(decision) == set()


def test_builtin_development_extras_are_loaded() -> None:
    from prune.profiles import load_knowledge

    extras = load_knowledge().dev_extras
    assert {"tests", "test", "cover", "docs"} <= set(extras)
    assert "format" not in extras  # jsonschema[format] is run-time code


def test_extra_markers_combined_with_python_version() -> None:
    lib = dist("lib", "a; python_version < '3.9' and extra == 'x'", "b; extra == 'x'",
               extras=["x"])
    dists = [lib, dist("a"), dist("b")]
    old = build_graph(dists, marker_env=env_for("3.8"))
    assert {e.target for e in old.requires["lib"]} == {"a", "b"}
    assert {e.target for e in build_graph(dists, marker_env=ENV).requires["lib"]} == {"b"}


def test_cycles_and_diamond() -> None:
    dists = [
        dist("app", "b", "c", requested=True), dist("b", "d>=1"), dist("c", "d"),
        dist("d", "e"), dist("e", "d"),
        dist("pytest", "x", requested=True), dist("x", "y"), dist("y", "x"),
    ]
    decision = decide_distributions(dists, marker_env=ENV, dev_tools=DEV, lists_remove_requested=True)
    assert removed(decision) == {"pytest", "x", "y"}
    d = decision.decision("e")
    assert d is not None and not d.remove
    assert d.chain == (
        "app kept: root (REQUESTED: installed by name)",
        "b kept: required by app 1.0 (b)",
        "d kept: required by b 1.0 (d>=1)",
        "e kept: required by d 1.0 (e)",
    )
    assert decision.decision("y").chain[0] == (  # type: ignore[union-attr]
        "pytest removed: development tool (installed by name, REQUESTED; --keep-dist pytest keeps it)")


def test_invalid_requirement_is_a_diagnostic() -> None:
    graph = build_graph([dist("a", "b >=< 1", "c"), dist("c")], marker_env=ENV)
    assert [e.target for e in graph.requires["a"]] == ["c"]
    assert [d.code for d in graph.diagnostics] == ["invalid-requirement"]


# --- roots and development tools ------------------------------------------------------------


def leak() -> list[Distribution]:
    return [
        dist("app", "packaging", "flask", requested=True), dist("flask", "werkzeug"),
        dist("werkzeug"), dist("packaging"),
        dist("pytest", "pluggy", "iniconfig", "packaging", requested=True),
        dist("pluggy"), dist("iniconfig"),
        dist("pytest-cov", "pytest", "coverage", requested=True), dist("coverage"),
        dist("pip", requested=False), dist("setuptools"),
        dist("leftover"),
    ]


def test_dev_tools_go_with_their_exclusive_dependencies() -> None:
    decision = decide_distributions(
        leak(), marker_env=ENV, dev_tools=DEV, removable=["pip", "setuptools", "wheel"],
        sizes={"pytest": 1000, "leftover": 7}, lists_remove_requested=True,
    )
    assert decision.root_source == "requested"
    assert decision.roots == ("app",)
    assert removed(decision) == {
        "pytest", "pluggy", "iniconfig", "pytest-cov", "coverage", "pip", "setuptools"}
    assert decision.decision("pytest").bytes == 1000  # type: ignore[union-attr]
    assert decision.decision("pluggy").reason == (  # type: ignore[union-attr]
        "removed: needed only by removed distributions (required by pytest 1.0)")
    # Unneeded but not a dev tool: reported as a candidate, kept without explicit roots.
    left = decision.decision("leftover")
    assert left is not None and not left.remove and left.bytes == 7
    assert "leftover" in decision.candidates and "pytest" in decision.candidates
    assert "packaging" not in decision.candidates


def test_without_dev_tool_list_requested_dev_tools_are_roots() -> None:
    decision = decide_distributions(leak(), marker_env=ENV, dev_tools=None, removable=["pip"])
    assert removed(decision) == {"pip"}
    assert "pytest" in decision.roots


def test_dev_tool_required_by_a_root_or_kept_stays() -> None:
    dists = [dist("app", "pytest", requested=True), dist("pytest", "pluggy"), dist("pluggy")]
    decision = decide_distributions(dists, marker_env=ENV, dev_tools=DEV)
    assert removed(decision) == set()
    decision = decide_distributions(leak(), marker_env=ENV, dev_tools=DEV, keep=["PyTest"])
    assert {"pytest", "pluggy", "iniconfig"}.isdisjoint(removed(decision))
    assert decision.decision("pytest").reason == "kept: named with --keep-dist"  # type: ignore[union-attr]


def test_dev_tool_reasons_from_a_mapping() -> None:
    decision = decide_distributions(
        leak(), marker_env=ENV, dev_tools={"pytest": "test runner", "pytest-*": "plugin"},
        lists_remove_requested=True)
    note = " (installed by name, REQUESTED; --keep-dist {} keeps it)"
    assert decision.decision("pytest").reason == (  # type: ignore[union-attr]
        "removed: development tool: test runner" + note.format("pytest"))
    assert decision.decision("pytest-cov").reason == (  # type: ignore[union-attr]
        "removed: development tool: plugin" + note.format("pytest-cov"))


def test_explicit_roots_remove_everything_unreachable() -> None:
    decision = decide_distributions(leak(), marker_env=ENV, roots=["flask"], dev_tools=DEV)
    assert decision.root_source == "explicit"
    assert decision.kept == ("flask", "werkzeug")
    assert decision.decision("leftover").reason == "removed: not needed by the roots (flask)"  # type: ignore[union-attr]


def test_no_requested_means_every_non_dev_distribution_is_a_root() -> None:
    dists = [
        dist("app", "lib"), dist("lib"), dist("pytest", "pluggy", "lib"), dist("pluggy"),
        dist("pip"),
    ]
    decision = decide_distributions(dists, marker_env=ENV, dev_tools=DEV, removable=["pip"])
    assert decision.root_source == "all"
    assert decision.roots == ("app",)
    assert removed(decision) == {"pytest", "pluggy", "pip"}


def test_empty_environment_and_all_dev() -> None:
    assert decide_distributions([], marker_env=ENV).decisions == ()
    decision = decide_distributions([dist("pytest", "pluggy"), dist("pluggy")],
                                    marker_env=ENV, dev_tools=DEV)
    assert removed(decision) == {"pytest", "pluggy"}


def test_editable_installs_are_always_kept() -> None:
    dists = [dist("app", requested=True), dist("mine", "dep", editable=True), dist("dep")]
    decision = decide_distributions(dists, marker_env=ENV, roots=["app"])
    assert removed(decision) == set()
    assert decision.decision("mine").reason.startswith("kept: editable install")  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="editable"):
        decide_distributions(dists, marker_env=ENV, remove=["mine"])


# --- imports and setuptools -----------------------------------------------------------------


def setuptools() -> Distribution:
    return dist("setuptools", version="69.5.1", files=(
        f"{SITE}/setuptools/__init__.py", f"{SITE}/pkg_resources/__init__.py",
        f"{SITE}/_distutils_hack/__init__.py", f"{SITE}/distutils-precedence.pth",
    ))


def test_fs_imports_pkg_resources_keeps_setuptools() -> None:
    path = f"{SITE}/fs/__init__.py"
    dists = [dist("fs", "six", version="2.4.16", requested=True), dist("six"), setuptools()]
    decision = decide_distributions(
        dists, marker_env=ENV, removable=["pip", "setuptools", "wheel"],
        imports={"fs": [("pkg_resources", path)]},
    )
    d = decision.decision("setuptools")
    assert d is not None and not d.remove
    assert d.reason == f"kept: fs 2.4.16 imports pkg_resources ({path})"
    assert d.chain[-1] == f"setuptools kept: fs 2.4.16 imports pkg_resources ({path})"
    # Without the import, setuptools goes.
    assert removed(decide_distributions(dists, marker_env=ENV, removable=["setuptools"])) == {
        "setuptools"}


def test_pkg_resources_owner_without_record() -> None:
    bare = dist("setuptools", files=())
    decision = decide_distributions(
        [dist("fs", requested=True), bare], marker_env=ENV, removable=["setuptools"],
        imports={"fs": [("pkg_resources", "x.py")]},
    )
    assert removed(decision) == set()


def test_distutils_is_setuptools_on_python_312_and_later() -> None:
    """Python 3.12 removed distutils (PEP 632): from then on only setuptools provides it, so
    kept code importing it keeps setuptools; before 3.12 the standard library has it
    (issue 15, case 4: undetected-chromedriver's `from distutils.version import LooseVersion`)."""
    from prune.graph import provided_modules

    path = f"{SITE}/undetected_chromedriver/patcher.py"
    dists = [dist("undetected-chromedriver", requested=True), setuptools()]
    for version, kept in (("3.11", False), ("3.12", True), ("3.13", True)):
        assert ("distutils" in provided_modules(env_for(version))) is kept
        decision = decide_distributions(
            dists, marker_env=env_for(version), removable=["pip", "setuptools", "wheel"],
            imports={"undetected-chromedriver": [("distutils.version", path)]})
        d = decision.decision("setuptools")
        assert d is not None and d.remove is not kept, (version, d)
        if kept:
            assert d.reason == (
                f"kept: undetected-chromedriver 1.0 imports distutils.version ({path})")


def test_what_kept_code_runs_is_kept() -> None:
    """spaCy runs `python -m pip install` (issue 15, case 3): that keeps pip, as an import
    would, and whatever the kept pip requires."""
    path = f"{SITE}/spacy/cli/download.py"
    dists = [dist("spacy", requested=True), dist("pip", "helper", requested=True),
             dist("helper"), dist("black", requested=True)]
    runs = {"spacy": [("pip", "runs python -m pip or looks the module up", path)]}
    for aggressive in (False, True):
        decision = decide_distributions(dists, marker_env=ENV, removable=["pip"], runs=runs,
                                        dev_tools=DEV, lists_remove_requested=aggressive)
        pip = decision.decision("pip")
        assert pip is not None and not pip.remove
        assert pip.reason == f"kept: spacy 1.0 runs python -m pip or looks the module up ({path})"
        assert not decision.decision("helper").remove  # type: ignore[union-attr]
    assert removed(decide_distributions(dists, marker_env=ENV, removable=["pip"])) == {
        "pip", "helper"}


def test_installed_by_name_beats_profile_lists_unless_aggressive_roots_or_named() -> None:
    """issue 15, kind D: `pip install black jinja2` ships black as the product."""
    dists = [dist("black", "click", requested=True), dist("click"),
             dist("jinja2", "markupsafe", requested=True), dist("markupsafe"),
             dist("pytest", "pluggy"), dist("pluggy"), dist("pip", requested=True)]
    common: dict[str, Any] = {"marker_env": ENV, "dev_tools": {"black": "code formatter",
                                                              "pytest": "test runner"},
                              "removable": ["pip", "setuptools", "wheel"],
                              "sizes": {"black": 5000}}
    standard = decide_distributions(dists, **common)
    black = standard.decision("black")
    assert black is not None and not black.remove and black.requested and black.bytes == 5000
    assert black.remove_with == "--remove-dist black"
    assert black.reason == (
        "kept: installed by name (REQUESTED), although the development-tools list names it "
        "(code formatter); --remove-dist black or --profile aggressive removes it")
    # A dev tool nobody named still goes; pip (seeded by venv, marked REQUESTED) still goes.
    assert removed(standard) == {"pytest", "pluggy", "pip"}
    assert standard.decision("jinja2").remove_with == ""  # type: ignore[union-attr]

    aggressive = decide_distributions(dists, lists_remove_requested=True, **common)
    assert removed(aggressive) == {"black", "click", "pytest", "pluggy", "pip"}
    assert aggressive.decision("black").reason == (  # type: ignore[union-attr]
        "removed: development tool: code formatter (installed by name, REQUESTED; "
        "--keep-dist black keeps it)")
    assert aggressive.decision("black").remove_with == ""  # type: ignore[union-attr]
    explicit = decide_distributions(dists, roots=["jinja2"], **common)
    assert removed(explicit) == {"black", "click", "pytest", "pluggy", "pip"}
    named = decide_distributions(dists, remove=["black"], **common)
    assert "black" in removed(named) and named.decision("black").reason == (  # type: ignore[union-attr]
        "removed: named with --remove-dist")
    kept = decide_distributions(dists, keep=["black"], **common)
    assert kept.decision("black").reason == "kept: named with --keep-dist"  # type: ignore[union-attr]
    assert kept.decision("black").remove_with == ""  # type: ignore[union-attr]


def test_installed_by_name_when_everything_is_marked() -> None:
    """uv marks everything it installs REQUESTED, dependencies too, as does a full lock
    installed by pip: then only the top of the graph counts as named by the user."""
    from prune.graph import installed_by_name

    def marked(installer: str, *, click_requested: bool = True) -> list[Distribution]:
        return [replace(d, installer=installer) for d in (
            dist("black", "click", requested=True), dist("click", requested=click_requested),
            dist("jinja2", requested=True), dist("pytest", requested=False))]

    def by_name(dists: list[Distribution]) -> frozenset[str]:
        return installed_by_name(build_graph(dists, marker_env=ENV))

    assert by_name(marked("pip")) == {"black", "click", "jinja2"}
    assert by_name(marked("uv")) == {"black", "jinja2"}
    everything = [replace(d, requested=True) for d in marked("pip")]
    assert by_name(everything) == {"black", "jinja2", "pytest"}
    # A full lock in a virtualenv-made venv, whose seeded pip is not marked: still everything.
    seeded = everything + [dist("pip", requested=False)]
    assert by_name(seeded) == {"black", "jinja2", "pytest"}
    # uv-installed click, required by black: not named, so only black is warned about; its
    # REQUESTED mark still makes it a root (the application may import it), so it stays.
    decision = decide_distributions(marked("uv"), marker_env=ENV, dev_tools=["black"],
                                    lists_remove_requested=True)
    assert removed(decision) == {"black"}
    assert not decision.decision("click").requested  # type: ignore[union-attr]
    assert decision.decision("black").requested  # type: ignore[union-attr]


def test_every_requested_removed_is_reported() -> None:
    from prune.graph import every_requested_removed

    dists = [dist("jupyter-kernel-gateway", "ipykernel", "tornado", requested=True),
             dist("ipykernel", requested=True), dist("tornado"), dist("pip", requested=True)]
    old_list = ["jupyter-*", "ipykernel"]
    decision = decide_distributions(dists, marker_env=ENV, dev_tools=old_list,
                                    removable=["pip"], lists_remove_requested=True)
    assert removed(decision) == {"jupyter-kernel-gateway", "ipykernel", "tornado", "pip"}
    named = every_requested_removed(decision.decisions)
    assert [d.name for d in named] == ["ipykernel", "jupyter-kernel-gateway"]
    # Named by the user with --remove-dist: their word, not a profile list's.
    assert every_requested_removed(decision.decisions, ["ipykernel", "Jupyter_Kernel_Gateway"]) == ()
    standard = decide_distributions(dists, marker_env=ENV, dev_tools=old_list, removable=["pip"])
    assert removed(standard) == {"pip"}
    assert every_requested_removed(standard.decisions) == ()


def test_notebook_servers_and_kernels_are_not_development_tools() -> None:
    names = _dev_tools()
    for app in ("jupyter-kernel-gateway", "ipykernel", "notebook", "jupyterlab", "jupyter",
                "jupyter-server", "jupyter-client", "jupyterlab-server", "voila"):
        assert app not in dev_tool_reasons([app], names), app
    for tool in ("pytest", "pytest-cov", "mypy", "black", "ruff", "coverage", "flake8"):
        assert tool in dev_tool_reasons([tool], names), tool


def test_imports_keep_to_a_fixpoint() -> None:
    # app imports a (undeclared); a requires b; b imports c: all three stay.
    dists = [dist("app", requested=True), dist("a", "b"), dist("b"), dist("c"),
             dist("pytest", "a", "c")]
    decision = decide_distributions(
        dists, marker_env=ENV, dev_tools=DEV, roots=["app"],
        imports={"app": [("a", "app/x.py")], "b": [("c.sub", "b/y.py")]},
    )
    assert removed(decision) == {"pytest"}
    assert decision.decision("c").chain == (  # type: ignore[union-attr]
        "app kept: root (named explicitly)",
        "a kept: app 1.0 imports a (app/x.py)",
        "b kept: required by a 1.0 (b)",
        "c kept: b 1.0 imports c.sub (b/y.py)",
    )


def test_namespace_packages_resolve_to_the_defining_distribution() -> None:
    dists = [
        dist("app", requested=True),
        dist("protobuf", files=(f"{SITE}/google/protobuf/__init__.py",)),
        dist("googleapis-common-protos", files=(f"{SITE}/google/api/__init__.py",)),
    ]
    precise = decide_distributions(dists, marker_env=ENV, roots=["app"],
                                   imports={"app": [("google.protobuf.message", "a.py")]})
    assert removed(precise) == {"googleapis-common-protos"}
    coarse = decide_distributions(dists, marker_env=ENV, roots=["app"],
                                  imports={"app": [("google", "a.py")]})
    assert removed(coarse) == set()


def test_nspkg_pth_keeps_setuptools() -> None:
    pth = f"{SITE}/zope.interface-6.0-py3.12-nspkg.pth"
    files = (pth, f"{SITE}/zope/interface/__init__.py")
    dists = [dist("zope-interface", requested=True, files=files), setuptools()]
    decision = decide_distributions(dists, marker_env=ENV, removable=["setuptools"])
    d = decision.decision("setuptools")
    assert d is not None and not d.remove
    assert "ships zope.interface-6.0-py3.12-nspkg.pth" in d.reason


# --- overrides and bad input ----------------------------------------------------------------


def test_remove_of_a_required_distribution_needs_force() -> None:
    dists = [dist("flask", "werkzeug>=3.1", version="3.1.0", requested=True),
             dist("werkzeug", "markupsafe"), dist("markupsafe")]
    with pytest.raises(UsageError) as info:
        decide_distributions(dists, marker_env=ENV, remove=["Werkzeug"])
    message = str(info.value)
    assert "werkzeug (required by flask 3.1.0 (werkzeug>=3.1); flask kept: root" in message
    assert "--force" in message and "\n" not in message
    decision = decide_distributions(dists, marker_env=ENV, remove=["werkzeug"], force=True)
    assert removed(decision) == {"werkzeug", "markupsafe"}
    assert decision.decision("werkzeug").reason == (  # type: ignore[union-attr]
        "removed: named with --remove-dist (forced although flask 3.1.0 needs it)")


def test_remove_of_an_unneeded_distribution() -> None:
    dists = [dist("app", requested=True), dist("extra", "dep", requested=True), dist("dep")]
    decision = decide_distributions(dists, marker_env=ENV, remove=["extra"])
    assert removed(decision) == {"extra", "dep"}


def test_unknown_and_conflicting_names() -> None:
    dists = [dist("flask", requested=True), dist("werkzeug")]
    with pytest.raises(UsageError, match=r"root 'flsk' is not installed \(did you mean flask\?\)"):
        decide_distributions(dists, marker_env=ENV, roots=["flsk"])
    with pytest.raises(UsageError) as info:
        decide_distributions(dists, marker_env=ENV, keep=["nope"], remove=["werkzeg"])
    assert "--keep-dist 'nope'" in str(info.value) and "werkzeug?" in str(info.value)
    with pytest.raises(UsageError, match="both --keep-dist and --remove-dist"):
        decide_distributions(dists, marker_env=ENV, keep=["werkzeug"], remove=["werkzeug"])


def test_dev_tool_patterns_match_canonical_names() -> None:
    names = ["pytest-cov", "types-requests", "django-stubs", "pytest", "django"]
    assert dev_tool_reasons(names, ["pytest-*", "types_*", "*-stubs"]) == {
        "pytest-cov": "", "types-requests": "", "django-stubs": ""}
    # The first matching pattern gives the reason.
    assert dev_tool_reasons(["pytest-cov"], {"pytest-*": "a plugin", "pytest*": "other"}) == {
        "pytest-cov": "a plugin"}


# --- invariant 6 as a property --------------------------------------------------------------


@st.composite
def environments(draw: st.DrawFn) -> tuple[list[Distribution], list[str] | None, list[str]]:
    n = draw(st.integers(1, 9))
    names = [f"d{i}" for i in range(n)]
    dists = []
    for name in names:
        deps = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        extra_deps = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
        requires = [*deps, *(f"{d}; extra == 'x'" for d in extra_deps),
                    *(f"{d}; python_version < '3'" for d in names[:1])]
        dists.append(dist(name, *requires, extras=["x"] if extra_deps else [],
                          requested=draw(st.booleans()), editable=draw(st.integers(0, 9)) == 0))
    roots = draw(st.one_of(st.none(), st.lists(st.sampled_from(names), max_size=3)))
    dev = draw(st.lists(st.sampled_from(names), max_size=3))
    return dists, roots, dev


@settings(max_examples=200, deadline=None)
@given(environments(), st.lists(st.sampled_from(["d0", "d1", "d2"]), max_size=2))
def test_nothing_kept_requires_something_removed(
    case: tuple[list[Distribution], list[str] | None, list[str]], imported: list[str]
) -> None:
    dists, roots, dev = case
    installed = {d.name for d in dists}
    imports = {d.name: [(m, "f.py") for m in imported if m in installed] for d in dists}
    decision = decide_distributions(dists, marker_env=ENV, roots=roots, dev_tools=dev,
                                    removable=["d1"], imports=imports)
    gone = set(decision.removed)
    graph = decision.graph
    for name in decision.kept:
        assert not {e.target for e in graph.requires[name]} & gone
        assert not {m for m, _ in imports[name]} & gone
    assert {d.name for d in dists if d.editable}.isdisjoint(gone)
    assert set(roots or ()).isdisjoint(gone)
    assert [d.name for d in decision.decisions] == sorted(installed)
    assert all(d.reason for d in decision.decisions)
    # The graph command reads the candidates back from a plan's decisions.
    assert candidates_in(decision.decisions) == decision.candidates
    if roots is None:
        # Without explicit roots, only dev tools, removable ones and what they alone need go.
        seeds = set(dev) | {"d1"}
        assert gone <= graph.reachable(seeds)


# --- roots from files -----------------------------------------------------------------------


def test_roots_from_requirements_txt(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("click>=8  # cli\nitsdangerous\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text('[project]\nname = "My_App"\n')
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment\n"
        "--index-url https://example.org/simple\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "Flask[async]==3.1.0 \\\n    --hash=sha256:abc\n"
        "pywin32; sys_platform == 'win32'\n"
        "-e git+https://example.org/repo.git#egg=Local_Pkg\n"
        "-e ./proj\n"
        "https://example.org/dl/some_dist-1.0-py3-none-any.whl\n"
        "https://example.org/dl/archive.tar.gz#egg=from-url\n"
        "named @ https://example.org/named.tar.gz\n"
        "click\n"
    )
    names = roots_from_requirements(req, [], marker_env=ENV)
    assert names == ("click", "itsdangerous", "flask", "local-pkg", "my-app", "some-dist",
                     "from-url", "named")
    assert "pywin32" in roots_from_requirements(req, [])
    with pytest.raises(UsageError, match="--extra needs a pyproject.toml"):
        roots_from_requirements(req, ["dev"])


def test_unreadable_requirement_line(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("https://example.org/download?id=3\n")
    with pytest.raises(UsageError, match=r"r.txt:1: cannot tell which distribution"):
        roots_from_requirements(req, [])


def test_roots_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "myapp"\n'
        'dependencies = ["Flask>=3", "gunicorn; sys_platform != \'win32\'"]\n'
        '[project.optional-dependencies]\n'
        'Postgres = ["psycopg[binary]"]\ndev = ["pytest"]\nall = ["myapp[postgres]"]\n'
    )
    assert roots_from_requirements(pyproject, [], marker_env=ENV) == ("flask", "gunicorn")
    assert roots_from_requirements(pyproject, ["postgres", "all"]) == (
        "flask", "gunicorn", "psycopg")
    assert project_name(pyproject) == "myapp"
    with pytest.raises(UsageError, match=r"group 'docs' \(available: Postgres, all, dev\)"):
        roots_from_requirements(pyproject, ["docs"])
    (tmp_path / "bad.toml").write_text("[project\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        roots_from_requirements(tmp_path / "bad.toml", [])
    (tmp_path / "tool.toml").write_text("[tool.x]\n")
    with pytest.raises(UsageError, match=r"no \[project\] table"):
        roots_from_requirements(tmp_path / "tool.toml", [])


def test_requirements_include_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\nalpha\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nbeta\n")
    assert roots_from_requirements(tmp_path / "a.txt", []) == ("beta", "alpha")


# --- a real environment ---------------------------------------------------------------------

LEAK = ["flask", "gunicorn", "pytest", "pytest-cov", "mypy", "black", "ipython"]
FLASK_SIDE = {"flask", "werkzeug", "jinja2", "click", "itsdangerous", "markupsafe", "blinker",
              "gunicorn", "packaging"}


def _dev_tools() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    data = tomllib.loads((Path(__file__).parent.parent / "profiles" / "devtools.toml").read_text())
    return [t["name"] for t in data["tool"]]


def test_devtools_data_is_valid() -> None:
    names = _dev_tools()
    assert len(names) == len(set(names))
    assert {"pytest", "pytest-*", "mypy", "black", "ruff", "ipython", "coverage"} <= set(names)
    assert "pluggy" not in names and "mypy-extensions" not in names


def _required_imports(inv: Any) -> dict[str, list[tuple[str, str]]]:
    """distribution -> (module, file) for every import its Python files cannot do without
    (the evidence ``imports`` of decide_distributions, from every file)."""
    from prune.imports import module_name_for, required_modules

    imports: dict[str, list[tuple[str, str]]] = {}
    for fe in inv.files:
        if fe.owner and fe.path.endswith(".py"):
            rel = fe.path.split("site-packages/", 1)[-1]
            named = module_name_for(rel) or ("", False)
            data = (inv.env.root / fe.path).read_bytes()
            for module in required_modules(data, *named):
                imports.setdefault(fe.owner, []).append((module, fe.path))
    return imports


def test_dev_leak_venv(venvs: object, tmp_path: Path) -> None:
    from prune.env import locate
    from prune.scan import scan

    root = venvs.pristine(LEAK)  # type: ignore[attr-defined]
    env = locate(root)
    inv = scan(env)
    imports = _required_imports(inv)
    sizes: dict[str, int] = {}
    for fe in inv.files:
        if fe.owner:
            sizes[fe.owner] = sizes.get(fe.owner, 0) + fe.size
    common: dict[str, Any] = {
        "marker_env": env.marker_environment(), "removable": ["pip", "setuptools", "wheel"],
        "dev_tools": _dev_tools(), "imports": imports, "sizes": sizes,
    }
    decision = decide_distributions(inv.distributions, roots=["flask", "gunicorn"], **common)
    assert set(decision.kept) == FLASK_SIDE
    gone = set(decision.removed)
    assert {"pytest", "pytest-cov", "coverage", "mypy", "black", "ipython", "pip",
            "pluggy", "iniconfig", "mypy-extensions", "jedi", "parso"} <= gone
    assert decision.bytes_removed > sum(sizes[n] for n in FLASK_SIDE)

    # Without roots, aggressive: REQUESTED roots; the dev tools are candidates with sizes,
    # and go although they were installed by name.
    implicit = decide_distributions(inv.distributions, lists_remove_requested=True, **common)
    assert implicit.root_source == "requested"
    assert set(implicit.roots) == {"flask", "gunicorn"}
    assert {"pytest", "mypy", "black", "ipython"} <= set(implicit.candidates)
    assert candidates_in(implicit.decisions) == implicit.candidates
    assert all(implicit.decision(n).bytes > 0 for n in ("pytest", "mypy"))  # type: ignore[union-attr]
    assert set(implicit.kept) == FLASK_SIDE
    # Standard: installed by name, so kept, each with its size and the option that removes it.
    standard = decide_distributions(inv.distributions, **common)
    for name in ("pytest", "pytest-cov", "mypy", "black", "ipython"):
        d = standard.decision(name)
        assert d is not None and not d.remove and d.requested and d.bytes > 0
        assert d.remove_with == f"--remove-dist {name}"
        assert d.reason.startswith("kept: installed by name (REQUESTED), although the "
                                   "development-tools list names it")
    assert {"pluggy", "jedi", "mypy-extensions"} <= set(standard.kept)
    # mypy's install-types extra asks for pip, which is installed: the kept mypy keeps it.
    assert standard.removed == ()
    assert standard.decision("pip").reason.startswith("kept: required by mypy")  # type: ignore[union-attr]

    # The graph command, in process and as the installed console script.
    from click.testing import CliRunner

    from prune.cli.graph import graph_command

    result = CliRunner().invoke(graph_command, [str(root), "--root", "flask", "--root",
                                                "gunicorn", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["roots"] == ["flask", "gunicorn"]
    assert {d["name"] for d in data["distributions"] if not d["remove"]} == FLASK_SIDE
    script = Path(sys.executable).parent / "venv-prune"
    proc = subprocess.run([str(script), "graph", str(root)], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pytest" in proc.stdout and "development-tools list names it" in proc.stdout
    with tempfile.TemporaryDirectory() as tmp:
        bad = subprocess.run([str(script), "graph", str(root), "--root", "flsk"],
                             capture_output=True, text=True, cwd=tmp, timeout=300, check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "did you mean flask" in bad.stderr


def test_fs_real_venv_keeps_setuptools(venvs: object) -> None:
    from prune.env import locate
    from prune.scan import scan

    env = locate(venvs.pristine(["fs", "setuptools<70"]))  # type: ignore[attr-defined]
    inv = scan(env)
    imports = _required_imports(inv)
    assert any(m == "pkg_resources" and f.endswith("fs/__init__.py") for m, f in imports["fs"])
    for roots in (None, ["fs"]):
        for dev in (None, _dev_tools()):
            decision = decide_distributions(
                inv.distributions, marker_env=env.marker_environment(), roots=roots,
                removable=["pip", "setuptools", "wheel"], dev_tools=dev, imports=imports)
            kept = decision.decision("setuptools")
            assert kept is not None and not kept.remove
            assert kept.reason.startswith("kept: required by fs 2.4.16") or (
                "imports pkg_resources" in kept.reason)
    # Without the declared requirement, the import alone keeps it.
    bare = [d if d.name != "fs" else replace(d, requires=()) for d in inv.distributions]
    decision = decide_distributions(bare, marker_env=env.marker_environment(), roots=["fs"],
                                    removable=["setuptools"], imports=imports)
    reason = decision.decision("setuptools").reason  # type: ignore[union-attr]
    assert reason.startswith("kept: fs 2.4.16 imports pkg_resources (lib/python")


# --- the graph command shows the prune's own decisions -------------------------------------


def _venv_prune(*args: str) -> dict[str, Any]:
    """Run the installed console script with ``--format json``; its JSON output."""
    script = Path(sys.executable).parent / "venv-prune"
    proc = subprocess.run([str(script), *args, "--format", "json"], capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _graph_and_prune_decisions(root: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """name -> (remove, reason, chain) as ``venv-prune graph`` shows it and as a dry run
    plans it."""
    shown = _venv_prune("graph", str(root), *args)["distributions"]
    planned = _venv_prune(str(root), "--dry-run", "-q", *args)["distribution_decisions"]
    return ({d["name"]: (d["remove"], d["reason"], d["chain"]) for d in shown},
            {d["name"]: (d["remove"], d["reason"], d["chain"]) for d in planned})


@pytest.mark.parametrize(("args", "removes"), [
    (("--profile", "standard"), set()),  # installed by name; mypy's extra keeps pip
    (("--profile", "aggressive"), {"pytest", "mypy", "black", "ipython", "pip"}),
    (("--root", "flask", "--root", "gunicorn"), {"pytest", "mypy", "black", "ipython", "pip"}),
])
def test_graph_command_decides_as_the_prune_does(venvs: object, args: tuple[str, ...],
                                                 removes: set[str]) -> None:
    """Every distribution's decision, reason and chain in `venv-prune graph` is the dry run's
    (issue 18: the command gathered import evidence its own way)."""
    root = venvs.pristine(LEAK)  # type: ignore[attr-defined]
    shown, planned = _graph_and_prune_decisions(root, *args)
    assert shown == planned
    assert len(shown) > len(LEAK)
    assert removes <= {name for name, (remove, _, _) in shown.items() if remove}


def test_graph_command_keeps_a_distribution_whose_record_is_unreadable(tmp_path: Path) -> None:
    """The prune never removes a distribution whole when its RECORD cannot be read (issue 16);
    the graph command, deciding on its own, showed such a development tool as removed."""
    from synth import SITE as SYNTH_SITE
    from synth import add_dist, make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "app", {"app/__init__.py": "X = 1\n"})
    add_dist(root, "pytest", {"pytest/__init__.py": "Y = 2\n"}, requested=False)
    record = next((root / SYNTH_SITE).glob("pytest-*.dist-info")) / "RECORD"
    record.unlink()
    record.mkdir()  # unreadable even for root (IsADirectoryError)
    shown, planned = _graph_and_prune_decisions(root, "--profile", "standard")
    assert shown == planned
    assert shown["pytest"][0] is False
