"""``--bytecode compile``: the target interpreter writes unchecked-hash caches, reproducibly."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import VenvFactory, copy_env, run_python, tree_digest
from synth import SITE, add_dist

from prune.bytecode import INVALIDATION_MODE, compile_environment
from prune.env import locate
from prune.errors import UsageError

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
PY38 = "/root/.pyenv/versions/3.8.18/bin/python"

# A module whose constants include a frozenset: marshal writes its items in hash order
# (bpo-37596), the case that PYTHONHASHSEED=0 makes reproducible.
MINI = {
    "mini/__init__.py": "from .core import classify\nVALUE = 1\n",
    "mini/core.py": (
        "def classify(word):\n"
        "    if word in {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'}:\n"
        "        return 'greek'\n"
        "    return 'other'\n"
    ),
    "mini/sub/__init__.py": "",
    "mini/sub/deep.py": "X = [i * i for i in range(10)]\n",
    "minimod.py": "import mini\n",
}


def pyc_files(root: Path) -> dict[str, bytes]:
    """Every .pyc under root (relative path -> content)."""
    return {
        os.path.relpath(os.path.join(d, f), root): Path(d, f).read_bytes()
        for d, _, fs in os.walk(root) for f in fs if f.endswith(".pyc")
    }


def pyc_flags(data: bytes) -> int:
    """PEP 552: the second 32-bit word of the header; bit 0 hash-based, bit 1 check_source."""
    return int(struct.unpack("<I", data[4:8])[0])


def drop_caches(root: Path) -> None:
    for d in sorted(root.rglob("__pycache__"), reverse=True):
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def mini_env(venvs: VenvFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine real venv (pip, setuptools) plus ``mini``, with no bytecode at all."""
    env = venvs.fresh([], tmp_path_factory.mktemp("bytecode") / "pristine")
    add_dist(env, "mini", dict(MINI))
    drop_caches(env)
    return env


def test_compile_writes_unchecked_hash_caches(mini_env: Path, tmp_path: Path) -> None:
    env = copy_env(mini_env, tmp_path / "env")
    site = env / SITE
    summary = compile_environment(locate(env))

    assert list(summary)[:6] == ["files", "bytes_added", "optimize", "invalidation_mode",
                                 "startup_seconds_before", "startup_seconds_after"]
    assert summary["invalidation_mode"] == INVALIDATION_MODE == "unchecked-hash"
    assert summary["optimize"] == 0 and summary["failed"] == []
    pycs = pyc_files(site)
    assert summary["files"] == len(pycs) > 100  # pip and setuptools too
    assert summary["bytes_added"] == sum(len(b) for b in pycs.values())
    assert not pyc_files(env / "bin")
    for name in ("mini/__pycache__/__init__", "mini/__pycache__/core", "mini/sub/__pycache__/deep",
                 "__pycache__/minimod"):
        data = pycs[f"{name}.{sys.implementation.cache_tag}.pyc"]
        assert data[:4] == importlib.util.MAGIC_NUMBER
    assert {pyc_flags(b) for b in pycs.values()} == {0b01}

    assert summary["startup_modules"] and len(summary["startup_modules"]) <= 5
    before, after = summary["startup_seconds_before"], summary["startup_seconds_after"]
    assert isinstance(before, float) and isinstance(after, float) and before > 0 and after > 0
    assert re.fullmatch(r"compiled \d+ files \(\+[\d.]+ (KiB|MiB)\), start-up [\d.]+s -> [\d.]+s",
                        summary["summary"]), summary["summary"]
    json.dumps(summary)  # the report embeds it as it is

    # Unchecked: the interpreter uses the cache without looking at the source again.
    (site / "mini" / "__init__.py").write_text("from .core import classify\nVALUE = 2\n")
    proc = run_python(env, "import mini; print(mini.VALUE, mini.classify('beta'))")
    assert proc.stdout.split() == ["1", "greek"], proc.stderr


def test_two_compiles_of_one_tree_are_byte_identical(mini_env: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Same sources at the same path give the same bytes, whatever the source mtimes and the
    caller's hash seed (the path is embedded in co_filename, so it stays the same)."""
    env = tmp_path / "env"
    results = []
    for round_, seed in enumerate(("1", "random")):
        copy_env(mini_env, env)
        if round_:
            for p in (env / SITE).rglob("*.py"):
                os.utime(p, (1_000_000_000, 1_000_000_000))
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        summary = compile_environment(locate(env), measure=False)
        assert summary["startup_seconds_before"] is None and summary["startup_seconds_after"] is None
        assert "start-up" not in summary["summary"]
        results.append(pyc_files(env))
        shutil.rmtree(env)
    assert results[0].keys() == results[1].keys()
    differ = sorted(k for k in results[0] if results[0][k] != results[1][k])
    assert differ == []


def test_optimize_level_two(mini_env: Path, tmp_path: Path) -> None:
    env = copy_env(mini_env, tmp_path / "env")
    summary = compile_environment(locate(env), optimize=2, measure=False)
    pycs = pyc_files(env / SITE)
    assert pycs and all(k.endswith(".opt-2.pyc") for k in pycs)
    assert {pyc_flags(b) for b in pycs.values()} == {0b01}
    assert summary["optimize"] == 2 and summary["files"] == len(pycs)
    assert "-OO" in summary["summary"]


def test_recompiles_stale_timestamp_caches(mini_env: Path, tmp_path: Path) -> None:
    """compileall keeps a timestamp .pyc whose header matches; the layer must not carry one."""
    env = copy_env(mini_env, tmp_path / "env")
    subprocess.run([str(env / "bin" / "python"), "-m", "compileall", "-q", str(env / SITE / "mini")],
                   check=True)
    old = pyc_files(env / SITE / "mini")
    assert {pyc_flags(b) for b in old.values()} == {0}
    compile_environment(locate(env), measure=False)
    assert {pyc_flags(b) for b in pyc_files(env / SITE).values()} == {0b01}


def test_sources_that_do_not_compile_are_listed(mini_env: Path, tmp_path: Path) -> None:
    env = copy_env(mini_env, tmp_path / "env")
    (env / SITE / "mini" / "py2only.py").write_text('print "hello"\n')
    summary = compile_environment(locate(env), measure=False)
    assert summary["failed"] == [f"{SITE}/mini/py2only.py"]
    assert "1 source did not compile" in summary["summary"]
    assert f"mini/__pycache__/core.{sys.implementation.cache_tag}.pyc" in pyc_files(env / SITE)


def test_measurement_writes_nothing(mini_env: Path, tmp_path: Path) -> None:
    """Only compileall writes: compiling twice leaves the tree as the first compile did."""
    env = copy_env(mini_env, tmp_path / "env")
    compile_environment(locate(env), measure=False)
    once = tree_digest(env)
    summary = compile_environment(locate(env), measure=True)
    assert tree_digest(env) == once
    assert summary["bytes_added"] == 0
    assert summary["startup_seconds_after"] is not None


def test_target_directory_with_named_python(tmp_path: Path) -> None:
    target = tmp_path / "wheelhouse"
    add_dist(target, "mini", dict(MINI), site="")
    env = locate(target, python=sys.executable)
    assert env.kind == "site-packages"
    summary = compile_environment(env)
    assert summary["startup_modules"] == ["mini", "minimod"]
    assert summary["startup_seconds_after"] is not None
    assert f"mini/__pycache__/core.{sys.implementation.cache_tag}.pyc" in pyc_files(target)
    assert not list(tmp_path.glob("*.pyc"))


@pytest.mark.skipif(not Path(PY38).exists(), reason="needs CPython 3.8 (no compileall -o)")
def test_python38_target_uses_interpreter_optimize_flag(tmp_path: Path) -> None:
    env = tmp_path / "venv38"
    subprocess.run([PY38, "-m", "venv", "--without-pip", str(env)], check=True)
    add_dist(env, "mini", dict(MINI), site="lib/python3.8/site-packages")
    located = locate(env)
    assert located.python_version == (3, 8)
    summary = compile_environment(located, optimize=1)
    pycs = pyc_files(env / "lib/python3.8/site-packages")
    assert sorted(pycs) == sorted(f"{p}.cpython-38.opt-1.pyc" for p in (
        "__pycache__/minimod", "mini/__pycache__/__init__", "mini/__pycache__/core",
        "mini/sub/__pycache__/__init__", "mini/sub/__pycache__/deep"))
    assert {pyc_flags(b) for b in pycs.values()} == {0b01}
    assert summary["startup_modules"] == ["mini", "minimod"]
    assert summary["files"] == 5


def test_no_interpreter_is_a_usage_error(tmp_path: Path) -> None:
    add_dist(tmp_path, "mini", dict(MINI), site="")
    env = dataclasses.replace(locate(tmp_path), python=None)
    with pytest.raises(UsageError, match="--python EXE") as info:
        compile_environment(env)
    assert "\n" not in str(info.value)
    assert not pyc_files(tmp_path)


def test_bad_optimize_level(tmp_path: Path) -> None:
    add_dist(tmp_path, "mini", dict(MINI), site="")
    with pytest.raises(UsageError, match="--optimize 3"):
        compile_environment(locate(tmp_path, python=sys.executable), optimize=3)


def test_cli_bytecode_compile(mini_env: Path, tmp_path: Path) -> None:
    """The installed console script: prune drops the caches, then rebuilds them unchecked."""
    env = copy_env(mini_env, tmp_path / "env")
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--profile", "standard", "--bytecode", "compile",
                           "--format", "json"], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verification"]["status"] == "passed"
    bytecode = report["bytecode"]
    assert bytecode["invalidation_mode"] == "unchecked-hash" and bytecode["files"] > 0
    pycs = pyc_files(env)
    assert len(pycs) == bytecode["files"]
    assert {pyc_flags(b) for b in pycs.values()} == {0b01}
    assert run_python(env, "import mini; print(mini.classify('zeta'))").stdout.strip() == "greek"


def test_a_profile_that_says_compile_compiles(mini_env: Path, tmp_path: Path) -> None:
    """``bytecode = "compile"`` in a profile does what ``--bytecode compile`` does (it was
    accepted, written into the plan's options, and then ignored after the commit)."""
    env = copy_env(mini_env, tmp_path / "env")
    profile = tmp_path / "compile.toml"
    profile.write_text('name = "compiling"\nextends = "standard"\n[settings]\nbytecode = "compile"\n')
    proc = subprocess.run([str(VENV_PRUNE), str(env), "--profile", str(profile), "--format", "json"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["options"]["bytecode"] == "compile"
    assert report["bytecode"] is not None and report["bytecode"]["files"] > 0
    assert len(pyc_files(env)) == report["bytecode"]["files"]


def test_a_compile_killed_while_placing_is_finished_and_one_killed_compiling_discarded(
        mini_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16, item 4: the caches are compiled into a scratch tree and renamed into place
    under a journal, so what a SIGKILL leaves is settled by the next run or ``recover``:
    all of the caches, or none of them, never a mix."""
    from prune import bytecode
    from prune.bytecode import finish_pending, scratch_dir

    reference = copy_env(mini_env, tmp_path / "reference")
    compile_environment(locate(reference), measure=False)
    all_caches = {p.relative_to(reference) for p in reference.rglob("*.pyc")}
    assert all_caches

    class Killed(BaseException):
        """Stands for the SIGKILL: nothing after it runs in the killed process."""

    real_place = bytecode._place

    def killed_halfway(scratch: Path, moves: list[tuple[str, str]]) -> None:
        real_place(scratch, moves[: len(moves) // 2])
        raise Killed

    def no_settle(scratch: Path) -> bool:
        raise Killed

    for phase in ("placing", "compiling"):
        env = copy_env(mini_env, tmp_path / phase)
        if phase == "placing":
            monkeypatch.setattr(bytecode, "_place", killed_halfway)
        else:
            monkeypatch.setattr(bytecode, "_placements", lambda *a: (_ for _ in ()).throw(Killed()))
        monkeypatch.setattr(bytecode, "_settle", no_settle)
        with pytest.raises(Killed):
            compile_environment(locate(env), measure=False)
        monkeypatch.undo()
        assert scratch_dir(locate(env)).is_dir()
        caches = {p.relative_to(env) for p in env.rglob("*.pyc") if ".venv-prune-bytecode" not in p.parts}
        if phase == "placing":
            assert caches and caches < all_caches  # the mix a kill leaves until it is settled
        message = finish_pending(locate(env))
        assert message and ("finished" in message if phase == "placing" else "discarded" in message)
        assert not scratch_dir(locate(env)).exists()
        settled = {p.relative_to(env) for p in env.rglob("*.pyc")}
        assert settled == (all_caches if phase == "placing" else set())
