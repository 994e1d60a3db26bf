"""The README's bad-input list (and issue 16's): each is one stderr line, exit 2, no traceback,
nothing changed. Run through the real console script, as a build would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from conftest import tree_digest
from synth import SITE, add_dist, make_venv_tree

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"


def _profile(tmp: Path, body: str) -> str:
    path = tmp / "p.toml"
    path.write_text('extends = "standard"\n[[rule]]\nid = "mine"\n' + body)
    return str(path)


def _nonempty(tmp: Path) -> str:
    (tmp / "full").mkdir()
    (tmp / "full" / "x").write_text("x")
    return str(tmp / "full")


def _link(tmp: Path) -> str:
    (tmp / "empty-target").mkdir()
    (tmp / "out-link").symlink_to(tmp / "empty-target")
    return str(tmp / "out-link")


def _empty_trace(tmp: Path) -> str:
    path = tmp / "trace.json"
    path.write_text(json.dumps({"schema": "venv-prune-trace/1", "root": "/x", "python_version": "",
                                "commands": [{"argv": ["true"], "cwd": str(tmp), "exit_code": 0, "processes": 0}],
                                "modules": {}, "files": [], "dirs": [], "libraries": [], "distributions": []}))
    return str(path)


def _unreadable_record(env: Path) -> None:
    record = next((env / SITE).glob("six-*.dist-info")) / "RECORD"
    record.unlink()
    record.mkdir()  # unreadable even for root (IsADirectoryError), like a RECORD without read permission


# (name, arguments after the environment path (or the whole command), what stderr must say)
CASES: list[tuple[str, Callable[[Path, Path], list[str]], str]] = [
    ("missing path", lambda env, tmp: [str(tmp / "missing")], "no such directory"),
    ("a file", lambda env, tmp: [str((tmp / "f.txt").write_text("x") and tmp / "f.txt")], "is a file"),
    ("filesystem root", lambda env, tmp: ["/"], "filesystem root"),
    ("not an environment", lambda env, tmp: [str((tmp / "e").mkdir() or tmp / "e")], "not a Python environment"),
    ("unknown profile", lambda env, tmp: [str(env), "--profile", "nope"], "unknown profile"),
    ("malformed profile", lambda env, tmp: [str(env), "--profile", str((tmp / "b.toml").write_text("extends = [\n")
                                                                       and tmp / "b.toml")], "not valid TOML"),
    ("bad option", lambda env, tmp: [str(env), "--bogus"], "No such option"),
    ("profile patterns = 5", lambda env, tmp: [str(env), "--profile", _profile(tmp, "patterns = 5\n")], "5"),
    ("profile pattern [z-a]", lambda env, tmp: [str(env), "--profile", _profile(tmp, 'patterns = ["[z-a]"]\n')],
     "'[z-a]'"),
    ("profile pattern a[", lambda env, tmp: [str(env), "--profile", _profile(tmp, 'patterns = ["a["]\n')], "'a['"),
    ("--remove [z-a]", lambda env, tmp: [str(env), "--remove", "[z-a]"], "--remove '[z-a]'"),
    ("--keep a[", lambda env, tmp: [str(env), "--keep", "a["], "--keep 'a['"),
    ("--output at a file", lambda env, tmp: [str(env), "-o", str((tmp / "o.txt").write_text("x") and tmp / "o.txt")],
     "is a file"),
    ("--output at a non-empty dir", lambda env, tmp: [str(env), "-o", _nonempty(tmp)], "not empty"),
    ("--output at a symlink", lambda env, tmp: [str(env), "-o", _link(tmp)], "symbolic link"),
    ("--output inside the source", lambda env, tmp: [str(env), "-o", str(env / "copy")], "inside the source"),
    ("--relocate without --output", lambda env, tmp: [str(env), "--relocate", "/opt/v"], "--relocate needs --output"),
    ("--remove-dist with an unreadable RECORD",
     lambda env, tmp: (_unreadable_record(env), [str(env), "--remove-dist", "six"])[1], "cannot be read"),
    ("bad --max-size", lambda env, tmp: [str(env), "--max-size", "lots"], "not a size"),
    ("--report in a missing directory", lambda env, tmp: [str(env), "--report", str(tmp / "no" / "r.txt")],
     "no directory"),
    ("--report at a directory", lambda env, tmp: [str(env), "--report", str(tmp)], "is a directory"),
    ("--explain outside the environment", lambda env, tmp: [str(env), "--explain", "/etc/passwd"], "not in"),
    ("a --check that fails before pruning", lambda env, tmp: [str(env), "--check", "exit 3"], "exit 3"),
    ("a trace that reached no Python process", lambda env, tmp: [str(env), "--keep-from", _empty_trace(tmp)],
     '"processes": 0'),
    ("a requirements file that names nothing",
     lambda env, tmp: [str(env), "--requirements", str((tmp / "r.txt").write_text("# pinned later\n--no-binary :all:\n")
                                                        and tmp / "r.txt")], "names no distribution"),
]


@pytest.fixture
def env(tmp_path: Path) -> Path:
    root = make_venv_tree(tmp_path / "env")
    add_dist(root, "pkg", {"pkg/__init__.py": "X = 1\n", "pkg/tests/__init__.py": ""}, requires=())
    add_dist(root, "six", {"six.py": "X = 1\n"}, requested=False)
    return root


@pytest.mark.parametrize("name, make, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_changed(env: Path, tmp_path: Path, name: str,
                                                     make: Callable[[Path, Path], list[str]],
                                                     needle: str) -> None:
    args = make(env, tmp_path)
    before = tree_digest(tmp_path)
    proc = subprocess.run([str(VENV_PRUNE), *args, "-q"], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert tree_digest(tmp_path) == before


def test_remove_dist_of_a_real_distribution_whose_record_is_unreadable(fresh_venv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The issue's case on a real venv: pip's six, its RECORD unreadable (a directory, which
    even root cannot read as a file). It used to be read as absent and six.py stayed behind
    while the run said six was removed."""
    env = fresh_venv(["six"])
    site = next(env.glob("lib/python*/site-packages"))
    record = next(site.glob("six-*.dist-info")) / "RECORD"
    record.unlink()
    record.mkdir()
    before = tree_digest(env)
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--remove-dist", "six", "-q"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "RECORD cannot be read" in proc.stderr
    assert tree_digest(env) == before
    # Without --remove-dist the run goes ahead, says why six stays whole, and six still imports.
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--root", "pip", "-v"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "RECORD cannot be read" in proc.stdout + proc.stderr
    assert (site / "six.py").is_file()


def test_graph_with_a_requirements_file_that_names_nothing(env: Path, tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("\n# nothing yet\n")
    proc = subprocess.run([str(VENV_PRUNE), "graph", str(env), "--requirements", str(tmp_path / "r.txt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "names no distribution" in proc.stderr, proc.stderr
