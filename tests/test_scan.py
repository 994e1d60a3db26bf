"""Scanning: tolerant of broken metadata and hostile trees; never follows links."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import is_gnu
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import SITE, add_dist, make_venv_tree

from prune.env import locate
from prune.errors import EnvironmentNotFound, UsageError
from prune.plan import build_plan
from prune.profiles import load_profile
from prune.scan import scan


def codes(inv) -> set[str]:  # type: ignore[no-untyped-def]
    return {d.code for d in inv.diagnostics}


def test_distributions_files_and_owners(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "My_Pkg", {"my_pkg/__init__.py": "", "my_pkg/data.txt": "x"},
             requires=("requests>=2; python_version >= '3.8'",), scripts=("my-cli",))
    (root / SITE / "stray.py").write_text("")
    inv = scan(locate(root))
    (dist,) = inv.distributions
    assert dist.name == "my-pkg" and dist.display_name == "My_Pkg" and dist.requested
    assert dist.requires == ("requests>=2; python_version >= '3.8'",)
    assert f"{SITE}/my_pkg/__init__.py" in dist.files and "bin/my-cli" in dist.files
    assert dist.console_scripts == ("my-cli",)
    owners = {f.path: f.owner for f in inv.files}
    assert owners[f"{SITE}/my_pkg/data.txt"] == "my-pkg"
    assert owners["bin/my-cli"] == "my-pkg"
    assert owners[f"{SITE}/stray.py"] is None


def test_broken_metadata_becomes_diagnostics(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "good", {"good/__init__.py": ""})
    md = add_dist(root, "badrecord", {"badrecord/__init__.py": ""})
    (md / "RECORD").write_text('badrecord/__init__.py,"unterminated\n,,\n\x00garbage\n')
    nometa = add_dist(root, "nometa", {"nometa/__init__.py": ""})
    (nometa / "METADATA").unlink()
    add_dist(root, "dup", {"dup/__init__.py": ""}, version="1.0")
    add_dist(root, "dup", {"dup/__init__.py": ""}, version="2.0")
    inv = scan(locate(root))
    names = {d.name for d in inv.distributions}
    assert {"good", "dup"} <= names and "nometa" not in names
    assert {"missing-metadata", "duplicate-distribution"} <= codes(inv)
    assert inv.distribution("dup").version == "2.0"  # type: ignore[union-attr]
    plan = build_plan(inv, load_profile("aggressive"))
    assert not any(".dist-info" in a.path for a in plan.actions), "metadata of odd dists must stay"


def test_symlink_loops_and_links_out_are_not_followed(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": ""})
    os.symlink("loop", root / SITE / "pkg" / "loop")
    os.symlink("/etc", root / SITE / "pkg" / "tests")
    inv = scan(locate(root))
    links = {f.path for f in inv.files if f.is_link}
    assert {f"{SITE}/pkg/loop", f"{SITE}/pkg/tests"} <= links
    assert not any(f.path.startswith(f"{SITE}/pkg/tests/") for f in inv.files)


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 names need a byte-oriented filesystem")
def test_non_utf8_names_survive_scan_plan_and_report(tmp_path: Path) -> None:
    import json

    from prune.report import render

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": ""})
    weird = os.fsdecode(b"caf\xe9.h")  # Latin-1 bytes, not UTF-8: a surrogate escape in Python
    (root / SITE / "pkg" / weird).write_text("int x;\n")
    inv = scan(locate(root))
    assert f"{SITE}/pkg/{weird}" in {f.path for f in inv.files}
    plan = build_plan(inv, load_profile("safe"))
    assert f"{SITE}/pkg/{weird}" in {a.path for a in plan.actions}  # the header rule takes it
    # Every renderer copes; JSON names the undecodable byte as an escape, text shows the name.
    paths = {a["path"] for a in json.loads(render(plan, "json", verbose=True))["actions"]}
    assert f"{SITE}/pkg/caf\\xe9.h" in paths
    assert "caf" in render(plan, "text", verbose=True)
    render(plan, "markdown", verbose=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_directory_is_a_diagnostic(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    locked = root / SITE / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert "unreadable-dir" in codes(scan(locate(root)))
    finally:
        locked.chmod(0o755)


def test_locate_kinds_and_errors(tmp_path: Path) -> None:
    venv = make_venv_tree(tmp_path / "v")
    assert locate(venv).kind == "venv"
    assert locate(venv / SITE).kind == "site-packages"
    assert locate(sys.base_prefix).kind == "prefix"
    with pytest.raises(EnvironmentNotFound):
        locate(tmp_path / "missing")
    with pytest.raises(UsageError):
        locate("/")
    with pytest.raises(UsageError, match="--python"):
        locate(venv, python=tmp_path / "nope")


def test_lib64_link_is_not_scanned_twice(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    os.symlink("lib", root / "lib64")
    add_dist(root, "pkg", {"pkg/__init__.py": ""})
    env = locate(root)
    assert env.site_packages == (SITE,)
    assert sum(1 for f in scan(env).files if f.path.endswith("pkg/__init__.py")) == 1


def _hostile_tree(tmp_path: Path) -> Path:
    """Links of every kind, an executable, odd names, a FIFO, and venv-prune's own state."""
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": "", "pkg/sub/mod.py": "x = 1\n"})
    pkg = root / SITE / "pkg"
    os.symlink("__init__.py", pkg / "alias.py")
    os.symlink("/etc", pkg / "tests")
    os.symlink("missing", pkg / "dangling")
    os.symlink("loop", pkg / "loop")
    os.symlink("sub", pkg / "subdir-link")
    tool = pkg / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (pkg / "line\nbreak.py").write_text("")
    (pkg / "with space.txt").write_text("spaced")
    if sys.platform == "linux":
        (pkg / os.fsdecode(b"caf\xe9.py")).write_text("")
    os.mkfifo(pkg / "pipe")
    (pkg / "empty").mkdir()
    (root / ".venv-prune" / "stash").mkdir(parents=True)
    (root / ".venv-prune" / "stash" / "old.py").write_text("")
    return root


@pytest.mark.skipif(not is_gnu("find"), reason="needs GNU find (busybox/BSD find: the Python walk runs)")
@pytest.mark.parametrize("area", ["", SITE])
def test_find_walk_lists_what_the_python_walk_lists(tmp_path: Path, area: str) -> None:
    # find runs beside the metadata reading; what it lists must be what scandir and lstat
    # list: the same files (size, link, executable), directories and skipped state.
    from prune.scan import STATE_DIR_NAME, FindWalk, _walk

    root = _hostile_tree(tmp_path)
    skip = frozenset({STATE_DIR_NAME})
    walked = FindWalk(root, (area,), skip).result()
    assert walked is not None, "GNU find is expected on the test machine"
    files, dirs, diags = _walk(root, (area,), skip)
    assert not diags
    assert sorted(walked.found()) == sorted(files)
    assert sorted(walked.dirs) == sorted(dirs)
    found = {f[0]: f for f in walked.found()}
    assert found[f"{SITE}/pkg/tool.sh"][3] and found[f"{SITE}/pkg/dangling"][2]
    assert f"{SITE}/pkg/line\nbreak.py" in found
    assert not any(p.startswith(".venv-prune") for p in found)


def test_a_find_that_fails_or_is_missing_leaves_the_walk_to_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prune.scan import FindWalk

    root = _hostile_tree(tmp_path)
    assert FindWalk(root, ("no-such-area",), frozenset()).result() is None
    with_find = scan(locate(root))
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "find" else real_which(name))
    assert FindWalk(root, ("",), frozenset()).result() is None
    assert scan(locate(root)) == with_find


def test_a_prefix_is_walked_in_site_packages_only_with_its_scripts_from_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A prefix (/usr/local) is not ours outside site-packages: find starts at each
    # site-packages directory, and bin/ holds only the scripts a RECORD names.
    root = make_venv_tree(tmp_path / "prefix")
    (root / "pyvenv.cfg").unlink()
    add_dist(root, "pkg", {"pkg/__init__.py": "", "pkg/tests/test_a.py": ""}, scripts=("pkg-tool",))
    (root / "bin" / "system-tool").write_text("#!/bin/sh\n")
    (root / "share" / "doc").mkdir(parents=True)
    (root / "share" / "doc" / "README").write_text("system docs")
    env = locate(root)
    assert env.kind == "prefix"
    inv = scan(env)
    paths = {f.path: f for f in inv.files}
    assert paths["bin/pkg-tool"].owner == "pkg" and paths["bin/pkg-tool"].executable
    assert f"{SITE}/pkg/tests/test_a.py" in paths
    assert "bin/system-tool" not in paths and not any(p.startswith("share/") for p in paths)
    assert all(d.startswith(SITE + "/") for d in inv.dirs)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "find" else real_which(name))
    assert scan(env) == inv


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["", "lib/python3.11/site-packages"]),
       st.lists(st.text(alphabet="ab./\\:", max_size=8), max_size=12))
def test_resolving_many_record_entries_is_resolving_each(site: str, entries: list[str]) -> None:
    from prune.record import resolve_entries, resolve_entry

    expected = [r for r in (resolve_entry(site, e) for e in entries) if r is not None]
    assert resolve_entries(site, entries) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='ab,"\n\r \t\0', max_size=40))
def test_record_paths_are_the_first_fields_csv_reads(text: str) -> None:
    from prune.record import read_paths, read_rows

    try:
        expected: object = [row[0] for row in read_rows(text)]
    except Exception as exc:  # noqa: BLE001 - the csv module's error must stay an error
        expected = type(exc)
    try:
        got: object = read_paths(text)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected



@pytest.mark.skipif(not is_gnu("find"), reason="needs GNU find (busybox/BSD find: the Python walk runs)")
def test_the_launcher_starts_the_walk_that_scan_then_takes(tmp_path: Path) -> None:
    from prune import _launch

    root = _hostile_tree(tmp_path)
    env = locate(root)
    for not_a_path in (["--help"], ["profiles"], [str(root / "nope")], []):
        assert _launch._prestart(not_a_path) is None
    walk = _launch._prestart([str(root), "--dry-run"])
    assert walk is not None and walk.walks(env)
    inv = scan(env, walk=walk)
    assert walk._proc is None and walk._dir is None, "scan takes the walk it is handed and closes it"
    assert inv == scan(env)
    # A walk of another tree is not taken: its owner closes it (the launcher, after the command).
    walk = _launch._prestart([str(root)])
    assert walk is not None
    proc, out = walk._proc, walk._dir
    assert proc is not None and out is not None and os.path.isdir(out)
    other = locate(make_venv_tree(tmp_path / "other"))
    assert not walk.walks(other)
    scan(other, walk=walk)
    assert walk._proc is proc, "a walk of another tree is left running"
    walk.close()
    assert proc.poll() is not None and not os.path.exists(out)


@pytest.mark.parametrize("make_unreadable", ["directory", "chmod"])
def test_an_unreadable_record_is_a_diagnostic_and_its_distribution_stays_whole(
        tmp_path: Path, make_unreadable: str) -> None:
    """Issue 16: an unreadable RECORD was read as absent, so --remove-dist six left six.py."""
    if make_unreadable == "chmod" and os.geteuid() == 0:
        pytest.skip("root reads everything; the directory case covers root")
    from prune.plan import PlanOptions

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "app", {"app/__init__.py": "X = 1\n"})
    add_dist(root, "six", {"six.py": "X = 1\n"}, requested=False)
    record = next((root / SITE).glob("six-*.dist-info")) / "RECORD"
    if make_unreadable == "directory":
        record.unlink()
        record.mkdir()
    else:
        record.chmod(0)
    inv = scan(locate(root))
    six = inv.distribution("six")
    assert six is not None and six.record_error and not six.has_record
    assert "unreadable-record" in codes(inv)
    # With explicit roots six is unreachable, yet nothing says which files are its own: kept.
    plan = build_plan(inv, load_profile("standard"), PlanOptions(roots=("app",)))
    assert not any(d.remove for d in plan.distributions if d.name == "six")
    assert not any(a.path.endswith("six.py") for a in plan.actions)
    with pytest.raises(UsageError, match="RECORD cannot be read"):
        build_plan(inv, load_profile("standard"), PlanOptions(remove_dists=("six",)))
