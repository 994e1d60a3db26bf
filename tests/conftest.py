"""Shared fixtures: real virtual environments built once per session, copied per test.

Real venvs made with ``python -m venv`` and real wheels from the package index are the ground
truth for venv-prune. Building one costs seconds, so each distinct set of requirements is
installed once per session (pip's download cache is reused across runs) and every test that
mutates an environment works on its own ``cp -a`` copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable, Optional

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False,
        help="also run tests that build large real environments (scientific stack, torch)",
    )
    parser.addoption(
        "--fast", action="store_true", default=False,
        help="the fast tier (about a minute): only tests that build no real environment, run "
             "no real prune in a subprocess and start no Docker build",
    )


# Under CI (CI=true, as .ci/run runs) hypothesis is derandomized: each property test draws the
# same examples every run, seeded from the test's name, so a red run reproduces exactly; a
# failure prints the blob for @reproduce_failure. Elsewhere examples are random (more coverage
# over many runs); HYPOTHESIS_PROFILE=ci gives the CI behaviour locally.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


def pytest_report_header(config: pytest.Config) -> str:
    if settings.default.derandomize:
        return "hypothesis: derandomized (profile ci): each test's examples are seeded from its name"
    return "hypothesis: random examples (HYPOTHESIS_PROFILE=ci or CI=true derandomizes)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs --runslow")


#: Fixtures that build or copy a real environment: a test that uses one is not in the fast tier.
_REAL_ENV_FIXTURES = frozenset({"venvs", "fresh_venv"})
#: Modules whose every test runs real prunes in subprocesses (kill harnesses, signals, overlay
#: mounts, the zipapp build): seconds to minutes each.
_HEAVY_MODULES = frozenset({"test_crash", "test_crash_matrix", "test_output", "test_overlay",
                            "test_post_commit", "test_pyz", "test_txn"})


def _in_fast_tier(item: pytest.Item) -> bool:
    """The fast tier (``--fast``): in-memory and small-tree tests, about a minute in all."""
    if any(mark in item.keywords for mark in ("slow", "docker", "heavy")):
        return False
    if item.path.stem in _HEAVY_MODULES:
        return False
    return not _REAL_ENV_FIXTURES.intersection(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--fast"):
        fast = [item for item in items if _in_fast_tier(item)]
        config.hook.pytest_deselected(items=[item for item in items if not _in_fast_tier(item)])
        items[:] = fast
        return
    if config.getoption("--runslow") or os.environ.get("VENV_PRUNE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="large real environment: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def copy_env(src: Path, dst: Path) -> Path:
    """Copy an environment exactly (symlinks as links, modes, times) with ``cp -a``."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def run_python(env: Path, code: str, *, check: bool = False, write_bytecode: bool = False,
               **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the environment's own interpreter, capturing text output.

    ``-B`` unless ``write_bytecode``: a check must not write bytecode caches into the
    environment under test (where PYTHONDONTWRITEBYTECODE is unset, a second prune then
    found them and planned bytes).
    """
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(env / "bin" / "python"), *([] if write_bytecode else ["-B"]), "-c", code],
        capture_output=True, text=True, check=check, timeout=600, **kw,
    )


class VenvFactory:
    """Builds pristine venvs keyed by (python, requirements), once per session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._built: dict[str, Path] = {}

    def pristine(self, requirements: Iterable[str], *, python: Optional[str] = None,
                 target: bool = False) -> Path:
        reqs = sorted(requirements)
        interpreter = python or sys.executable
        key = hashlib.sha256(repr((interpreter, reqs, target)).encode()).hexdigest()[:12]
        if key in self._built:
            return self._built[key]
        path = self.base / f"{'target' if target else 'venv'}-{key}"
        if target:
            path.mkdir(parents=True)
            if reqs:
                subprocess.run(
                    [interpreter, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "--target", str(path), *reqs],
                    check=True,
                )
        else:
            subprocess.run([interpreter, "-m", "venv", str(path)], check=True)
            if reqs:
                subprocess.run(
                    [str(path / "bin" / "python"), "-m", "pip", "install", "-q",
                     "--disable-pip-version-check", *reqs],
                    check=True,
                )
        self._built[key] = path
        return path

    def fresh(self, requirements: Iterable[str], dest: Path, **kw: object) -> Path:
        """A private copy of the pristine environment at ``dest`` (must not exist)."""
        return copy_env(self.pristine(requirements, **kw), dest)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> VenvFactory:
    return VenvFactory(tmp_path_factory.mktemp("venvs"))


@pytest.fixture
def fresh_venv(venvs: VenvFactory, tmp_path: Path) -> Callable[..., Path]:
    """``fresh_venv(["requests"])`` -> a private copy of a real venv with those packages."""
    counter = [0]

    def make(requirements: Iterable[str] = (), **kw: object) -> Path:
        counter[0] += 1
        return venvs.fresh(requirements, tmp_path / f"env{counter[0]}", **kw)

    return make


def wait_group_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until no live process is left in process group ``pgid`` (Linux ``/proc``).

    ``killpg(SIGKILL)`` plus ``wait()`` reaps the leader only: its children (the rm processes
    that delete a stash, 16 at once) may still be finishing the unlink they were in, so a tree
    read right away can lose an entry under the reader. Zombies do not count.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(os.path.join(entry.path, "stat"), "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                alive.append(entry.name)
        if not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"process group {pgid} still has {alive} after {timeout:g}s")
        time.sleep(0.01)


def tree_digest(root: Path) -> dict[str, tuple[str, int, str]]:
    """Everything about a tree that a prune could change: kind, mode, content or link target."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", st.st_mode, os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", st.st_mode, "")
            else:
                with open(p, "rb") as fh:
                    out[rel] = ("file", st.st_mode, hashlib.sha256(fh.read()).hexdigest())
    return out


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def which(name: str) -> Optional[str]:
    return shutil.which(name)


def is_gnu(tool: str) -> bool:
    """Whether ``tool`` on PATH is the GNU one (``find``, ``grep``): busybox (Alpine builders)
    and BSD versions lack the options venv-prune's fast paths use, and the code falls back to
    Python there, so tests of those fast paths skip instead of failing."""
    path = shutil.which(tool)
    if path is None:
        return False
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"GNU" in out.split(b"\n", 1)[0]
