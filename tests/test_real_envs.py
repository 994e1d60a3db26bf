"""Ground truth: real venvs from `python -m venv` with real wheels from the package index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import VenvFactory, run_python, tree_digest

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
SSL_CHECK = (
    "import ssl, certifi, requests; ctx = ssl.create_default_context(cafile=certifi.where()); "
    "assert ctx.cert_store_stats()['x509_ca'] > 50; print(requests.__version__)"
)


def prune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PRUNE), *args], capture_output=True, text=True, timeout=900)


def site_of(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def record_entries_exist(site: Path) -> list[str]:
    missing = []
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0].strip('"')
            if path and not os.path.lexists(os.path.normpath(site / path)):
                missing.append(f"{record.parent.name}: {path}")
    return missing


def test_requests_venv_aggressive(fresh_venv) -> None:  # type: ignore[no-untyped-def]
    env = fresh_venv(["requests", "wheel"])
    before = tree_digest(env)
    dry = prune(str(env), "--profile", "aggressive", "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["totals"]["bytes_removed"] > 0
    assert tree_digest(env) == before, "a dry run changed the environment"

    real = prune(str(env), "--profile", "aggressive", "--format", "json")
    assert real.returncode == 0, real.stderr
    data = json.loads(real.stdout)
    assert data["verification"]["status"] == "passed"
    site = site_of(env)
    assert not list(env.rglob("__pycache__"))
    for gone in ("pip", "setuptools", "wheel"):
        assert not (site / gone).exists(), gone
        assert not list(site.glob(f"{gone}-*.dist-info")), gone
    assert not (env / "bin" / "pip").exists() and not (env / "bin" / "wheel").exists()
    proc = run_python(env, SSL_CHECK)
    assert proc.returncode == 0, proc.stderr
    quiet = run_python(env, "pass")
    assert quiet.stderr == ""
    assert record_entries_exist(site) == []

    again = prune(str(env), "--profile", "aggressive", "--dry-run", "--format", "json")
    assert json.loads(again.stdout)["totals"]["bytes_removed"] == 0


def test_requests_target_dir(venvs: VenvFactory, tmp_path: Path) -> None:
    src = venvs.pristine(["requests"], target=True)
    target = tmp_path / "wheelhouse"
    subprocess.run(["cp", "-a", str(src), str(target)], check=True)
    code = prune(str(target), "--profile", "aggressive", "--python", sys.executable, "--format", "json")
    assert code.returncode == 0, code.stderr
    assert json.loads(code.stdout)["verification"]["status"] == "passed"
    assert not list(target.rglob("__pycache__"))
    proc = subprocess.run([sys.executable, "-c", SSL_CHECK], env={**os.environ, "PYTHONPATH": str(target)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob(".venv-prune*")), "state directory left behind"


def test_target_dir_without_python_warns_and_skips_verification(venvs: VenvFactory, tmp_path: Path) -> None:
    src = venvs.pristine(["requests"], target=True)
    target = tmp_path / "t"
    subprocess.run(["cp", "-a", str(src), str(target)], check=True)
    res = prune(str(target), "--profile", "safe", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert "verification" in res.stderr and "--python" in res.stderr
    assert json.loads(res.stdout)["verification"]["status"].startswith("skipped")


@pytest.mark.heavy  # scans the machine's whole Python prefix
def test_prefix_dry_run_stays_in_site_packages_and_bin() -> None:
    prefix = Path(sys.base_prefix)
    res = prune(str(prefix), "--profile", "aggressive", "--dry-run", "--format", "json", "-q")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    sites = data["target"]["site_packages"]
    for action in data["actions"]:
        p = action["path"]
        assert p.startswith("bin/") or any(p.startswith(s + "/") for s in sites), p


def test_numpy_aggressive_still_computes(fresh_venv) -> None:  # type: ignore[no-untyped-def]
    env = fresh_venv(["numpy"])
    res = prune(str(env), "--profile", "aggressive", "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["verification"]["status"] == "passed"
    proc = run_python(env, "import numpy as np; a = np.array([[2.0, 1.0], [1.0, 3.0]]); "
                           "print(float((np.linalg.inv(a) @ a).trace()))")
    assert proc.returncode == 0 and proc.stdout.strip() == "2.0", proc.stderr
    libs = list(site_of(env).glob("numpy.libs/*"))
    assert libs, "numpy's vendored libraries must stay"


def test_forced_breakage_is_rolled_back(fresh_venv) -> None:  # type: ignore[no-untyped-def]
    env = fresh_venv([])
    site = site_of(env)
    (site / "pkg").mkdir()
    (site / "pkg" / "__init__.py").write_text("from . import core\n")
    (site / "pkg" / "core.py").write_text("VALUE = 1\n")
    before = tree_digest(env)
    res = prune(str(env), "--remove", "pkg/core.py")
    assert res.returncode == 1, res.stderr
    assert "pkg" in res.stderr and "cli-remove-1" in res.stderr
    assert tree_digest(env) == before


def test_tests_package_imported_by_init_and_resources_survive(fresh_venv) -> None:  # type: ignore[no-untyped-def]
    env = fresh_venv([])
    site = site_of(env)
    pkg = site / "selftest"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "data").mkdir()
    (pkg / "__init__.py").write_text(
        "from .tests import helpers\n"
        "from importlib import resources\n"
        "TEXT = resources.files(__name__).joinpath('data/greeting.txt').read_text()\n"
    )
    (pkg / "tests" / "__init__.py").write_text("")
    (pkg / "tests" / "helpers.py").write_text("VALUE = 42\n")
    (pkg / "data" / "greeting.txt").write_text("bonjour")
    res = prune(str(env), "--profile", "aggressive")
    assert res.returncode == 0, res.stderr
    proc = run_python(env, "import selftest; print(selftest.TEXT, selftest.helpers.VALUE)")
    assert proc.stdout.strip() == "bonjour 42", proc.stderr
