"""The transaction around staging (issues 14 and 16): the lock, OS errors, signals during the
commit, recreated and missing paths, tampered journals, foreign state directories, owners.

Real temporary trees and real ``venv-prune`` processes; mounts (tmpfs, read-only binds) and
another user need root and are skipped with the reason where they are not available.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import copy_env, tree_digest
from killharness import VENV_PRUNE, journal_state, slow_rename_argv, tree_owners, wait_for
from synth import SITE, add_dist, make_venv_tree

from prune.apply import MARKER, Failure, Replacement, apply_plan, recover, state_dir
from prune.env import locate
from prune.errors import ApplyFailed
from prune.plan import PlanOptions, build_plan
from prune.profiles import load_profile
from prune.scan import scan

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, another user)")
OTHER = 10001
STATE = ".venv-prune"


def make_env(base: Path, c_files: int = 40) -> Path:
    root = make_venv_tree(base / "v")
    files: dict[str, str | bytes] = {
        "pkg/__init__.py": "from . import core\n",
        "pkg/core.py": "X = 1\n",
        "pkg/__pycache__/core.cpython-311.pyc": b"\0" * 100,
        "pkg/tests/__init__.py": "",
        "pkg/tests/data.txt": "x",
    }
    files.update({f"pkg/_c{i:04d}.c": f"int x{i};\n" for i in range(c_files)})
    add_dist(root, "pkg", files, scripts=("pkg-cli",))
    add_dist(root, "gone", {"gone/__init__.py": "", "gone/sub/x.c": "int y;\n", "gone/sub/y.py": "Y = 2\n"})
    return root


def plan_of(root: Path, profile: str = "safe"):  # type: ignore[no-untyped-def]
    return build_plan(scan(locate(root)), load_profile(profile), PlanOptions())


def cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PRUNE), *args], capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload, no-any-return]


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("venv-prune: error:")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for m in reversed(made):
        subprocess.run(["umount", "-l", str(m)], check=False)


def mount(made: list[Path], *args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} not permitted here: {proc.stderr.strip()}")
    made.append(Path(args[-1]))


# --- operating-system errors: rollback and one line, exit 4 (issue 14, issue 16 item 6) ---

@ROOT_ONLY
def test_read_only_bind_mount_rolls_back_with_one_line(tmp_path: Path, mounts: list[Path]) -> None:
    root = make_env(tmp_path)
    pkg = root / SITE / "pkg"
    before = tree_digest(root)
    mount(mounts, "--bind", str(pkg), str(pkg))
    mount(mounts, "-o", "remount,ro,bind", str(pkg))
    run = cli(str(root), "--profile", "safe", "--no-verify", "-q")
    assert run.returncode == 4, run.stderr
    line = one_error_line(run.stderr)
    assert "read-only" in line.lower() and "rolled back" in line, line
    assert str(pkg) in line, line
    assert tree_digest(root) == before
    assert not os.path.lexists(root / STATE)


@ROOT_ONLY
def test_non_root_read_only_tests_directory_says_why(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="venv-prune-nonroot-"))
    try:
        os.chmod(base, 0o755)
        root = make_env(base)
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), OTHER, OTHER)
        os.chown(base, OTHER, OTHER)
        tests = root / SITE / "pkg" / "tests"
        tests.chmod(0o555)
        before = tree_digest(root)
        run = subprocess.run(["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups",
                              str(VENV_PRUNE), str(root), "--profile", "safe", "--no-verify", "-q"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 4, run.stderr
        line = one_error_line(run.stderr)
        assert str(tests) in line and "Permission denied" in line, line
        assert "write permission on the directory itself" in line, line
        assert tree_digest(root) == before
        assert not os.path.lexists(root / STATE)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@ROOT_ONLY
def test_full_disk_while_writing_a_record_rolls_back(tmp_path: Path, mounts: list[Path]) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mount(mounts, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    root = make_env(disk)
    # Fill the disk to the last few blocks: renames need none, a RECORD rewrite does.
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    assert full.value.errno == errno.ENOSPC
    before = tree_digest(root)
    run = cli(str(root), "--profile", "safe", "--no-verify", "-q")
    assert run.returncode == 4, run.stderr
    line = one_error_line(run.stderr)
    assert "No space left on device" in line and "rolled back" in line, line
    assert tree_digest(root) == before
    filler.unlink()  # room for recover's own bookkeeping, if it had any
    assert cli("recover", str(root)).returncode == 0


@pytest.mark.parametrize("failing_state", ["verifying", "committing"])
def test_journal_write_failing_after_staging_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         failing_state: str) -> None:
    import prune.apply.transaction as transaction

    root = make_env(tmp_path)
    before = tree_digest(root)
    real = transaction.write_journal

    def write(sdir: Path, data: dict, *, durable: bool = True) -> None:  # type: ignore[type-arg]
        if data.get("state") == failing_state:
            raise OSError(errno.ENOSPC, "No space left on device", str(sdir / "journal.json.tmp"))
        real(sdir, data, durable=durable)

    class Passes:
        def before(self) -> None: ...

        def after(self) -> Sequence[Failure]:
            return ()

    monkeypatch.setattr(transaction, "write_journal", write)
    with pytest.raises(ApplyFailed) as info:
        apply_plan(plan_of(root), verifier=Passes())
    assert isinstance(info.value.__cause__, OSError)
    assert "journal.json.tmp: No space left on device (ENOSPC)" in str(info.value)
    assert tree_digest(root) == before
    assert not state_dir(locate(root)).exists()


# --- the lock (issue 16 item 1) ---

def test_second_run_and_recover_during_a_live_run_change_nothing(tmp_path: Path) -> None:
    root = make_env(tmp_path / "a", c_files=400)
    reference = copy_env(root, tmp_path / "reference")
    assert cli(str(reference), "--profile", "safe", "--no-verify", "-q").returncode == 0
    pruned = tree_digest(reference)
    # Every rename sleeps 3 ms first, as on a slow filesystem, and waits while the hold file
    # exists: the live run is staging for as long as the three others take, even when a
    # loaded machine makes each of them slower than a whole idle prune (CI at load 6.5).
    hold = tmp_path / "hold"
    hold.touch()
    proc = subprocess.Popen(slow_rename_argv([str(root), "--profile", "safe", "--no-verify", "-q"], 0.003, hold),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: journal_state(root / STATE) == "staging", proc, "staging")
    second = cli(str(root), "--profile", "safe", "--no-verify", "-q")
    rec = cli("recover", str(root))
    dry = cli(str(root), "--dry-run", "-q")
    still = journal_state(root / STATE)
    hold.unlink()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    for other in (second, rec, dry):
        assert other.returncode == 75, other.stderr
        line = one_error_line(other.stderr)
        assert f"another venv-prune run (pid {proc.pid}) is working on {root}" in line, line
    assert still == "staging", "the live run was disturbed"
    assert tree_digest(root) == pruned
    assert not os.path.lexists(root / STATE)


def test_pre_existing_sibling_state_directory_is_never_deleted(tmp_path: Path) -> None:
    site = tmp_path / "target"
    add_dist(site, "pkg", {"pkg/__init__.py": "", "pkg/tests/t.py": "", "pkg/x.c": ""}, site="")
    foreign = tmp_path / ".venv-prune-target"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("mine")
    before = tree_digest(site)
    for args in ((str(site), "--profile", "safe", "--no-verify", "-q"), ("recover", str(site))):
        run = cli(*args)
        assert run.returncode == 2, run.stderr
        assert "did not create it" in one_error_line(run.stderr)
        assert (foreign / "precious.txt").read_text() == "mine"
        assert tree_digest(site) == before


def test_state_directory_symlink_is_refused(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "journal.json").write_text(json.dumps({"state": "committing", "steps": []}))
    (outside / MARKER).write_text("")
    (outside / "precious.txt").write_text("mine")
    os.symlink(outside, root / STATE)
    for args in (("recover", str(root)), (str(root), "--profile", "safe", "--no-verify", "-q")):
        run = cli(*args)
        assert run.returncode in (2, 3), run.stderr
        one_error_line(run.stderr)
        assert sorted(os.listdir(outside)) == sorted(["journal.json", MARKER, "precious.txt"])


# --- recover against a changed tree and a tampered journal (issue 16 items 2 and 8) ---

def staged_by_hand(root: Path, state: str = "staging") -> list[dict[str, str]]:
    """What a SIGKILL after staging every move leaves: marker, journal, stash."""
    plan = plan_of(root)
    sdir = state_dir(locate(root))
    (sdir / "stash").mkdir(parents=True)
    (sdir / MARKER).write_text("")
    steps = [{"op": "move", "path": a.path, "stash": f"m{i:06d}"} for i, a in enumerate(plan.actions)]
    (sdir / "journal.json").write_text(json.dumps({"state": state, "steps": steps}))
    for st in steps:
        os.rename(root / st["path"], sdir / "stash" / st["stash"])
    return steps


def test_recover_survives_recreated_paths_and_missing_parents(tmp_path: Path) -> None:
    root = make_env(tmp_path, c_files=2)
    site = root / SITE
    before = tree_digest(root)
    steps = staged_by_hand(root)
    paths = {st["path"] for st in steps}
    assert {f"{SITE}/pkg/__pycache__", f"{SITE}/pkg/tests", f"{SITE}/gone/sub/x.c"} <= paths
    # The environment's Python ran meanwhile (a cache came back), someone recreated tests/,
    # and gone/ was uninstalled under the crashed run.
    (site / "pkg/__pycache__").mkdir()
    (site / "pkg/__pycache__/core.cpython-311.pyc").write_bytes(b"new cache")
    (site / "pkg/tests").mkdir()
    (site / "pkg/tests/mine.txt").write_text("recreated by hand")
    shutil.rmtree(site / "gone")
    res = recover(locate(root))
    assert res.outcome == "rolled-back"
    assert "moved aside" in res.message and f"{SITE}/pkg/tests" in res.message, res.message
    aside = root / STATE / "aside" / SITE / "pkg/tests/mine.txt"
    assert aside.read_text() == "recreated by hand"
    after = {k: v for k, v in tree_digest(root).items() if not k.startswith(STATE)}
    # Everything staged is back where it was; of gone/ only what was staged (x.c) exists.
    assert {k: v for k, v in before.items() if not k.startswith(f"{SITE}/gone")} == \
        {k: v for k, v in after.items() if not k.startswith(f"{SITE}/gone")}
    assert (site / "gone/sub/x.c").read_text() == "int y;\n"
    # A second recover finds nothing pending; the moved-aside content stays for inspection.
    assert recover(locate(root)).outcome == "nothing"
    assert aside.exists()


@pytest.mark.parametrize("bad", [
    {"op": "move", "path": "../outside/victim.txt", "stash": "m000000"},
    {"op": "move", "path": "lib/escape/victim.txt", "stash": "m000000"},
    {"op": "move", "path": "ok.txt", "stash": "../../outside/victim.txt"},
    {"op": "replace", "path": "ok.txt", "stash": "r00000", "new": "../../outside/victim.txt"},
])
def test_tampered_journal_never_writes_outside_the_root(tmp_path: Path, bad: dict[str, str]) -> None:
    root = make_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    os.symlink(outside, root / "lib" / "escape")
    sdir = root / STATE
    (sdir / "stash").mkdir(parents=True)
    (sdir / MARKER).write_text("")
    (sdir / "stash" / "m000000").write_text("overwritten!")
    (sdir / "stash" / "r00000").write_text("overwritten!")
    (sdir / "journal.json").write_text(json.dumps({"state": "staging", "steps": [bad]}))
    run = cli("recover", str(root))
    assert run.returncode == 2, run.stderr
    one_error_line(run.stderr)
    assert (outside / "victim.txt").read_text() == "original"
    assert os.listdir(outside) == ["victim.txt"]


def test_empty_state_directory_left_by_a_kill_is_adopted(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    (root / STATE).mkdir()  # a kill between mkdir and the marker
    run = cli(str(root), "--profile", "safe", "--no-verify", "-q")
    assert run.returncode == 0, run.stderr
    assert not os.path.lexists(root / STATE)


# --- signals during the commit (issue 16 item 3) ---

def slow_commit_argv(args: list[str]) -> list[str]:
    """venv-prune whose stash deletion waits 2 s first: a commit long enough to signal."""
    code = ("import sys, time\n"
            "import prune.apply.transaction as a\n"
            "_d = a.delete_tree\n"
            "def slow(*x, **k):\n    time.sleep(2)\n    return _d(*x, **k)\n"
            "a.delete_tree = slow\n"
            "from prune.cli import main\n"
            "sys.exit(main())\n")
    return [sys.executable, "-c", code, *args]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_the_commit_finishes_it_then_exits(tmp_path: Path, sig: int) -> None:
    root = make_env(tmp_path / "a")
    reference = copy_env(root, tmp_path / "reference")
    assert cli(str(reference), "--profile", "safe", "--no-verify", "-q").returncode == 0
    proc = subprocess.Popen(slow_commit_argv([str(root), "--profile", "safe", "--no-verify", "-q"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: journal_state(root / STATE) == "committing", proc, "the commit")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    text = err.decode()
    assert proc.returncode == 128 + sig, text
    assert "Traceback" not in text and "the prune is complete" in text, text
    assert not os.path.lexists(root / STATE)
    assert tree_digest(root) == tree_digest(reference)


# --- owners and modes of replaced files (issue 16 item 9) ---

@ROOT_ONLY
def test_root_keeps_the_owner_and_mode_of_rewritten_records_and_replaced_files(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), OTHER, OTHER + 1)
    os.lchown(root, OTHER, OTHER + 1)
    record = next((root / SITE).glob("pkg-*.dist-info")) / "RECORD"
    record.chmod(0o640)
    # A replaced library (what strip produces), made by root beside the environment.
    lib = root / SITE / "pkg" / "core.py"
    lib.chmod(0o750)
    stripped = tmp_path / "stripped-core.py"
    stripped.write_text("X = 1  # smaller\n")
    apply_plan(plan_of(root), prepare=lambda scratch: [Replacement(f"{SITE}/pkg/core.py", stripped, 1, "test")])
    assert lib.read_text() == "X = 1  # smaller\n"
    assert (lib.stat().st_uid, lib.stat().st_gid, lib.stat().st_mode & 0o7777) == (OTHER, OTHER + 1, 0o750)
    assert (record.stat().st_uid, record.stat().st_gid) == (OTHER, OTHER + 1)
    assert record.stat().st_mode & 0o7777 == 0o640
    assert "pkg/tests/data.txt" not in record.read_text()
    assert set(tree_owners(root).values()) == {(OTHER, OTHER + 1)}


# --- mount points inside the environment (issue 14: a directory that is one or crosses one) ---

def _mount_env(base: Path, made: list[Path]) -> tuple[Path, Path, Path]:
    """make_env with a tmpfs mounted on pkg/tests (a planned path that is a mount point) and on
    gone/tests/deep (a planned path that holds one), each filled with what RECORD lists."""
    root = make_env(base, c_files=3)
    site = root / SITE
    add_dist(root, "more", {"more/__init__.py": "", "more/tests/__init__.py": "",
                            "more/tests/deep/t.py": "T = 1\n"})
    point, deep = site / "pkg/tests", site / "more/tests/deep"
    for where, files in ((point, {"__init__.py": "", "data.txt": "x"}), (deep, {"t.py": "T = 1\n"})):
        saved = {n: (where / n).read_bytes() for n in files}
        mount(made, "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(where))
        for n, data in saved.items():
            (where / n).write_bytes(data)
        if (where / "data.txt").exists():
            (where / "data.txt").chmod(0o600)  # a mode a rollback must bring back
    return root, point, deep


@ROOT_ONLY
def test_mount_points_inside_the_environment_stage_commit_and_stay(tmp_path: Path, mounts: list[Path]) -> None:
    root, point, deep = _mount_env(tmp_path, mounts)
    plan = plan_of(root)
    paths = {a.path for a in plan.actions}
    assert f"{SITE}/pkg/tests" in paths and f"{SITE}/more/tests" in paths
    apply_plan(plan)
    # What was on the mounted filesystems is gone; the mount points stay, empty, as after rm -rf.
    assert os.listdir(point) == [] and os.listdir(deep) == []
    assert os.path.ismount(point) and os.path.ismount(deep)
    assert sorted(os.listdir(root / SITE / "more" / "tests")) == ["deep"]
    assert not state_dir(locate(root)).exists()


@ROOT_ONLY
def test_mount_points_inside_the_environment_roll_back_byte_for_byte(tmp_path: Path, mounts: list[Path]) -> None:
    root, point, deep = _mount_env(tmp_path, mounts)
    before, owners = tree_digest(root), tree_owners(root)

    class Fails:
        def before(self) -> None: ...

        def after(self) -> Sequence[Failure]:
            assert os.listdir(point) == [], "verification must see the mount point emptied"
            return [Failure("import", "pkg", "pkg", "ModuleNotFoundError: No module named 'pkg.tests'")]

    from prune.errors import VerificationFailed

    with pytest.raises(VerificationFailed):
        apply_plan(plan_of(root), verifier=Fails())
    assert tree_digest(root) == before and tree_owners(root) == owners
    assert os.path.ismount(point) and os.path.ismount(deep)
    assert not state_dir(locate(root)).exists()


def test_two_runs_started_together_never_undo_each_other(tmp_path: Path) -> None:
    # Before the lock, each run deleted a state directory it found ('a stale one'), i.e. the
    # other's stash. Now one holds the lock; the other exits 75 or, started after the first
    # finished, plans nothing: either way the result is the one prune.
    template = make_env(tmp_path / "t", c_files=200)
    reference = copy_env(template, tmp_path / "reference")
    assert cli(str(reference), "--profile", "safe", "--no-verify", "-q").returncode == 0
    for i in range(4):
        root = copy_env(template, tmp_path / f"r{i}")
        argv = slow_rename_argv([str(root), "--profile", "safe", "--no-verify", "-q"], 0.001)
        procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
        codes = sorted(p.wait(timeout=300) for p in procs)
        errs = [p.stderr.read().decode() for p in procs if p.stderr]
        assert codes in ([0, 75], [0, 0]), (codes, errs)
        assert not any("Traceback" in e for e in errs), errs
        assert tree_digest(root) == tree_digest(reference)
        assert not os.path.lexists(root / STATE)


def test_a_copy_interrupted_in_a_split_directory_is_not_restored(tmp_path: Path) -> None:
    # A kill while a file on another filesystem was being copied into a split directory of
    # the stash leaves a partial copy there and the original in place: recover drops the copy.
    from prune.apply._staging import copy_name

    root = make_env(tmp_path, c_files=1)
    before = tree_digest(root)
    sdir = state_dir(locate(root))
    (sdir / "stash" / "m000000").mkdir(parents=True)
    (sdir / MARKER).write_text("")
    rel = f"{SITE}/pkg/tests"
    (sdir / "splits.jsonl").write_text(json.dumps({"path": rel, "mode": 0o755, "uid": os.getuid(),
                                                   "gid": os.getgid()}) + "\n")
    os.rename(root / rel / "__init__.py", sdir / "stash" / "m000000" / "__init__.py")
    Path(copy_name(str(sdir / "stash" / "m000000" / "data.txt"))).write_text("partial")
    (sdir / "journal.json").write_text(json.dumps({"state": "staging", "steps": [
        {"op": "move", "path": rel, "stash": "m000000"}]}))
    assert recover(locate(root)).outcome == "rolled-back"
    assert tree_digest(root) == before
