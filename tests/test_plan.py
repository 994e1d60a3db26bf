"""Planning: pure decisions with reasons. Most environments are held in memory (tests/fakes.py)
and planned in milliseconds; a few are synthetic trees on disk, scanned first."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import MemoryEnv
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import SITE, add_dist, make_venv_tree

from prune.env import locate
from prune.errors import UsageError
from prune.plan import PlanOptions, build_plan, explain
from prune.profiles import load_profile
from prune.scan import scan


def plan_for(root: Path | MemoryEnv, profile: str = "standard", **opts: object):
    if isinstance(root, MemoryEnv):
        return root.plan(profile, **opts)
    return build_plan(scan(locate(root)), load_profile(profile), PlanOptions(**opts))  # type: ignore[arg-type]


def removed(plan) -> set[str]:
    return {a.path for a in plan.actions}


@pytest.fixture
def env() -> MemoryEnv:
    return MemoryEnv().add_dist("pkg", {
        "pkg/__init__.py": "from . import core\n",
        "pkg/core.py": "X = 1\n",
        "pkg/__pycache__/core.cpython-311.pyc": b"\0" * 100,
        "pkg/_speed.c": "int x;\n",
        "pkg/tests/__init__.py": "",
        "pkg/tests/test_core.py": "import pkg\n",
        "pkg/tests/__pycache__/test_core.cpython-311.pyc": b"\0" * 10,
        "pkg/locale/fr/LC_MESSAGES/pkg.mo": b"\x95\x04\x12\xde",
        "pkg/locale/fr/LC_MESSAGES/pkg.po": "msgid \"\"\n",
        "pkg/legacy.pyc": b"\0" * 20,
        "pkg/stub.pyi": "X: int\n",
    })


def test_bytecode_sources_tests_go_with_reasons(env: MemoryEnv) -> None:
    plan = plan_for(env, "safe")
    paths = removed(plan)
    assert f"{SITE}/pkg/__pycache__" in paths
    assert f"{SITE}/pkg/_speed.c" in paths
    assert f"{SITE}/pkg/tests" in paths  # collapsed into one directory action
    by_path = {a.path: a for a in plan.actions}
    assert by_path[f"{SITE}/pkg/tests"].kind == "dir"
    assert by_path[f"{SITE}/pkg/tests"].rule == "tests"
    assert by_path[f"{SITE}/pkg/tests"].files == 3
    assert by_path[f"{SITE}/pkg/__pycache__"].rule == "bytecode"
    assert by_path[f"{SITE}/pkg/__pycache__"].pattern == "__pycache__/"
    assert all(a.distribution == "pkg" for a in plan.actions)


def test_protections_beat_rules(env: MemoryEnv) -> None:
    plan = plan_for(env, "aggressive")
    paths = removed(plan)
    assert f"{SITE}/pkg/legacy.pyc" not in paths, "sourceless .pyc is a module"
    assert not any(p.endswith(".mo") for p in paths)
    assert f"{SITE}/pkg/locale/fr/LC_MESSAGES/pkg.po" in paths
    assert not any(".dist-info" in p for p in paths)
    kept = {k.path: k for k in plan.kept}
    assert kept[f"{SITE}/pkg/legacy.pyc"].saved_by == "sourceless-bytecode"


def test_keep_pattern_wins_over_remove(env: MemoryEnv) -> None:
    plan = plan_for(env, "safe", keep=("pkg/tests/",), remove=("pkg/core.py",))
    paths = removed(plan)
    assert not any("/tests" in p for p in paths)
    assert f"{SITE}/pkg/core.py" in paths
    assert {a.rule for a in plan.actions if a.path.endswith("core.py")} == {"cli-remove-1"}


def test_tests_dir_imported_by_kept_code_stays() -> None:
    root = MemoryEnv()
    root.add_dist("lib", {
        "lib/__init__.py": "from lib.tests.helpers import fixture\n",
        "lib/tests/__init__.py": "",
        "lib/tests/helpers.py": "fixture = 1\n",
        "lib/other/test/__init__.py": "",
    })
    plan = plan_for(root, "safe")
    paths = removed(plan)
    assert not any(p.startswith(f"{SITE}/lib/tests") for p in paths)
    assert f"{SITE}/lib/other/test" in paths
    saved = [k for k in plan.kept if k.path.endswith("helpers.py")]
    assert saved and saved[0].saved_by == "imported"


def test_relative_import_of_tests_is_seen() -> None:
    root = MemoryEnv()
    root.add_dist("rel", {"rel/__init__.py": "from . import tests\n", "rel/tests/__init__.py": ""})
    assert not any("tests" in p for p in removed(plan_for(root, "safe")))


def test_directory_of_mixed_rules_is_split() -> None:
    root = MemoryEnv()
    root.add_dist("mix", {"mix/__init__.py": "", "mix/inc/a.h": "", "mix/inc/b.pyi": "", "mix/inc/c.h": ""})
    plan = plan_for(root, "standard")
    paths = removed(plan)
    assert f"{SITE}/mix/inc/a.h" in paths and f"{SITE}/mix/inc/b.pyi" in paths
    assert f"{SITE}/mix/inc" not in paths


def test_minimal_needs_a_trace(env: MemoryEnv) -> None:
    with pytest.raises(UsageError, match="needs a trace"):
        plan_for(env, "minimal")


def test_explain(env: MemoryEnv) -> None:
    plan = plan_for(env, "aggressive")
    assert "rule 'bytecode'" in explain(plan, f"{SITE}/pkg/__pycache__/core.cpython-311.pyc")
    assert "sourceless" in explain(plan, f"{SITE}/pkg/legacy.pyc")
    assert "stays" in explain(plan, f"{SITE}/pkg/core.py")


def test_record_updates_listed_for_touched_distributions(env: MemoryEnv) -> None:
    plan = plan_for(env, "safe")
    records = dict(plan.records)
    assert list(records) == [f"{SITE}/pkg-1.0.dist-info/RECORD"]
    assert f"{SITE}/pkg/tests" in records[f"{SITE}/pkg-1.0.dist-info/RECORD"]


def test_plan_is_deterministic(env: MemoryEnv) -> None:
    assert plan_for(env, "aggressive").actions == plan_for(env, "aggressive").actions


def test_venv_skeleton_never_planned(env: MemoryEnv) -> None:
    plan = plan_for(env, "aggressive", remove=("bin/", "pyvenv.cfg", "*"))
    paths = removed(plan)
    assert "pyvenv.cfg" not in paths and "bin/python" not in paths
    assert not any(".dist-info" in p for p in paths)


def test_removes_sees_inside_a_directory_whose_sibling_sorts_between(tmp_path: Path) -> None:
    # "tool/x.py" sorts after "tool-1.0.dist-info": a nearest-predecessor test on sorted
    # paths answered "stays" for files of a removed distribution, so the strip step picked
    # them up and the report listed them among the largest things that stay.
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "tool", {"tool/__init__.py": "", "tool/x.py": "X = 1\n"}, version="1.0")
    add_dist(root, "toolz", {"toolz/__init__.py": ""})
    plan = plan_for(root, "standard", remove_dists=("tool",))
    targets = removed(plan)
    assert f"{SITE}/tool" in targets and f"{SITE}/tool-1.0.dist-info" in targets
    assert plan.removes(f"{SITE}/tool/x.py")
    assert plan.removes(f"{SITE}/tool-1.0.dist-info/RECORD")
    assert not plan.removes(f"{SITE}/toolz/__init__.py")
    assert not plan.removes(f"{SITE}/tool.py")
    # staying() answers removes() for every file at once
    assert [f.path for f in plan.staying()] == [f.path for f in plan.inventory.files
                                               if not plan.removes(f.path)]

    from prune.report import summarise

    largest = [entry["path"] for entry in summarise(plan)["largest_kept"]]
    assert f"{SITE}/toolz" in largest and f"{SITE}/tool" not in largest, largest


def test_minimal_keeps_programs_a_package_starts_natively(tmp_path: Path) -> None:
    # torch starts torch/bin/torch_shm_manager with exec from C++: no trace sees it.
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "eng", {"eng/__init__.py": "", "eng/bin/helper": b"\x7fELF" + b"\0" * 60,
                           "eng/bin/notes.txt": "x", "eng/_ext.so": b"\x7fELF" + b"\0" * 60})
    for name in ("bin/helper", "_ext.so"):
        (root / SITE / "eng" / name).chmod(0o755)
    plan = plan_for(root, "minimal", has_trace=True,
                    trace_paths=frozenset({f"{SITE}/eng/__init__.py"}))
    assert not plan.removes(f"{SITE}/eng/bin/helper")
    assert {k.path: k.saved_by for k in plan.kept}[f"{SITE}/eng/bin/helper"] == "executable"
    assert plan.removes(f"{SITE}/eng/bin/notes.txt")
    assert plan.removes(f"{SITE}/eng/_ext.so")  # a library with an x bit is not a program


def test_conftest_and_setup_py_do_not_keep_a_development_tool() -> None:
    root = MemoryEnv()
    root.add_dist("app", {"app/__init__.py": "", "app/conftest.py": "import pytest\n",
                           "app/setup.py": "import pytest\n"})
    root.add_dist("pytest", {"pytest/__init__.py": ""}, requested=False)  # leaked, not named
    assert "pytest" in {d.name for d in plan_for(root, "standard").distributions if d.remove}
    other = MemoryEnv()
    other.add_dist("app", {"app/__init__.py": "", "app/core.py": "import pytest\n"})
    other.add_dist("pytest", {"pytest/__init__.py": ""}, requested=False)
    kept = {d.name: d.reason for d in plan_for(other, "standard").distributions if not d.remove}
    assert "app/core.py" in kept["pytest"], kept


@pytest.mark.parametrize("keep", [(), ("tests/",)])
def test_a_test_directory_that_stays_is_evidence_again(keep: tuple[str, ...]) -> None:
    # Found by the state machine in test_properties: app imports app.tests (so the directory
    # stays, by the import check or a --keep), app.tests imports pkg_resources, and nothing
    # declares setuptools. Removing setuptools would break "import app".
    root = MemoryEnv()
    root.add_dist("app", {"app/__init__.py": "import app.tests\n",
                           "app/tests/__init__.py": "import pkg_resources\n",
                           "app/tests/conftest.py": "import pytest\n"},
             requires=('setuptools; python_version < "3"', "pytest"))
    root.add_dist("setuptools", {"setuptools/__init__.py": "", "pkg_resources/__init__.py": ""},
             requested=False)
    root.add_dist("pytest", {"pytest/__init__.py": ""}, requested=False)
    plan = plan_for(root, "safe", keep=keep)
    assert not plan.removes(f"{SITE}/app/tests/__init__.py")
    decisions = {d.name: d for d in plan.distributions}
    assert not decisions["setuptools"].remove, decisions["setuptools"]
    assert "app/tests/__init__.py imports pkg_resources" in decisions["setuptools"].reason


def test_text_report_says_kept_once() -> None:
    from prune.report import render

    root = MemoryEnv()
    root.add_dist("app", {"app/__init__.py": "import lib\n"}, requires=("lib",))
    root.add_dist("lib", {"lib/__init__.py": ""}, requested=False)
    text = render(plan_for(root, "standard"), "text", verbose=True)
    assert "= lib 1.0 kept: required by app" in text, text
    assert "kept: kept" not in text


_PATH_PARTS = ["tests", "test", "docs", "__pycache__", "pkg", "a.py", "a.pyc", "x.c", "x.h", "x.pyi",
               "share", "include", "py.typed", "m.po", "lib.a", "data.json", "certifi", "cacert.pem",
               "x.tar.gz", "tar.gz", ".c", "mpl-data", "a.b", "pkg.pyc", "bin", "test_api", "StoreTest"]
# Patterns of every shape FirstMatch indexes (name/, name, *.ext, anchored, floating under a
# literal directory) and of shapes it asks as regexes (wildcards inside a name, negations).
_PATTERNS = ["tests/", "test", "docs/", "__pycache__/", "*.pyc", "*.c", "*.tar.gz", "*.gz", "py.typed",
             "/certifi/cacert.pem", "/pkg/", "/share", "/pkg/**/*.py", "pkg/tests/", "a.*", "*.py[co]",
             "**/docs/**", "mpl-data/", "tests/*", "!a.py", "!tests/", "x.c", "/tests",
             "**/bin/test_*", "**/bin/*Test", "**/pkg/*.c", "**/pkg/tests/"]


def _first_by_asking(matchers: list, path: str):
    return next((m for m in matchers if m.match(path)), None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PATH_PARTS), min_size=1, max_size=6),
       st.sampled_from(["safe", "standard", "aggressive"]), st.booleans(), st.booleans())
def test_first_match_equals_asking_each_rule_in_turn(parts: list[str], name: str, negated: bool,
                                                     directory: bool) -> None:
    # The indexed lookup must pick the same rule a loop over the rules would, also when a
    # rule with a negation (asked as a whole) is among them.
    from prune._match import FirstMatch, Matcher
    from prune.profiles import make_rule

    rules = list(load_profile(name).rules)
    if negated:
        rules.append(make_rule("neg", "remove", ["*.py", "!a.py"], "negation"))
    matchers = [Matcher(r) for r in reversed(rules)]
    path = "/".join(parts) + ("/" if directory else "")
    assert FirstMatch(matchers).first(path) is _first_by_asking(matchers, path)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PATTERNS), min_size=1, max_size=3), min_size=1, max_size=6),
       st.lists(st.lists(st.sampled_from(_PATH_PARTS), min_size=1, max_size=5), min_size=1, max_size=8),
       st.booleans())
def test_first_match_of_any_patterns_equals_asking_each_rule(
        rules: list[list[str]], paths: list[list[str]], directory: bool) -> None:
    # Random rules of every pattern shape, asked about several paths in a row (one
    # FirstMatch, so its per-directory answers are reused between paths).
    from prune._match import FirstMatch, Matcher
    from prune.profiles import make_rule

    matchers = [Matcher(make_rule(f"r{i}", "remove", pats, "")) for i, pats in enumerate(rules)]
    first = FirstMatch(matchers)
    for parts in paths:
        path = "/".join(parts) + ("/" if directory else "")
        assert first.first(path) is _first_by_asking(matchers, path), (rules, path)


def test_first_match_indexes_the_built_in_profiles_without_regexes() -> None:
    # Every pattern of the built-in profiles and knowledge base has a shape the index
    # answers with dicts (or, anchored, one regex for paths under its first component):
    # none is asked of every path.
    from prune._match import FirstMatch, Matcher, ProtectionMatcher
    from prune.profiles import load_knowledge

    matchers: list[Matcher] = [Matcher(r) for n in ("safe", "standard", "aggressive")
                               for r in load_profile(n).rules]
    matchers += [ProtectionMatcher(p) for p in load_knowledge().protect]
    first = FirstMatch(matchers)
    assert first._general == []
    assert {"tests", "__pycache__"} <= set(first._dir_names)
    assert {".pyc", ".c"} <= set(first._exts)
    assert "certifi" in first._anchored
    assert "bin" in first._under  # **/bin/test_*: asked only of paths under a bin/


@pytest.mark.parametrize("app_imports_black", [False, True])
def test_only_kept_distributions_files_are_parsed_for_import_evidence(
        tmp_path: Path, app_imports_black: bool) -> None:
    # Only a kept distribution's imports keep anything, so the files of development tools
    # that go are never parsed; one that kept code imports is kept, and then what its own
    # files import (mypy) is kept too, round by round.
    from prune.sources import DiskSources

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "app", {"app/__init__.py": "import black\n" if app_imports_black else ""})
    add_dist(root, "black", {"black/__init__.py": "import mypy\nimport pytest\n"}, requested=False)
    add_dist(root, "mypy", {"mypy/__init__.py": ""}, requested=False)
    add_dist(root, "pytest", {"pytest/__init__.py": "import black\n"}, requested=False)

    parsed: list[str] = []

    class Spy(DiskSources):
        def required(self, path: str) -> frozenset[str]:
            parsed.append(path)
            return super().required(path)

    inv = scan(locate(root))
    plan = build_plan(inv, load_profile("standard"), sources=Spy(root, inv))
    gone = {d.name for d in plan.distributions if d.remove}
    if app_imports_black:
        assert gone == set(), plan.distributions
        assert f"{SITE}/black/__init__.py" in parsed
    else:
        assert gone == {"black", "mypy", "pytest"}, plan.distributions
        assert not [p for p in parsed if "/black/" in p or "/pytest/" in p], parsed


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([("",), ("s",), ("lib/s", "lib64/s"), ("a/s",)]),
       st.sets(st.lists(st.sampled_from(["s", "a", "lib", "lib64", "x.pth", "d", "d-1", "d.pth", "d0", "d/",
                                         "é", "-", ".", "0", "~"]), min_size=1, max_size=5)
               .map(lambda parts: "/".join(parts)).filter(lambda p: "//" not in p and not p.endswith("/")),
               max_size=40))
def test_top_level_files_by_bisection_are_those_a_full_pass_finds(sites: tuple[str, ...], paths: set[str]) -> None:
    from prune.model import FileEntry
    from prune.paths import site_relative
    from prune.plan.state import site_top_files

    files = sorted(FileEntry(p, 1) for p in paths)
    naive = []
    for fe in files:
        found = site_relative(fe.path, sites)
        if found is not None and "/" not in found[1]:
            naive.append((found[0], fe.path))
    assert sorted(site_top_files(files, sites)) == sorted(naive)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([("",), ("s",), ("lib/s", "lib64/s"), ("a/s",), ("s", "s/t"), ("s/t", "s")]),
       st.sets(st.lists(st.sampled_from(["s", "t", "a", "lib", "lib64", "x.pth", "d", "d-1", "s0", "s-", "é",
                                         "-", ".", "0", "~"]), min_size=1, max_size=5).map("/".join),
               max_size=40))
def test_splitting_every_path_at_its_site_is_site_relative_for_each(sites: tuple[str, ...], paths: set[str]) -> None:
    from prune.model import FileEntry
    from prune.paths import site_relative
    from prune.plan.state import indexes, split_sites

    files = sorted(FileEntry(p, 1) for p in paths)
    site_of, subs = split_sites(files, sites)
    expected = [site_relative(fe.path, sites) or (None, fe.path) for fe in files]
    assert list(zip(site_of, subs)) == expected
    assert indexes(site_of, None) == [i for i, s in enumerate(site_of) if s is None]


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(["a", "a/b", "a/b/c", "b", "ab", "a/bc", "c/d"]), max_size=4),
       st.lists(st.sampled_from(["", "a", "a/b", "a/b/c", "a/b/c/d", "ab", "ab/c", "a/bc", "b/x", "c", "c/d/e"]),
                max_size=12))
def test_within_any_is_being_or_lying_inside_one_of_the_directories(dirs: set[str], asked: list[str]) -> None:
    from prune.model import within_any

    within = within_any(frozenset(dirs))
    for d in asked:  # asked repeatedly and in any order: the memo must not change an answer
        assert within(d) == any(d == x or d.startswith(x + "/") for x in dirs), (d, dirs)


def test_remove_negation_reincludes_across_the_list() -> None:
    # `--remove '*.md' --remove '!README.md'` removes every .md but README.md (last match
    # wins, as in .gitignore and Serverless slimPatterns); a later positive pattern wins again.
    root = MemoryEnv()
    root.add_dist("lib", {"lib/__init__.py": "", "lib/README.md": "r", "lib/NOTES.md": "n",
                           "lib/CHANGES.md": "c"})
    paths = removed(plan_for(root, "safe", remove=("*.md", "!README.md")))
    assert f"{SITE}/lib/NOTES.md" in paths and f"{SITE}/lib/CHANGES.md" in paths
    assert f"{SITE}/lib/README.md" not in paths
    paths = removed(plan_for(root, "safe", remove=("*.md", "!*.md", "CHANGES.md")))
    assert paths & {f"{SITE}/lib/NOTES.md", f"{SITE}/lib/README.md"} == set()
    assert f"{SITE}/lib/CHANGES.md" in paths


def test_a_lone_remove_negation_is_refused_with_the_keep_that_does_it() -> None:
    root = MemoryEnv()
    root.add_dist("lib", {"lib/__init__.py": "", "lib/tests/__init__.py": ""})
    with pytest.raises(UsageError, match=r"--keep 'lib/tests/'") as info:
        plan_for(root, "safe", remove=("!lib/tests/",))
    assert info.value.exit_code == 2


def test_the_planner_opens_no_file_and_imports_no_process_or_collector_code(
        env: MemoryEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pure function of (inventory, profile, options, reader): given an in-memory reader,
    # planning reads nothing from disk; grep, gc and subprocesses live behind the reader
    # (prune/sources.py) or with the caller (the pipeline pauses the collector).
    import ast
    import builtins
    import io
    import os

    import prune.plan
    from prune.profiles import load_knowledge

    inv, sources, profile, knowledge = env.inventory(), env.sources(), load_profile("aggressive"), load_knowledge()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the planner opened {args[0]!r}")

    for owner, name in ((os, "open"), (builtins, "open"), (io, "open")):
        monkeypatch.setattr(owner, name, refuse)
    plan = build_plan(inv, profile, sources=sources, knowledge=knowledge)
    monkeypatch.undo()
    assert plan.actions and plan.kept
    forbidden = {"subprocess", "gc", "_grep", "_gc", "sources"}
    for path in Path(prune.plan.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        # disk_reader, the default for callers that bring no reader, reads plainly (no grep).
        exempt = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "disk_reader"
                  for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in exempt:
                continue
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level != 1:  # ".sources" is plan's own
                names = {node.module or ""} | {a.name for a in node.names}
            else:
                continue
            assert not names & forbidden, (path.name, names)


@pytest.mark.parametrize("installed", [False, True])
def test_explain_names_a_protection_only_where_its_when_applies(installed: bool) -> None:
    # A protection with `when` (numpy/_core/tests: only with scipy, array-api-compat or
    # pandas) applies only where one is installed: explain names what the planner applied,
    # not every protection whose pattern matches.
    from dataclasses import replace

    from prune.profiles import Protection, compile_patterns, load_knowledge

    prot = Protection("data-when-user", ("/lib/data.json",), "user reads it", "a test", ("user",),
                      spec=compile_patterns(["/lib/data.json"]))
    knowledge = replace(load_knowledge(), protect=(prot,))
    env = MemoryEnv().add_dist("lib", {"lib/__init__.py": "", "lib/data.json": "{}"})
    if installed:
        env.add_dist("user", {"user/__init__.py": "import lib\n"}, requires=("lib",))
    plan = env.plan("standard")
    said = explain(plan, f"{SITE}/lib/data.json", knowledge=knowledge)
    assert ("protected by knowledge:data-when-user" in said) is installed, said
    assert "stays" in said
