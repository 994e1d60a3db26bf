"""After the commit (issue 16, item 4) and around it (item 5): ``--bytecode compile`` and the
``--output`` copy under SIGINT, SIGTERM and SIGKILL at random moments.

compile: SIGINT/SIGTERM exit 130/143 saying the prune is complete and that no caches were
written, with compileall and its workers gone; a SIGKILL followed by ``recover`` (or by the same
command again) leaves no caches or all of them, never a mix, and no state or process.
--output: a SIGKILL at any moment, followed by the same command again, ends in the complete
pruned copy at DIR and nothing beside it; SIGINT/SIGTERM leave nothing at DIR.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree_digest
from synth import add_dist, make_venv_tree

from prune import _tmp

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
SCRATCH = ".venv-prune-bytecode"
KILLS = int(os.environ.get("VENV_PRUNE_POST_KILLS", "15"))
SEED = int(os.environ.get("VENV_PRUNE_CRASH_SEED", time.time_ns() % 2**32))
TOPS = tuple(f"p{d}" for d in range(16))
COMPILE = ("--bytecode", "compile", "--no-verify", "-q")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, /proc")


def build(root: Path) -> Path:
    make_venv_tree(root)
    body = "".join(f"def f{i}(x):\n    return [x * {i} for _ in range(3)]\n" for i in range(60))
    for d, top in enumerate(TOPS):
        files: dict[str, str | bytes] = {f"{top}/__init__.py": "from . import m0\n",
                                         f"{top}/tests/test_a.py": "x = 1\n"}
        for m in range(60):
            files[f"{top}/m{m}.py"] = body
        add_dist(root, f"p-{d}", files)
    return root


class Template:
    """A pruned environment without caches, and what a full compile of it writes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = build(base / "template" / "env")
        subprocess.run([str(VENV_PRUNE), str(self.root), "--no-verify", "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        self.pruned = tree_digest(self.root)
        self.n = 0
        env = self.copy()
        start = time.monotonic()
        proc = subprocess.Popen([str(VENV_PRUNE), str(env), *COMPILE], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        opened = closed = None
        while proc.poll() is None:
            now = time.monotonic()
            exists = os.path.lexists(env / SCRATCH)
            if exists and opened is None:
                opened = now
            if opened is not None and not exists and closed is None:
                closed = now
            time.sleep(0.001)
        assert proc.returncode == 0, proc.stderr
        assert opened is not None, "never saw the compile's scratch directory"
        self.window = (closed or time.monotonic()) - opened
        self.seconds = time.monotonic() - start
        self.caches = pycs(env)
        assert len(self.caches) > 900

    def copy(self) -> Path:
        self.n += 1
        parent = self.base / f"run{self.n:03d}"
        parent.mkdir()
        subprocess.run(["cp", "-al", str(self.root), str(parent / "env")], check=True)
        return parent / "env"


def pycs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.pyc")}


def marked_processes(root: Path) -> list[int]:
    """Processes that still carry this environment's compile mark (compileall, workers)."""
    mark = f"VENV_PRUNE_COMPILE={root / SCRATCH}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if mark in Path(f"/proc/{name}/environ").read_bytes() + b"\0":
                    found.append(int(name))
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return Template(tmp_path_factory.mktemp("postcommit"))


def start_compile(env: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(VENV_PRUNE), str(env), *COMPILE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (env / SCRATCH / "journal.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    return proc


def check_settled(env: Path, template: Template, where: str) -> str:
    assert not os.path.lexists(env / SCRATCH), f"{where}: scratch left"
    assert not os.path.lexists(env / ".venv-prune"), f"{where}: state left"
    assert marked_processes(env) == [], f"{where}: compileall still running"
    found = pycs(env)
    assert found in (set(), template.caches), (
        f"{where}: a mix of caches: {len(found)} of {len(template.caches)}")
    imp = subprocess.run([str(env / "bin" / "python"), "-I", "-B", "-c", f"import {', '.join(TOPS)}"],
                         capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, f"{where}: {imp.stderr[-300:]}"
    return "compiled" if found else "no caches"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_compile_says_the_prune_is_complete(template: Template, signum: int) -> None:
    env = template.copy()
    proc = start_compile(env)
    time.sleep(template.window * 0.3)
    os.kill(proc.pid, signum)  # the process alone, as `docker stop` signals PID 1
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "prune is complete" in err and "interrupted, every change" not in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "removed" in out  # the report of the committed prune is printed
    time.sleep(0.2)
    check_settled(env, template, f"signal {signum}")
    assert tree_digest(env) == template.pruned or pycs(env) == template.caches


def test_sigkill_during_compile_then_recover_or_rerun(template: Template) -> None:
    rng = random.Random(SEED)
    outcomes: list[str] = []
    for i in range(KILLS):
        env = template.copy()
        proc = start_compile(env)
        delay = (i + rng.random()) * template.window * 1.1 / KILLS
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # compileall runs in a group of its own: it survives
        proc.wait(timeout=120)
        follow = "recover" if i % 2 == 0 else "again"
        where = f"seed={SEED} kill {delay:.3f}s into the compile, then {follow}"
        args = ["recover", str(env)] if follow == "recover" else [str(env), *COMPILE]
        after = subprocess.run([str(VENV_PRUNE), *args], capture_output=True, text=True, timeout=300)
        assert after.returncode == 0, f"{where}: {after.stderr}"
        state = check_settled(env, template, where)
        if follow == "again":
            assert state == "compiled", where
        outcomes.append(f"{follow}->{state}")
        shutil.rmtree(env.parent)
    print(sorted(set(outcomes)))


def test_stale_temporary_directories_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"venv-prune-verify-{dead.pid}-abc"
    live = tmp_path / f"venv-prune-find-{os.getppid()}-abc"
    other = tmp_path / "venv-prune-verify-xyz"  # an older release's, without a PID
    for d in (stale, live, other):
        d.mkdir()
        (d / "f").write_text("x")
    assert _tmp.clean_stale(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()


def test_next_run_cleans_what_a_killed_run_left_in_tmp(template: Template, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = template.copy()
    proc = subprocess.Popen([str(VENV_PRUNE), str(env), *COMPILE], env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and not any(p.name.startswith("venv-prune-bytecode-") for p in tmp.iterdir()):
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = [p.name for p in tmp.iterdir()]
    assert left, "the kill left nothing to clean"
    subprocess.run([str(VENV_PRUNE), str(env), *COMPILE], env={**os.environ, "TMPDIR": str(tmp)},
                   check=True, capture_output=True, timeout=300)
    assert [p.name for p in tmp.iterdir()] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_commit_says_the_prune_is_complete(tmp_path: Path, signum: int) -> None:
    """After the commit nothing can be rolled back: the line must not say "interrupted" as if
    it had been (issue 16). The run is held after its commit by a --report FIFO nobody reads."""
    env = build(tmp_path / "env")
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([str(VENV_PRUNE), str(env), "--no-verify", "-q", "--report", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # stdout is written first, then the FIFO is opened
    assert "profile" in first, first
    time.sleep(0.2)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert "prune is complete" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not os.path.lexists(env / ".venv-prune")
