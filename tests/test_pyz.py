"""The single-file zipapp: built by one command, reproducible, runs on a bare Python 3.9+."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def bare_python() -> str | None:
    """A Python 3.9 (the oldest supported) that has none of the tool's dependencies."""
    for candidate in ("/root/.pyenv/versions/3.9.18/bin/python", shutil.which("python3.9")):
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-I", "-c", "import click"], capture_output=True, check=False)
            if probe.returncode != 0:
                return candidate
    return None


@pytest.fixture(scope="module")
def pyz(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "venv-prune.pyz"
    proc = subprocess.run(
        [sys.executable, str(project_root / "tools" / "build_pyz.py"), "-o", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"build_pyz failed:\n{proc.stdout}\n{proc.stderr}")
    return out


def test_contents(pyz: Path) -> None:
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(pyz) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    for required in ("__main__.py", "prune/__init__.py", "prune/strip.py", "prune/pack.py",
                     "prune/libs.py", "prune/profile_data/safe.toml", "prune/profile_data/knowledge.toml",
                     "click/__init__.py", "packaging/markers.py", "pathspec/__init__.py",
                     "importlib_metadata/__init__.py", "zipp/__init__.py",
                     "elftools/elf/elffile.py", "tomli/__init__.py"):
        assert required in names, required
    assert any(n.startswith("venv_prune-") and n.endswith(".dist-info/METADATA") for n in names)
    assert not [n for n in names if n.endswith((".pyc", "/RECORD")) or n.startswith("bin/")]


def test_reproducible(project_root: Path, tmp_path: Path) -> None:
    """Two builds of one snapshot of the sources are byte-identical (a snapshot, because the
    working tree may change between two builds while people edit it)."""
    snapshot = tmp_path / "src"
    shutil.copytree(project_root, snapshot, ignore=shutil.ignore_patterns(
        ".*", "benchmarks", "tests", "docs", "dist", "build", "*.egg-info", "__pycache__"))
    outputs = []
    for name in ("one.pyz", "two.pyz"):
        out = tmp_path / name
        subprocess.run([sys.executable, str(project_root / "tools" / "build_pyz.py"), "-o",
                        str(out), "--source", str(snapshot)],
                       check=True, capture_output=True, timeout=600)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_modules_import_on_bare_python(pyz: Path) -> None:
    """The dependencies and this helper's modules load from the zip on Python 3.9 with nothing
    installed. ``prune/__init__`` and ``prune/cli/__init__`` are bypassed so this checks the
    zip, not the whole CLI."""
    python = bare_python()
    if python is None:
        pytest.skip("no dependency-free Python 3.9 on this machine")
    code = (
        "import sys, types; sys.path.insert(0, sys.argv[1]);"
        "import click, packaging.markers, pathspec, importlib_metadata, zipp, tomli, elftools;"
        "pkg = types.ModuleType('prune'); pkg.__path__ = [sys.argv[1] + '/prune'];"
        "sys.modules['prune'] = pkg;"
        "cli = types.ModuleType('prune.cli'); cli.__path__ = [sys.argv[1] + '/prune/cli'];"
        "sys.modules['prune.cli'] = cli;"
        "import prune.strip, prune.pack, prune.libs, prune.cli.pack, prune.cli.libs;"
        "from importlib_metadata import version; print(version('venv-prune'))"
    )
    proc = subprocess.run([python, "-I", "-c", code, str(pyz)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_help_on_bare_python(pyz: Path) -> None:
    python = bare_python()
    if python is None:
        pytest.skip("no dependency-free Python 3.9 on this machine")
    proc = subprocess.run([python, "-I", str(pyz), "--help"], capture_output=True, text=True, check=False)
    last = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
    assert proc.returncode == 0, f"python3.9 venv-prune.pyz --help failed: {last}"
    assert "Usage" in proc.stdout
