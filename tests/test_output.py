"""``--output DIR`` (issue 16, item 5): DIR appears complete or not at all.

The copy is built, pruned and verified in a partial directory beside DIR and renamed into
place; a failure, a signal or a SIGKILL at any moment leaves nothing at DIR, and the next
run to the same DIR removes what a killed run left and finishes.
"""

from __future__ import annotations

import contextlib
import errno
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

from prune.cli import main

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
KILLS = int(os.environ.get("VENV_PRUNE_POST_KILLS", "15"))
SEED = int(os.environ.get("VENV_PRUNE_CRASH_SEED", time.time_ns() % 2**32))
TOPS = tuple(f"q{d}" for d in range(16))
ARGS = ("--profile", "aggressive", "-q", "--relocate", "/opt/final")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")


def build(root: Path) -> Path:
    make_venv_tree(root)
    for d, top in enumerate(TOPS):
        files: dict[str, str | bytes] = {f"{top}/__init__.py": "from . import m0\n"}
        for m in range(30):
            files[f"{top}/m{m}.py"] = "X = 1\n" * 40
            files[f"{top}/m{m}.pyi"] = "X: int\n"
            files[f"{top}/tests/test_{m}.py"] = "x = 1\n"
        add_dist(root, f"q-{d}", files, scripts=(f"q{d}-cli",))
    return root


def strays(parent: Path, name: str) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith(f".{name}.venv-prune-output-"))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, int, str]], float]:
    base = tmp_path_factory.mktemp("output")
    src = build(base / "src")
    ref = base / "ref" / "out"
    ref.parent.mkdir()
    start = time.monotonic()
    subprocess.run([str(VENV_PRUNE), str(src), "-o", str(ref), *ARGS], check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    # --relocate rewrote the scripts for their final path, in the copy only.
    assert (ref / "bin" / "q0-cli").read_text().startswith("#!/opt/final/bin/python")
    assert (src / "bin" / "q0-cli").read_text().startswith(f"#!{src}/bin/python")
    return src, tree_digest(ref), seconds


def test_a_full_disk_during_the_copy_leaves_nothing_and_a_rerun_works(
        source: tuple[Path, dict[str, tuple[str, int, str]], float], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    src, reference, _ = source
    before = tree_digest(src)
    out = tmp_path / "out"
    copied = [0]
    real_copyfile = shutil.copyfile

    def full_disk(a: str, b: str, **kw: object) -> object:
        copied[0] += 1
        if copied[0] > 50:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), b)
        return real_copyfile(a, b, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    code = main([str(src), "-o", str(out), *ARGS])
    err = capsys.readouterr().err
    assert code == 4, err
    assert len(err.strip().splitlines()) == 1 and "No space left" in err, err
    assert not out.exists() and strays(tmp_path, "out") == []
    monkeypatch.undo()
    assert main([str(src), "-o", str(out), *ARGS]) == 0
    assert tree_digest(out) == reference
    assert tree_digest(src) == before


def test_an_existing_empty_directory_is_replaced(source: tuple[Path, dict[str, tuple[str, int, str]], float],
                                                 tmp_path: Path) -> None:
    src, reference, _ = source
    (tmp_path / "out").mkdir()
    assert main([str(src), "-o", str(tmp_path / "out"), *ARGS]) == 0
    assert tree_digest(tmp_path / "out") == reference


@pytest.mark.parametrize("phase", ["copy", "transaction"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_dir_is_complete_leaves_nothing(
        source: tuple[Path, dict[str, tuple[str, int, str]], float], tmp_path: Path, signum: int,
        phase: str) -> None:
    """README: a signal during an --output run before DIR is complete removes the partial copy
    and creates nothing at DIR; 128+N. ``transaction``: the copy's prune has begun (its state
    directory exists), so the transaction rolls back first."""
    src, _, _ = source
    out = tmp_path / "out"
    proc = subprocess.Popen([str(VENV_PRUNE), str(src), "-o", str(out), *ARGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def reached() -> bool:
        partial = strays(tmp_path, "out")
        return bool(partial) and (phase == "copy" or os.path.lexists(tmp_path / partial[0] / ".venv-prune"))

    while proc.poll() is None and not reached():
        time.sleep(0.0002)
    assert proc.poll() is None, "the run ended before the phase was reached"
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and strays(tmp_path, "out") == []


def test_sigkill_at_random_moments_then_the_same_command(
        source: tuple[Path, dict[str, tuple[str, int, str]], float], tmp_path: Path) -> None:
    src, reference, seconds = source
    before = tree_digest(src)
    rng = random.Random(SEED)
    outcomes = []
    for i in range(KILLS):
        parent = tmp_path / f"run{i:03d}"
        parent.mkdir()
        out = parent / "out"
        delay = (i + rng.random()) * seconds * 1.1 / KILLS
        proc = subprocess.Popen([str(VENV_PRUNE), str(src), "-o", str(out), *ARGS], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
        where = f"seed={SEED} kill at {delay:.3f}s"
        if out.exists():
            assert tree_digest(out) == reference, f"{where}: a partial DIR"
            outcomes.append("complete")
        else:
            if i % 2 and strays(parent, "out"):  # recover first: it removes the partial copy
                rec = subprocess.run([str(VENV_PRUNE), "recover", str(out)], capture_output=True, text=True,
                                     timeout=120)
                assert rec.returncode == 0 and "Traceback" not in rec.stderr, f"{where}: {rec.stderr}"
                assert os.listdir(parent) == [], f"{where}: recover left {os.listdir(parent)}"
            again = subprocess.run([str(VENV_PRUNE), str(src), "-o", str(out), *ARGS], capture_output=True,
                                   text=True, timeout=300)
            assert again.returncode == 0, f"{where}: {again.stderr}"
            assert tree_digest(out) == reference, f"{where}: the re-run's DIR differs"
            outcomes.append("nothing, re-run")
        assert os.listdir(parent) == ["out"], f"{where}: {os.listdir(parent)}"
        imp = subprocess.run([str(out / "bin" / "python"), "-I", "-B", "-c", f"import {', '.join(TOPS)}"],
                             capture_output=True, text=True, timeout=120)
        assert imp.returncode == 0, f"{where}: {imp.stderr[-300:]}"
        shutil.rmtree(parent)
    assert tree_digest(src) == before
    print(sorted(set(outcomes)))


def test_recover_dir_removes_the_partial_copy_of_a_killed_run(
        source: tuple[Path, dict[str, tuple[str, int, str]], float], tmp_path: Path) -> None:
    src, _, _ = source
    out = tmp_path / "out"
    proc = subprocess.Popen([str(VENV_PRUNE), str(src), "-o", str(out), *ARGS], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and not strays(tmp_path, "out"):
        time.sleep(0.0005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert strays(tmp_path, "out") and not out.exists()
    rec = subprocess.run([str(VENV_PRUNE), "recover", str(out)], capture_output=True, text=True, timeout=120)
    assert rec.returncode == 0, rec.stderr
    assert "partial --output copy" in rec.stderr and "Traceback" not in rec.stderr
    assert os.listdir(tmp_path) == []


def test_a_second_run_to_the_same_dir_is_busy_while_the_first_builds(tmp_path: Path) -> None:
    """Two --output runs to one DIR both copied, pruned and verified, and the loser failed to
    publish with a message naming a path it had removed (a tester's case): the second now
    exits 75 at once, naming the live run; a dead run's partial copy is cleaned instead."""
    from synth import add_dist, make_venv_tree

    env = make_venv_tree(tmp_path / "env")
    add_dist(env, "pkg", {"pkg/__init__.py": "", "pkg/tests/test_a.py": ""})
    out = tmp_path / "out"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        partial = tmp_path / f".out.venv-prune-output-{holder.pid}"
        partial.mkdir()
        proc = subprocess.run([str(VENV_PRUNE), str(env), "--output", str(out), "--no-verify", "-q"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 75, (proc.returncode, proc.stderr)
        assert f"pid {holder.pid}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not out.exists() and partial.is_dir()
    finally:
        holder.kill()
        holder.wait()
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--output", str(out), "--no-verify", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not partial.exists() and (out / "pyvenv.cfg").exists()
