"""Binding generators kept for building (issue 15, kind A; a tester's case): pybind11 'kept:
root' lost all 54 of its headers to the c-sources rule, and `g++ $(python -m pybind11
--includes)` then failed. Their headers, sources and CMake files are protected by the knowledge
base (binding-generator-headers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from conftest import run_python

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"

CPP = ('#include <pybind11/pybind11.h>\nint add(int a, int b) { return a + b; }\n'
       'PYBIND11_MODULE(m, mod) { mod.def("add", &add); }\n')


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("profile", ["standard", "aggressive"])
def test_pybind11_still_compiles_an_extension_after_pruning(fresh_venv: Callable[..., Path], tmp_path: Path,
                                                            profile: str) -> None:
    env = fresh_venv(["pybind11==3.0.1"])
    src = tmp_path / "m.cpp"
    src.write_text(CPP)

    def compiles() -> subprocess.CompletedProcess[str]:
        includes = run_python(env, "import pybind11.commands as c, sysconfig; "
                                   "print(c.get_include(), sysconfig.get_paths()['include'])", check=True)
        flags = [f"-I{p}" for p in includes.stdout.split()]
        return subprocess.run(["g++", "-std=c++17", "-fsyntax-only", *flags, str(src)],
                              capture_output=True, text=True, timeout=300)

    first = compiles()
    if first.returncode != 0:
        pytest.skip(f"cannot compile against Python's headers here: {first.stderr[-300:]}")
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--profile", profile, "-q", "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    after = compiles()
    assert after.returncode == 0, after.stderr[-2000:]
    assert json.loads(proc.stdout)["totals"]["bytes_removed"] > 1_000_000  # the prune did prune
