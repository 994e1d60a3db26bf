"""Hypothesis properties over generated environments: the invariants of DESIGN.md.

Each example is a venv-shaped tree (tests/synth.py) holding generated distributions: packages
with nested subpackages whose modules import each other (absolute, ``from``, relative, lazy
and ``importlib.import_module`` imports) and sometimes their own ``tests``/``test`` subpackage,
data read with ``importlib.resources`` at import time, ``__pycache__`` bytecode, sourceless
``.pyc`` modules, ``.c``/``.h``/``.pyi``/``.mo`` files, unusual file names (spaces, unicode,
non-UTF-8 bytes), symlinks inside the root and out of it, a ``.pth`` directory, and fake
pip/setuptools/wheel/pytest distributions that generated code may import or require.

Properties (invariant numbers from DESIGN.md):
  (a) a dry run changes nothing (3);          (b) a second plan is empty (4);
  (c) keep patterns win (2);                   (d) nothing outside the root is touched (1);
  (e) every module that imported still imports, statically planned and through the verified
      pipeline (5);                            (f) every RECORD entry that remains exists (8);
  (g) actions never overlap and exist before apply (model.Plan's contract).
A state machine interleaves installs and prunes with different profiles (a multi-stage build).

Temporary trees are made inside each example (STYLE.md habit 15), never with ``tmp_path``.
"""

from __future__ import annotations

import json
import keyword
import marshal
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from typing import Optional

import pytest
from conftest import tree_digest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from synth import SITE, add_dist, make_venv_tree

from prune.apply import apply_plan, state_dir
from prune.env import locate
from prune.errors import VerificationFailed
from prune.model import Plan
from prune.pipeline import PruneRequest, run
from prune.plan import PlanOptions, build_plan
from prune.profiles import compile_patterns, load_profile
from prune.record import read_rows, resolve_entry
from prune.report import render
from prune.scan import scan

PROFILES = ("safe", "standard", "aggressive")
PYTAG = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
LINUX = sys.platform.startswith("linux")

# Known bugs, each shown by an explicit xfail(strict=True) test at the end of this file. While
# one is open the generator steers clear of it, so the properties keep guarding everything
# else; once it is fixed its xfail test passes, strict xfail fails the suite, and the switch
# (and the xfail mark) should go.
# None is open now (the last, sourceless modules' imports, is fixed and its test a regression).

SETTINGS = settings(max_examples=30, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# Generated environments: a pure description first (EnvSpec), written to disk by build().

@dataclass
class DistSpec:
    name: str
    files: dict[str, bytes]
    requires: tuple[str, ...] = ()
    requested: bool = True


@dataclass
class EnvSpec:
    dists: list[DistSpec]
    unowned: dict[str, bytes]               # relative to site-packages; may hold non-UTF-8 names
    links: list[tuple[str, str]]            # (link relative to root, target; "@OUT/x" = outside)
    outside: dict[str, bytes]               # the sibling tree, relative to it
    tops: tuple[str, ...]                   # top-level modules to import-check
    keep_generic: tuple[str, ...] = ()      # --keep patterns: any environment
    keep_candidates: tuple[str, ...] = ()   # --keep patterns naming this environment's files
    notes: list[str] = field(default_factory=list)


IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("tests", "test", "docs", "examples"))
SUBPACKAGE = st.one_of(st.sampled_from(["tests", "test", "docs", "examples", "core", "_impl", "util"]), IDENT)
MODULE = st.one_of(st.sampled_from(["helpers", "conftest", "test_core", "models", "api"]), IDENT)
DATA_NAME = st.sampled_from(["f.txt", "my file.txt", "naïve ☃.json", "日本語.dat", "a b/c d.txt"])
ODD_NAME = st.sampled_from(["sp ace.txt", "ünï.txt", "emoji-🐍.bin", "tab\tname.txt"]
                           + (["bad-\udcff.bin", "\udce9t\udce9.c", "dir-\udcfe/x.txt"] if LINUX else []))
TOOLS = {
    "pip": {"pip/__init__.py": b"VERSION = '1'\n", "pip/_internal/__init__.py": b""},
    "setuptools": {"setuptools/__init__.py": b"", "pkg_resources/__init__.py": b"X = 1\n",
                   "_distutils_hack/__init__.py": b""},
    "wheel": {"wheel/__init__.py": b""},
    "pytest": {"pytest/__init__.py": b"import _pytest\n", "_pytest/__init__.py": b""},
}
TOOL_TOPS = {"pip": ("pip",), "setuptools": ("setuptools", "pkg_resources"), "wheel": ("wheel",),
             "pytest": ("pytest", "_pytest")}


def pyc_bytes(source: str, name: str) -> bytes:
    """A valid timestamp-based .pyc (PEP 552 flags 0) for ``source``: a sourceless module."""
    code = compile(source, name, "exec")
    return MAGIC_NUMBER + b"\0\0\0\0" + b"\0" * 8 + marshal.dumps(code)


def _relative_from(importer_pkg: str, target: str) -> Optional[str]:
    """``from <dots><rest> import <last>`` naming ``target`` from inside ``importer_pkg``."""
    tp, _, last = target.rpartition(".")
    if not tp or tp.split(".")[0] != importer_pkg.split(".")[0]:
        return None
    ip, tparts = importer_pkg.split("."), tp.split(".")
    common = 0
    while common < min(len(ip), len(tparts)) and ip[common] == tparts[common]:
        common += 1
    level = len(ip) - common + 1
    rest = ".".join(tparts[common:])
    return f"from {'.' * level}{rest} import {last}"


@st.composite
def package_tree(draw: st.DrawFn, top: str) -> tuple[list[str], list[str]]:
    """(packages, plain modules) under ``top``: up to two levels of subpackages."""
    pkgs = [top]

    def children(parent: str, depth: int) -> None:
        if depth >= 2 or len(pkgs) > 8:
            return
        for n in draw(st.lists(SUBPACKAGE, max_size=3 if depth == 0 else 2, unique=True)):
            pkgs.append(f"{parent}.{n}")
            children(f"{parent}.{n}", depth + 1)

    children(top, 0)
    mods = [f"{p}.{n}" for p in pkgs for n in draw(st.lists(MODULE, max_size=2, unique=True))
            if f"{p}.{n}" not in pkgs]
    return pkgs, mods


def _in_test_dir(name: str, is_pkg: bool) -> bool:
    """Whether the module's file lies under a ``tests``/``test`` directory (what the
    distribution graph skips when it looks for imports of removable distributions)."""
    parts = name.split(".")[1:] if is_pkg else name.split(".")[1:-1]
    return any(p in ("tests", "test") for p in parts)


def _is_test_module(name: str) -> bool:
    return any(p in ("tests", "test", "docs", "examples") for p in name.split(".")[1:])


@st.composite
def env_specs(draw: st.DrawFn, *, with_tools: bool = True, dist_prefix: str = "zq") -> EnvSpec:
    n_dists = draw(st.integers(1, 3))
    tops_all = draw(st.lists(IDENT, min_size=n_dists, max_size=n_dists + 2, unique=True))
    tops_all = [f"{dist_prefix}_{t}" for t in tops_all]
    groups = [tops_all[i::n_dists] for i in range(n_dists)]
    tools = [t for t in TOOLS if with_tools and draw(st.booleans())]
    # How generated code imports each tool: not at all (the graph may remove it), anywhere,
    # or only from modules under tests/ and test/ directories.
    tool_use = {t: draw(st.sampled_from(["none", "anywhere", "tests-only", "tests-only"])) for t in tools}
    trees = {top: draw(package_tree(top)) for top in tops_all}
    everything = [m for pk, md in trees.values() for m in pk + md]
    sourceless: dict[str, str] = {}
    pulls_tools: set[str] = set()   # test packages that a kept package imports
    notes: list[str] = []

    def source_of(mod: str, is_pkg: bool) -> bytes:
        pkg = mod if is_pkg else mod.rpartition(".")[0]
        lines = [f"# {mod}", "import importlib, importlib.resources"]
        for target in draw(st.lists(st.sampled_from(everything), max_size=3, unique=True)):
            style = draw(st.sampled_from(["abs", "from", "rel", "lazy", "dynamic", "try"]))
            rel = _relative_from(pkg, target)
            if style == "rel" and rel:
                lines.append(rel)
            elif style == "from" and "." in target:
                parent, _, last = target.rpartition(".")
                lines.append(f"from {parent} import {last}")
            elif style == "lazy":
                lines.append(f"def _lazy():\n    import {target}\n")
            elif style == "dynamic":
                lines.append(f"importlib.import_module({target!r})")
            elif style == "try":
                lines.append(f"try:\n    import {target}\nexcept ImportError:\n    pass")
            else:
                lines.append(f"import {target}")
        for tool, use in tool_use.items():
            in_tests = _in_test_dir(mod, is_pkg)
            if use == "none" or (use == "tests-only") != in_tests:
                continue
            if mod in pulls_tools or draw(st.integers(0, 2)) == 0:
                lines.append(f"import {TOOL_TOPS[tool][-1]}")
        lines.append(f"VALUE = {len(mod)}")
        return ("\n".join(lines) + "\n").encode()

    dists: list[DistSpec] = []
    unowned: dict[str, bytes] = {}
    keep_generic: list[str] = ["tests/", "test/", "*.c", "__pycache__/", "*.pyi", "docs/", "/share/",
                               "*.h", "/include/", "py.typed"]
    keep_generic += ["pip/", "*.py", "pkg_resources/", "/_pytest/", "wheel/"]   # keep beats a dist
    keep_candidates: list[str] = []
    for i, tops in enumerate(groups):
        files: dict[str, bytes] = {}
        for top in tops:
            pkgs, mods = trees[top]
            for p in pkgs:
                path = p.replace(".", "/")
                src = source_of(p, True)
                children = {c.rsplit(".", 1)[1] for c in pkgs if c.rpartition(".")[0] == p}
                own_tests = sorted(children & {"tests", "test"})
                # A package that imports its own tests subpackage and reads data from it
                # (issue 3, "What it must show").
                if own_tests and not _is_test_module(p) and draw(st.booleans()):
                    t = own_tests[0]
                    files[f"{path}/{t}/fixture.txt"] = b"fixture"
                    src += (f"from . import {t}\n"
                            f"assert importlib.resources.files({t}).joinpath('fixture.txt')"
                            f".read_bytes() == b'fixture'\n").encode()
                    notes.append(f"{p} imports .{t}")
                    pulls_tools.add(f"{p}.{t}")
                if draw(st.booleans()):
                    data = draw(DATA_NAME)
                    files[f"{path}/assets/{data}"] = data.encode()
                    src += (f"assert importlib.resources.files(__name__).joinpath("
                            f"'assets', {data!r}).read_bytes() == {data.encode()!r}\n").encode()
                files[f"{path}/__init__.py"] = src
                if draw(st.booleans()):
                    files[f"{path}/__pycache__/__init__.{PYTAG}.pyc"] = b"\0" * draw(st.integers(0, 64))
                if draw(st.integers(0, 3)) == 0:
                    files[f"{path}/_speed.c"] = b"int x;\n"
                    files[f"{path}/_speed.h"] = b"#define X 1\n"
                if draw(st.integers(0, 3)) == 0:
                    files[f"{path}/__init__.pyi"] = b"VALUE: int\n"
                    files[f"{path}/py.typed"] = b""
                if draw(st.integers(0, 4)) == 0:
                    files[f"{path}/locale/fr/LC_MESSAGES/{top}.mo"] = b"\xde\x12\x04\x95" + b"\0" * 20
                    files[f"{path}/locale/fr/LC_MESSAGES/{top}.po"] = b'msgid ""\n'
                if draw(st.integers(0, 3)) == 0:
                    name = f"legacy{len(sourceless)}"
                    legacy_src = source_of(f"{p}.{name}", False).decode()
                    if own_tests and draw(st.booleans()) is True:
                        legacy_src += f"from . import {own_tests[0]}\n"
                    files[f"{path}/{name}.pyc"] = pyc_bytes(legacy_src, name)
                    sourceless[f"{p}.{name}"] = p
                    if draw(st.booleans()):
                        files[f"{path}/__init__.py"] += f"from . import {name}\n".encode()
                if draw(st.integers(0, 4)) == 0:
                    unowned[f"{path}/{draw(ODD_NAME)}"] = b"odd"
            for m in mods:
                path = m.replace(".", "/")
                files[f"{path}.py"] = source_of(m, False)
                if draw(st.booleans()):
                    stem = path.rsplit("/", 1)
                    files[f"{stem[0]}/__pycache__/{stem[1]}.{PYTAG}.pyc"] = b"\0" * 16
            keep_candidates += [f"{top}/", f"/{top}/*.py", f"{top}/**/tests/"]
            keep_candidates += [m.replace(".", "/") + ".py" for m in mods[:2]]
        reqs = []
        for tool in tools:
            choice = draw(st.integers(0, 9))
            if choice == 0:
                reqs.append(tool)
            elif choice == 1:
                reqs.append(f'{tool}; python_version < "3"')  # false for the target: no effect
        dists.append(DistSpec(f"{dist_prefix}-dist{i}", files, tuple(reqs), draw(st.booleans()) or i == 0))
    for tool in tools:
        dists.append(DistSpec(tool, dict(TOOLS[tool]), requested=draw(st.booleans())))

    # A .pth naming a directory of modules (editable-style); its contents are protected.
    pth_tops: list[str] = []
    if draw(st.booleans()):
        files = {f"{dist_prefix}_extra.pth": f"{dist_prefix}_srcdir\n".encode(),
                 f"{dist_prefix}_srcdir/{dist_prefix}_pthmod.py": b"import importlib\nX = 1\n",
                 f"{dist_prefix}_srcdir/__pycache__/{dist_prefix}_pthmod.{PYTAG}.pyc": b"\0"}
        dists.append(DistSpec(f"{dist_prefix}-pthdist", files))
        pth_tops.append(f"{dist_prefix}_pthmod")

    # Unowned things in site-packages: odd names, a stray cache, a non-UTF-8 directory.
    for _ in range(draw(st.integers(0, 3))):
        unowned[f"{dist_prefix}_junk/{draw(ODD_NAME)}"] = b"junk"
    if draw(st.booleans()):
        unowned[f"__pycache__/stray.{PYTAG}.pyc"] = b"\0"

    # Links: inside -> inside, inside -> outside (files and directories), dangling, loops.
    outside = {"precious.txt": b"precious", "x.c": b"int y;\n", "dir/__init__.py": b"",
               "dir/tests/test_a.py": b"import pytest\n", "dir/__pycache__/m.pyc": b"\0",
               "dir/docs/index.rst": b"doc", "inc/h.h": b"#define H\n"}
    links: list[tuple[str, str]] = [("lib64", "lib")]
    first = tops_all[0]
    candidates = [
        (f"{SITE}/{first}/alias_init.py", "__init__.py"),
        (f"{SITE}/{first}/out_file.txt", "@OUT/precious.txt"),
        (f"{SITE}/{first}/out.c", "@OUT/x.c"),                    # matches *.c: the link goes
        (f"{SITE}/{first}/out_dir", "@OUT/dir"),
        (f"{SITE}/{first}/out.pyi", "@OUT/precious.txt"),
        (f"{SITE}/{first}/dangling.c", "no-such-file"),
        (f"{SITE}/{first}/loop", "loop"),
        (f"{SITE}/{dist_prefix}_outpkg", "@OUT/dir"),
        ("include/ext", "@OUT/inc"),
        ("share/doc/ext", "@OUT/dir"),
    ]
    if "tests" not in {c.rsplit(".", 1)[1] for c in trees[first][0][1:]}:
        candidates.append((f"{SITE}/{first}/tests", "@OUT/dir"))    # a package's tests -> outside
    for c in candidates:
        if draw(st.booleans()):
            links.append(c)
            if c[0].endswith("/tests") and draw(st.booleans()):
                # The linked-in package is imported by kept code: the link must stay.
                for d in dists:
                    if f"{first}/__init__.py" in d.files:
                        d.files[f"{first}/__init__.py"] += b"from . import tests\n"
    all_tops = tuple(sorted(set(tops_all) | {t for tool in tools for t in TOOL_TOPS[tool]} | set(pth_tops)))
    spec = EnvSpec(dists, unowned, links, outside, all_tops, tuple(keep_generic), tuple(keep_candidates), notes)
    return spec


def install(root: Path, d: DistSpec) -> None:
    files: dict[str, str | bytes] = dict(d.files)
    add_dist(root, d.name, files, requires=d.requires, requested=d.requested)


def build(spec: EnvSpec, base: Path) -> tuple[Path, Path]:
    """Write ``spec`` under ``base``: returns (environment root, sibling outside tree)."""
    root, out = base / "env", base / "outside"
    for rel, data in spec.outside.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    make_venv_tree(root)
    (root / "share" / "man" / "man1").mkdir(parents=True)
    (root / "share" / "man" / "man1" / "tool.1").write_text(".TH tool\n")
    (root / "include" / "site").mkdir(parents=True)
    (root / "include" / "site" / "x.h").write_text("#define X\n")
    for d in spec.dists:
        install(root, d)
    site = root / SITE
    for rel, data in spec.unowned.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(p):
            p.write_bytes(data)
    for rel, target in spec.links:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(p):
            continue
        os.symlink(str(out / target[5:]) if target.startswith("@OUT/") else target, p)
    return root, out


# --------------------------------------------------------------------------------------------
# Oracles.

_IMPORT_CHECK = """
import importlib, importlib.resources, json, os, site, sys
site.addsitedir(sys.argv[1])
ok = []
for name in json.loads(sys.argv[2]):
    # A fresh child per module: one failure must not change what the next one sees.
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] == 0:
        ok.append(name)
print(json.dumps(ok))
"""


def importable(site: Path, names: tuple[str, ...] | list[str]) -> set[str]:
    """The top-level modules that import, checked with the running interpreter under ``-I -S -B``
    (no other site-packages, nothing written into the tree) with ``site`` added as a site
    directory, so .pth files work."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", _IMPORT_CHECK, str(site), json.dumps(list(names))],
                          capture_output=True, timeout=120, cwd=str(site.parent), check=True)
    return set(json.loads(proc.stdout))


def plan_for(root: Path, profile: str, options: PlanOptions = PlanOptions()) -> Plan:
    return build_plan(scan(locate(root)), load_profile(profile), options)


def removed_dists(plan: Plan) -> set[str]:
    return {d.name for d in plan.distributions if d.remove}


def tops_of_removed(plan: Plan) -> set[str]:
    gone = removed_dists(plan)
    out = {t for tool in gone if tool in TOOL_TOPS for t in TOOL_TOPS[tool]}
    for d in plan.inventory.distributions:
        if d.name in gone:
            out |= set(d.top_level)
    return out


def site_sub(path: str) -> str:
    return path[len(SITE) + 1:] if path.startswith(SITE + "/") else path


def covered(path: str, plan: Plan) -> bool:
    return any(path == a.path or path.startswith(a.path + "/") for a in plan.actions)


def check_plan_shape(plan: Plan, root: Path) -> None:
    """(g) sorted, no action inside another, each path present (as a link, never followed)."""
    paths = [a.path for a in plan.actions]
    assert paths == sorted(paths)
    assert len(set(paths)) == len(paths)
    for a in paths:
        for b in paths:
            assert a == b or not b.startswith(a + "/"), f"{b} lies inside {a}"
        assert os.path.lexists(root / a), a
        assert not a.startswith((".venv-prune", "../")) and ".." not in a.split("/")


def check_records(root: Path) -> None:
    """(f) every RECORD row of every remaining distribution names something that exists."""
    site = root / SITE
    for info in site.glob("*.dist-info"):
        for row in read_rows((info / "RECORD").read_text(encoding="utf-8", errors="surrogateescape")):
            rel = resolve_entry(SITE, row[0])
            assert rel is not None
            assert os.path.lexists(root / rel), f"{info.name}/RECORD lists missing {row[0]}"


def leftover_bytecode(root: Path, plan: Plan, keep: tuple[str, ...]) -> list[str]:
    """Bytecode caches still there after a ``bytecode = "drop"`` profile, minus what is
    allowed to stay: keep-pattern matches and directories a .pth names (an editable project's
    tree, invariant 7). Caches inside a tests/ directory kept by the import check still go."""
    keep_spec = compile_patterns(list(keep))
    saved = {k.path for k in plan.kept if k.saved_by.startswith(("pth", "keep"))}
    left = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if "__pycache__" not in rel.split(os.sep) or os.path.islink(os.path.join(dirpath, name)):
                continue
            if rel in saved or (keep and keep_spec.match_file(site_sub(rel))):
                continue
            left.append(rel)
    return left


def no_state(root: Path) -> None:
    assert not state_dir(locate(root)).exists()


# --------------------------------------------------------------------------------------------
# The properties.

@pytest.mark.heavy
@SETTINGS
@given(spec=env_specs(), profile=st.sampled_from(PROFILES))
def test_dry_run_changes_nothing(spec: EnvSpec, profile: str) -> None:
    """(a) scan + plan + every renderer, and the pipeline's dry run, leave both trees alone."""
    with tempfile.TemporaryDirectory() as tmp:
        root, out = build(spec, Path(tmp))
        before, outside = tree_digest(root), tree_digest(out)
        plan = plan_for(root, profile)
        for fmt in ("text", "json", "markdown"):
            render(plan, fmt)
        outcome = run(PruneRequest(path=str(root), profile=profile, dry_run=True))
        assert outcome.result is None
        assert [a.path for a in outcome.plan.actions] == [a.path for a in plan.actions]
        check_plan_shape(plan, root)
        assert tree_digest(root) == before
        assert tree_digest(out) == outside


@pytest.mark.heavy
@SETTINGS
@given(spec=env_specs(), profile=st.sampled_from(PROFILES), data=st.data())
def test_apply_is_idempotent_keeps_what_keep_says_and_stays_inside(
        spec: EnvSpec, profile: str, data: st.DataObject) -> None:
    """(b) a second plan is empty; (c) keep wins; (d) the outside tree and link targets are
    untouched; (f) RECORD lists only what exists; (g) plan shape; no state left behind."""
    keep = tuple(data.draw(st.lists(st.sampled_from(spec.keep_generic), max_size=2, unique=True), label="keep")
                 + data.draw(st.lists(st.sampled_from(spec.keep_candidates), max_size=1), label="keep+"))
    options = PlanOptions(keep=keep)
    with tempfile.TemporaryDirectory() as tmp:
        root, out = build(spec, Path(tmp))
        outside = tree_digest(out)
        plan = plan_for(root, profile, options)
        check_plan_shape(plan, root)
        keep_spec = compile_patterns(list(keep))
        kept = [f.path for f in plan.inventory.files
                if keep and keep_spec.match_file(site_sub(f.path))]
        for path in kept:
            assert not covered(path, plan), f"--keep {keep} matched {path}, but the plan removes it"
        result = apply_plan(plan)
        assert result.committed
        for a in plan.actions:
            assert not os.path.lexists(root / a.path)
        staying = {f.path for f in plan.staying()}
        for f in plan.inventory.files:
            assert os.path.lexists(root / f.path) == (f.path in staying), f.path
        for path in kept:
            assert os.path.lexists(root / path), f"--keep {keep} matched {path}, gone after apply"
        assert tree_digest(out) == outside
        check_records(root)
        no_state(root)
        assert leftover_bytecode(root, plan, keep) == []
        again = plan_for(root, profile, options)
        assert [a.path for a in again.actions] == [], "a second run plans something"


@pytest.mark.heavy
@pytest.mark.parametrize("profile", PROFILES)
@settings(SETTINGS, max_examples=25)
@given(spec=env_specs())
def test_every_module_that_imported_still_imports(profile: str, spec: EnvSpec) -> None:
    """(e) statically planned, no verification: the planner's own import checks (tests dirs
    imported by kept code, pkg_resources/pip imported by kept code, sourceless modules, .pth
    directories) must be enough for generated code that reads data only where no rule looks."""
    with tempfile.TemporaryDirectory() as tmp:
        root, out = build(spec, Path(tmp))
        site = root / SITE
        before = importable(site, spec.tops)
        assume(before)
        plan = plan_for(root, profile)
        apply_plan(plan)
        after = importable(site, spec.tops)
        expected = before - tops_of_removed(plan)
        broken = expected - after
        assert not broken, (f"{sorted(broken)} imported before {profile} and fail after; removed: "
                            f"{[a.path for a in plan.actions]}")


@pytest.mark.heavy
@settings(SETTINGS, max_examples=25)
@given(spec=env_specs(with_tools=False), profile=st.sampled_from(PROFILES),
       extra=st.lists(st.sampled_from(["*.txt", "assets/", "*.json", "*.dat", "core/", "*.py"]),
                      max_size=2, unique=True))
def test_verified_pipeline_commits_working_env_or_restores_it(
        spec: EnvSpec, profile: str, extra: list[str]) -> None:
    """(e) through the real pipeline with verification, also when ``--remove`` patterns take
    data or code that generated modules need: either the run commits and every module that
    imported still imports, or it raises VerificationFailed and the tree is byte-identical."""
    with tempfile.TemporaryDirectory() as tmp:
        root, out = build(spec, Path(tmp))
        site = root / SITE
        before_digest = tree_digest(root)
        before = importable(site, spec.tops)
        request = PruneRequest(path=str(root), profile=profile, options=PlanOptions(remove=tuple(extra)),
                               strip=False, jobs=2, timeout=60)
        try:
            outcome = run(request)
        except VerificationFailed:
            event("verification failed: rolled back")
            assert tree_digest(root) == before_digest
        else:
            event("committed")
            assert outcome.result is not None and outcome.result.committed
            expected = before - tops_of_removed(outcome.plan)
            after = importable(site, spec.tops)
            assert expected <= after, f"{sorted(expected - after)} broke and verification passed"
            check_records(root)
        no_state(root)


# --------------------------------------------------------------------------------------------
# A multi-stage build: installs and prunes interleave, with different profiles and keeps.

class PruneMachine(RuleBasedStateMachine):
    """Each prune must preserve imports (relative to just before it), be idempotent, touch
    nothing outside, and leave RECORDs consistent; a dry run in between changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.base = Path(self._tmp.name)
        self.root: Optional[Path] = None
        self.out: Optional[Path] = None
        self.outside: dict[str, tuple[str, int, str]] = {}
        self.tops: set[str] = set()
        self.installs = 0
        self.removed_tops: set[str] = set()

    @initialize(spec=env_specs(with_tools=True, dist_prefix="za"))
    def create(self, spec: EnvSpec) -> None:
        self.root, self.out = build(spec, self.base)
        self.outside = tree_digest(self.out)
        self.tops = set(spec.tops)

    @precondition(lambda self: self.installs < 2)
    @rule(data=st.data())
    def install_more(self, data: st.DataObject) -> None:
        """pip install another distribution into the (possibly pruned) environment."""
        assert self.root is not None
        self.installs += 1
        prefix = f"zb{self.installs}"
        spec = data.draw(env_specs(with_tools=False, dist_prefix=prefix), label="more")
        for d in spec.dists:
            install(self.root, d)
        site = self.root / SITE
        for rel, content in spec.unowned.items():
            p = site / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(p):
                p.write_bytes(content)
        self.tops |= set(spec.tops)

    @rule(profile=st.sampled_from(PROFILES),
          keep=st.lists(st.sampled_from(["tests/", "*.c", "__pycache__/", "docs/"]), max_size=2, unique=True))
    def prune(self, profile: str, keep: list[str]) -> None:
        assert self.root is not None
        site = self.root / SITE
        names = tuple(sorted(self.tops - self.removed_tops))
        before = importable(site, names)
        options = PlanOptions(keep=tuple(keep))
        plan = plan_for(self.root, profile, options)
        check_plan_shape(plan, self.root)
        apply_plan(plan)
        gone = tops_of_removed(plan)
        self.removed_tops |= gone
        after = importable(site, names)
        assert (before - gone) <= after, f"{sorted(before - gone - after)} broke under {profile}"
        assert plan_for(self.root, profile, options).actions == ()

    @rule(profile=st.sampled_from(PROFILES))
    def dry_run(self, profile: str) -> None:
        assert self.root is not None
        before = tree_digest(self.root)
        render(plan_for(self.root, profile), "json")
        assert tree_digest(self.root) == before

    @invariant()
    def outside_untouched_and_records_consistent(self) -> None:
        if self.root is None or self.out is None:
            return
        assert tree_digest(self.out) == self.outside
        check_records(self.root)
        no_state(self.root)

    def teardown(self) -> None:
        self._tmp.cleanup()


TestPruneMachine = pytest.mark.heavy(PruneMachine.TestCase)
TestPruneMachine.settings = settings(max_examples=12, stateful_step_count=5, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow,
                                                            HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# Minimal reproductions of bugs these properties found (regressions now), and open ones
# (xfail strict; see the note on known bugs at the top).

def _small_env(tmp: Path, files: dict[str, str | bytes], *tools: str) -> Path:
    root = make_venv_tree(tmp / "env")
    add_dist(root, "app", files)
    for tool in tools:
        install(root, DistSpec(tool, dict(TOOLS[tool]), requested=False))
    return root


# Each case: files of "app", the tool distributions installed, the profile. "import app" must
# work before and after the prune.
IMPORT_EVIDENCE_CASES = {
    # The graph skips tests/ when it looks for imports; a tests/ dir kept by the import check
    # must still keep the (dev-tool) distribution it imports.
    "kept-tests-dir-keeps-its-distribution": (
        {"app/__init__.py": "from . import tests\n", "app/tests/__init__.py": "import pytest\n"},
        ("pytest",), "standard"),
    "sourceless-module-keeps-its-tests-dir": (
        {"app/__init__.py": "from . import legacy\n",
         "app/legacy.pyc": pyc_bytes("from . import tests\n", "legacy"), "app/tests/__init__.py": ""},
        (), "safe"),
    # conftest.py is not evidence for the graph (pytest loads it) unless kept code imports it.
    "imported-conftest-keeps-its-distribution": (
        {"app/__init__.py": "import app.docs.conftest\n", "app/docs/__init__.py": "",
         "app/docs/conftest.py": "import pkg_resources\n"},
        ("setuptools",), "safe"),
    "sourceless-module-keeps-its-distribution": (
        {"app/__init__.py": "from . import legacy\n",
         "app/legacy.pyc": pyc_bytes("import pkg_resources\n", "legacy")},
        ("setuptools",), "safe"),
}


@pytest.mark.parametrize("case", sorted(IMPORT_EVIDENCE_CASES))
def test_import_evidence_regressions(case: str) -> None:
    files, tools, profile = IMPORT_EVIDENCE_CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        root = _small_env(Path(tmp), files, *tools)
        assert importable(root / SITE, ["app"]) == {"app"}
        apply_plan(plan_for(root, profile))
        assert importable(root / SITE, ["app"]) == {"app"}


def test_imported_tests_symlink_is_kept() -> None:
    """A tests/ symlink that kept code imports is an import-checked candidate like a directory."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "shared" / "tests").mkdir(parents=True)
        (Path(tmp) / "shared" / "tests" / "__init__.py").write_text("X = 1\n")
        root = _small_env(Path(tmp), {"app/__init__.py": "from . import tests\n"})
        os.symlink(Path(tmp) / "shared" / "tests", root / SITE / "app" / "tests")
        assert importable(root / SITE, ["app"]) == {"app"}
        apply_plan(plan_for(root, "safe"))
        assert importable(root / SITE, ["app"]) == {"app"}


def test_keep_pattern_beats_distribution_removal() -> None:
    """Invariant 2: --keep 'pip/' keeps pip's files even though safe removes unused pip."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _small_env(Path(tmp), {"app/__init__.py": ""}, "pip")
        plan = plan_for(root, "safe", PlanOptions(keep=("pip/",)))
        assert not covered(f"{SITE}/pip/__init__.py", plan), [a.path for a in plan.actions]


def test_bytecode_in_imported_tests_dir_is_dropped() -> None:
    """Saving a tests/ dir for the import check does not save its caches or C sources."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _small_env(Path(tmp), {"app/__init__.py": "from . import tests\n",
                                      "app/tests/__init__.py": "",
                                      f"app/tests/__pycache__/__init__.{PYTAG}.pyc": b"\0" * 16,
                                      "app/tests/_x.c": "int x;\n"})
        apply_plan(plan_for(root, "standard"))
        assert not (root / SITE / "app" / "tests" / "__pycache__").exists()
        assert not (root / SITE / "app" / "tests" / "_x.c").exists()
        assert (root / SITE / "app" / "tests" / "__init__.py").exists()


def test_distribution_kept_by_keep_pattern_or_saved_tests_dir_says_why() -> None:
    """Habit 4: every decision carries its real reason (reports and --explain show it)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _small_env(Path(tmp), {"app/__init__.py": "from . import tests\n",
                                      "app/tests/__init__.py": "import pytest\n"}, "pip", "pytest")
        reasons = {d.name: d.reason for d in plan_for(root, "safe", PlanOptions(keep=("pip/",))).distributions}
        reasons.update({f"{d.name} (standard)": d.reason for d in plan_for(root, "standard").distributions})
        assert not [r for r in reasons.values() if "--keep-dist" in r], reasons
        assert "pip/" in reasons["pip"] and "keep rule" in reasons["pip"], reasons
        assert "app/tests/__init__.py imports pytest" in reasons["pytest (standard)"], reasons


# --------------------------------------------------------------------------------------------
# Evidence never leaves half a package (issue 15, kind A: Twisted's twisted/test/__init__.py
# kept because plugin.py names "__init__.py", its proto_helpers.py removed by the tests rule).

_ANCHOR_FILES = ("__init__.py", "helpers.py", "test_core.py", "sub/__init__.py", "sub/test_sub.py",
                 "_ext.cpython-311-x86_64-linux-gnu.so", "data.json", "server.pem", "sub/fixture.txt")
_GENERIC = ("__init__.py", "__main__.py", "conftest.py", "setup.py", "py.typed", "__pycache__")


@SETTINGS
@given(anchor=st.sampled_from(["tests", "test", "docs", "examples"]),
       present=st.sets(st.sampled_from(_ANCHOR_FILES), min_size=1),
       named=st.lists(st.sampled_from(_ANCHOR_FILES + _GENERIC + tuple(f"sub/{g}" for g in _GENERIC)),
                      max_size=4),
       profile=st.sampled_from(PROFILES))
def test_evidence_never_keeps_half_a_package(anchor: str, present: set[str], named: list[str],
                                             profile: str) -> None:
    """Inside a directory a directory rule matched, the Python modules all stay or all go:
    never a kept ``__init__.py`` whose sibling modules are removed, nor a kept module whose
    package's ``__init__`` went. A literal naming only generic names keeps nothing."""
    files: dict[str, str | bytes] = {
        "hk/__init__.py": "",
        "hk/loader.py": "import os\nHERE = os.path.dirname(__file__)\nNAMES = [" +
                        ", ".join(repr(n) for n in named) + "]\n",
    }
    for f in present:
        files[f"hk/{anchor}/{f}"] = "X = 1\n" if f.endswith(".py") else "data\n"
    with tempfile.TemporaryDirectory() as tmp:
        root = make_venv_tree(Path(tmp) / "v")
        add_dist(root, "hk", files)
        plan = plan_for(root, profile)
        paths = [f"{SITE}/hk/{anchor}/{f}" for f in sorted(present)]
        if not any(covered(p, plan) for p in paths):
            return  # the profile has no rule for this directory
        modules = [p for p in paths if p.endswith((".py", ".so"))]
        gone = {p for p in modules if covered(p, plan)}
        assert not gone or gone == set(modules), (named, sorted(gone), [a.path for a in plan.actions])
        if all(n.rpartition("/")[2] in _GENERIC for n in named):
            assert not [k for k in plan.kept if k.saved_by.startswith("evidence")], plan.kept
