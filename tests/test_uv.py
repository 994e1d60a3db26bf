"""uv-made environments (issue 17, item 7): uv installs no pip, compiles no bytecode and marks
every distribution it installs REQUESTED. The report must explain its decisions truly and
say why so little goes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

BIN = Path(sys.executable).parent
VENV_PRUNE = BIN / "venv-prune"
UV = shutil.which("uv", path=str(BIN)) or shutil.which("uv")

pytestmark = pytest.mark.skipif(UV is None, reason="needs uv (pip install '.[test]' installs it)")


@pytest.fixture(scope="module")
def uv_web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fastapi + uvicorn + httpx in a venv made by ``uv venv`` + ``uv pip install``."""
    root = tmp_path_factory.mktemp("uv") / "web"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(root)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(root / "bin" / "python"),
                    "fastapi", "uvicorn", "httpx"], check=True)
    return root


def dry_run(env: Path, *args: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--dry-run", *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return (json.loads(proc.stdout) if "json" in args else {}), proc.stdout


def test_report_says_why_so_little_goes_from_a_uv_venv(uv_web: Path) -> None:
    report, _ = dry_run(uv_web, "--profile", "aggressive", "--format", "json")
    assert report["totals"]["percent_removed"] < 10
    lean = report["already_lean"]
    assert lean["installer"] == "uv"
    assert {"pip", "setuptools", "wheel", "bytecode caches (__pycache__)"} <= set(lean["absent"])
    _, text = dry_run(uv_web, "--profile", "aggressive")
    assert "Why so little goes: the environment is already lean (installed by uv" in text
    assert "compiles no bytecode unless asked (--compile-bytecode)" in text


def test_a_pip_venv_is_not_called_lean(fresh_venv: Callable[..., Path]) -> None:
    report, _ = dry_run(fresh_venv(["requests"]), "--format", "json")
    assert report["already_lean"] is None


def test_transitive_distributions_are_explained_by_what_requires_them(uv_web: Path) -> None:
    # uv marked h11 REQUESTED like everything it installed; the user asked for fastapi,
    # uvicorn and httpx. h11 stays because uvicorn and httpcore require it, and says so.
    report, _ = dry_run(uv_web, "--profile", "aggressive", "--format", "json")
    reasons = {d["name"]: d["reason"] for d in report["distribution_decisions"]}
    for name in ("fastapi", "uvicorn", "httpx"):
        assert reasons[name] == "kept: root (REQUESTED: installed by name)", reasons[name]
    for name in ("h11", "httpcore", "pydantic", "starlette", "anyio"):
        assert reasons[name].startswith("kept: required by "), (name, reasons[name])
    assert any(reasons["h11"].startswith(f"kept: required by {who} ") for who in ("uvicorn", "httpcore"))
    assert not any(d["remove"] for d in report["distribution_decisions"])
