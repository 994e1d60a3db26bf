"""Blame: a verification failure names the staged removal that caused it (issue 15, kind F).

Pure tests build a plan by hand; the real one prunes Python 3.12 with setuptools removed and
checks that a missing ``distutils`` is blamed on setuptools, not on a ``__pycache__``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from conftest import run_python, tree_digest

from prune.apply import Failure
from prune.blame import blame
from prune.env import Environment
from prune.model import Action, Distribution, FileEntry, Inventory, Plan

SITE = "lib/python3.12/site-packages"
ROOT = Path("/opt/venv")
VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
PY312 = Path("/root/.pyenv/versions/3.12.1/bin/python")


def _dist(name: str, files: list[str]) -> Distribution:
    return Distribution(name=name, display_name=name, version="1", metadata_dir="", site=SITE,
                        files=tuple(f"{SITE}/{f}" for f in files), top_level=(), requires=(),
                        extras=(), entry_points=(), requested=False, editable=False)


def _action(path: str, rule: str, dist: str, kind: str = "file") -> Action:
    return Action(f"{SITE}/{path}", kind, 1, 1, rule, "", "", dist, "")


def _plan(files: dict[str, list[str]], actions: list[Action]) -> Plan:
    env = Environment(root=ROOT, kind="venv", site_packages=(SITE,), python=None,
                      python_version=(3, 12), scripts_dir="bin", walk=("",))
    entries = sorted(FileEntry(f"{SITE}/{f}", 1, False, dist) for dist, fs in files.items() for f in fs)
    inv = Inventory(env=env, distributions=tuple(_dist(d, fs) for d, fs in sorted(files.items())),
                    files=tuple(entries), dirs=())
    return Plan(inventory=inv, profile="standard", actions=tuple(sorted(actions, key=lambda a: a.path)))


SETUPTOOLS = ["setuptools/__init__.py", "setuptools/_distutils/__init__.py",
              "setuptools/_distutils/version.py", "_distutils_hack/__init__.py",
              "distutils-precedence.pth"]
UC = ["undetected_chromedriver/__init__.py", "undetected_chromedriver/__pycache__/x.cpython-312.pyc",
      "undetected_chromedriver/patcher.py"]


def test_a_missing_module_is_blamed_on_what_provided_it_not_on_a_cache() -> None:
    # Case 4: distutils on Python 3.12 comes from setuptools (setuptools/_distutils through
    # _distutils_hack and distutils-precedence.pth); the package's own __pycache__ was also
    # removed, but caches are staged after verification and cannot be the cause.
    plan = _plan({"setuptools": SETUPTOOLS, "undetected-chromedriver": UC}, [
        _action("setuptools", "distribution", "setuptools", "dir"),
        _action("_distutils_hack", "distribution", "setuptools", "dir"),
        _action("distutils-precedence.pth", "distribution", "setuptools"),
        _action("undetected_chromedriver/__pycache__", "bytecode", "undetected-chromedriver", "dir"),
    ])
    failure = Failure("import", "undetected_chromedriver", "undetected-chromedriver",
                      "ModuleNotFoundError: No module named 'distutils'")
    rules = blame(plan, failure)
    assert rules and all(r.startswith("distribution (") for r in rules), rules
    assert f"distribution ({SITE}/setuptools)" in rules
    assert not any("__pycache__" in r for r in rules)


def test_a_missing_submodule_is_blamed_on_the_file_that_defined_it() -> None:
    plan = _plan({"pkg": ["pkg/__init__.py", "pkg/core.py", "pkg/core.pyi", "pkg/py.typed"]}, [
        _action("pkg/core.py", "cli-remove-1", "pkg"),
        _action("pkg/core.pyi", "type-stubs", "pkg"),
        _action("pkg/py.typed", "type-stubs", "pkg"),
    ])
    failure = Failure("import", "pkg", "pkg", "ModuleNotFoundError: No module named 'pkg.core'")
    assert blame(plan, failure) == (f"cli-remove-1 ({SITE}/pkg/core.py)",)


def test_a_missing_file_is_blamed_on_the_removal_of_that_path() -> None:
    # Case 1's symptom: lazy_loader names the stub it could not read.
    files = ["skimage/__init__.py", "skimage/filters/__init__.py", "skimage/filters/__init__.pyi",
             "skimage/filters/edges.pyi", "skimage/data/README.txt"]
    plan = _plan({"scikit-image": files}, [
        _action("skimage/data/README.txt", "docs", "scikit-image"),
        _action("skimage/filters/__init__.pyi", "type-stubs", "scikit-image"),
        _action("skimage/filters/edges.pyi", "type-stubs", "scikit-image"),
    ])
    error = ("ValueError: Cannot load imports from non-existent stub "
             f"'{ROOT}/{SITE}/skimage/filters/__init__.pyi'")
    assert blame(plan, Failure("import", "skimage.filters", "scikit-image", error)) == (
        f"type-stubs ({SITE}/skimage/filters/__init__.pyi)",)
    missing = f"FileNotFoundError: [Errno 2] No such file or directory: '{ROOT}/{SITE}/skimage/data/README.txt'"
    assert blame(plan, Failure("check", "python app.py", "", "exit status 1: " + missing)) == (
        f"docs ({SITE}/skimage/data/README.txt)",)


def test_without_a_match_the_failing_package_then_its_distribution_are_suspects() -> None:
    plan = _plan({"pkg": ["pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/data.bin",
                          "pkg/other/x.txt"]}, [
        _action("pkg/other/x.txt", "docs", "pkg"),
        _action("pkg/sub/data.bin", "cli-remove-1", "pkg"),
    ])
    inside = blame(plan, Failure("import", "pkg.sub", "pkg", "RuntimeError: bad data"))
    assert inside == (f"cli-remove-1 ({SITE}/pkg/sub/data.bin)",)
    anywhere = blame(plan, Failure("entry_point", "console_scripts:pkg", "pkg", "RuntimeError: x"))
    assert set(anywhere) == {f"cli-remove-1 ({SITE}/pkg/sub/data.bin)", f"docs ({SITE}/pkg/other/x.txt)"}


@pytest.mark.skipif(not PY312.exists(), reason="needs Python 3.12")
def test_real_setuptools_removal_on_312_is_blamed_for_distutils(
        fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    # Case 4 with real setuptools on Python 3.12, where it is the only provider of distutils.
    # Removing it is forced here (--remove-dist), so the check must fail, roll back, and name
    # the setuptools removal as the cause.
    from synth import add_dist

    env = fresh_venv(["setuptools"], python=str(PY312))
    add_dist(env, "oldstyle", {"oldstyle/__init__.py": "from distutils.version import LooseVersion\n"
                                                       "V = LooseVersion('1.2')\n"},
             site="lib/python3.12/site-packages")
    before = tree_digest(env)
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--remove-dist", "setuptools", "--force",
                           "--format", "json", "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    (failure,) = [f for f in report["verification"]["failures"] if f["name"] == "oldstyle"]
    assert "distutils" in failure["error"]
    assert failure["rules"] and all(r.startswith("distribution (") for r in failure["rules"]), failure
    assert any("setuptools" in r or "distutils" in r for r in failure["rules"])
    assert "__pycache__" not in " ".join(failure["rules"])
    assert tree_digest(env) == before
    assert run_python(env, "import oldstyle").returncode == 0


def test_a_file_named_without_a_path_is_blamed_on_its_removal() -> None:
    files = ["scipy/__init__.py", "scipy/linalg/__init__.py", "scipy.libs/libgfortran-040039e1.so.5.0.0",
             "scipy/linalg/tests/test_x.py"]
    plan = _plan({"scipy": files}, [
        _action("scipy.libs", "cli-remove-1", "scipy", "dir"),
        _action("scipy/linalg/tests", "tests", "scipy", "dir"),
    ])
    error = ("ImportError: libgfortran-040039e1.so.5.0.0: cannot open shared object file: "
             "No such file or directory")
    assert blame(plan, Failure("import", "scipy.linalg", "scipy", error)) == (f"cli-remove-1 ({SITE}/scipy.libs)",)


@pytest.mark.parametrize("how", ["from", "from partially initialized module"])
def test_cannot_import_name_is_blamed_on_the_submodule_removed_first(how: str) -> None:
    # Twisted's symptom: the kept twisted/test/__init__.py runs "from twisted.test import
    # proto_helpers" and proto_helpers.py was staged. The line names the kept __init__.py
    # (never staged) and other staged __init__.py files share its name: the missing submodule
    # decides, before paths and file names.
    files = {
        "twisted": ["twisted/__init__.py", "twisted/test/__init__.py", "twisted/test/proto_helpers.py",
                    "twisted/test/test_x.py"],
        "constantly": ["constantly/__init__.py", "constantly/test/__init__.py"],
        "hyperlink": ["hyperlink/__init__.py", "hyperlink/test/__init__.py"],
    }
    plan = _plan(files, [
        _action("constantly/test", "tests", "constantly", "dir"),
        _action("hyperlink/test", "tests", "hyperlink", "dir"),
        _action("twisted/test/proto_helpers.py", "tests", "twisted"),
        _action("twisted/test/test_x.py", "tests", "twisted"),
    ])
    error = (f"ImportError: cannot import name 'proto_helpers' {how} 'twisted.test'"
             + (" (most likely due to a circular import)" if "partially" in how else "")
             + f" ({ROOT}/{SITE}/twisted/test/__init__.py)")
    assert blame(plan, Failure("import", "twisted.test", "twisted", error)) == (
        f"tests ({SITE}/twisted/test/proto_helpers.py)",)
    # The same name as a package directory staged whole.
    plan = _plan({"pkg": ["pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/x/__init__.py",
                          "pkg/sub/x/a.py", "pkg/other.py"]}, [
        _action("pkg/other.py", "cli-remove-1", "pkg"),
        _action("pkg/sub/x", "tests", "pkg", "dir"),
    ])
    error = f"ImportError: cannot import name 'x' {how} 'pkg.sub' ({ROOT}/{SITE}/pkg/sub/__init__.py)"
    assert blame(plan, Failure("import", "pkg.sub", "pkg", error)) == (f"tests ({SITE}/pkg/sub/x)",)
