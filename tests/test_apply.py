"""Apply: real temporary trees, transactional staging, rollback, recover, symlink safety."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import tree_digest
from synth import SITE, add_dist, make_venv_tree

from prune.apply import MARKER, Failure, apply_plan, pending_journal, recover, state_dir
from prune.env import locate
from prune.errors import PendingJournal, UnsafePath, VerificationFailed
from prune.model import Action, Plan
from prune.plan import PlanOptions, build_plan
from prune.profiles import load_profile
from prune.record import read_rows
from prune.scan import scan


def make_env(tmp_path: Path) -> Path:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {
        "pkg/__init__.py": "from . import core\n",
        "pkg/core.py": "X = 1\n",
        "pkg/__pycache__/core.cpython-311.pyc": b"\0" * 100,
        "pkg/tests/__init__.py": "",
        "pkg/tests/data.txt": "x",
        "pkg/_speed.c": "int x;\n",
    }, scripts=("pkg-cli",))
    return root


def plan_of(root: Path, profile: str = "safe", **kw: object) -> Plan:
    return build_plan(scan(locate(root)), load_profile(profile), PlanOptions(**kw))  # type: ignore[arg-type]


class FailingVerifier:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before(self) -> None:
        self.calls.append("before")

    def after(self) -> Sequence[Failure]:
        self.calls.append("after")
        return [Failure("import", "pkg", "pkg", "ModuleNotFoundError: No module named 'pkg.core'")]


def test_apply_removes_exactly_the_plan_and_rewrites_record(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    plan = plan_of(root)
    result = apply_plan(plan)
    assert result.committed
    for a in plan.actions:
        assert not os.path.lexists(root / a.path)
    assert (root / SITE / "pkg/core.py").exists()
    record = root / SITE / "pkg-1.0.dist-info/RECORD"
    rows = read_rows(record.read_text())
    listed = {r[0] for r in rows}
    assert "pkg/_speed.c" not in listed and not any(p.startswith("pkg/tests/") for p in listed)
    for r in rows:  # every RECORD entry exists
        assert os.path.lexists(os.path.normpath(root / SITE / r[0])), r[0]
    assert not state_dir(locate(root)).exists()
    assert result.records_rewritten == 1


def test_second_run_plans_nothing(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    apply_plan(plan_of(root, "aggressive"))
    again = plan_of(root, "aggressive")
    assert again.actions == ()


def test_verification_failure_rolls_back_byte_for_byte(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    before = tree_digest(root)
    verifier = FailingVerifier()
    with pytest.raises(VerificationFailed) as info:
        apply_plan(plan_of(root, remove=("pkg/core.py",)), verifier=verifier)
    assert verifier.calls == ["before", "after"]
    assert "pkg" in str(info.value) and "cli-remove-1" in str(info.value)
    assert tree_digest(root) == before


def test_symlink_is_removed_as_a_link_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    root = make_env(tmp_path)
    os.symlink(outside, root / SITE / "pkg" / "test")
    plan = plan_of(root)
    assert any(a.path == f"{SITE}/pkg/test" and a.kind == "link" for a in plan.actions)
    apply_plan(plan)
    assert not os.path.lexists(root / SITE / "pkg" / "test")
    assert (outside / "precious.txt").read_text() == "keep me"


def test_unsafe_paths_are_refused_before_any_change(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    plan = plan_of(root)
    before = tree_digest(root)
    bad = Action("../outside", "file", 1, 1, "x", "x", "x", "", "x")
    with pytest.raises(UnsafePath):
        apply_plan(Plan(plan.inventory, plan.profile, plan.actions + (bad,)))
    assert tree_digest(root) == before


def test_symlinked_parent_escape_refused(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    outside = tmp_path / "elsewhere"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "f.c").write_text("x")
    os.symlink(outside, root / SITE / "linked")
    plan = plan_of(root)
    sneaky = Action(f"{SITE}/linked/inner/f.c", "file", 1, 1, "x", "x", "x", "", "x")
    with pytest.raises(UnsafePath):
        apply_plan(Plan(plan.inventory, plan.profile, (sneaky,)))
    assert (outside / "inner" / "f.c").exists()


def test_pending_journal_blocks_and_recover_rolls_back(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    before = tree_digest(root)
    env = locate(root)
    plan = plan_of(root)
    # Simulate a crash half-way through staging: do the first move by hand, keep the journal.
    sdir = state_dir(env)
    (sdir / "stash").mkdir(parents=True)
    (sdir / MARKER).write_text("")  # what venv-prune writes first
    steps = [{"op": "move", "path": a.path, "stash": f"m{i:06d}"} for i, a in enumerate(plan.actions)]
    (sdir / "journal.json").write_text(json.dumps({"state": "staging", "steps": steps}))
    os.rename(root / steps[0]["path"], sdir / "stash" / steps[0]["stash"])
    assert pending_journal(env)
    with pytest.raises(PendingJournal):
        apply_plan(plan_of(root))
    res = recover(env)
    assert res.outcome == "rolled-back" and res.moves_undone == 1
    assert tree_digest(root) == before
    assert recover(env).outcome == "nothing"


def test_recover_finishes_a_commit(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    env = locate(root)
    sdir = state_dir(env)
    (sdir / "stash" / "m000000").mkdir(parents=True)
    (sdir / MARKER).write_text("")
    (sdir / "journal.json").write_text(json.dumps({"state": "committing", "steps": []}))
    assert recover(env).outcome == "committed"
    assert not sdir.exists()


def test_read_only_directory_can_be_staged_and_committed(tmp_path: Path) -> None:
    root = make_env(tmp_path)
    tests = root / SITE / "pkg" / "tests"
    (tests / "data.txt").chmod(0o444)
    tests.chmod(0o555)
    try:
        apply_plan(plan_of(root))
    finally:
        if tests.exists():
            tests.chmod(0o755)
    assert not tests.exists()


class _SeesCaches:
    """A verifier that records whether bytecode caches were still there when it checked."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.seen: list[bool] = []

    def before(self) -> None:
        self.seen.append(self.cache.exists())

    def after(self) -> Sequence[Failure]:
        self.seen.append(self.cache.exists())
        return ()


def test_caches_go_after_verification_and_a_shared_pycache_goes_when_emptied(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "one", {"one.py": "", "__pycache__/one.cpython-311.pyc": b"\0" * 16})
    add_dist(root, "two", {"two.py": "", "__pycache__/two.cpython-311.pyc": b"\0" * 16,
                           "two_pkg/__init__.py": "", "two_pkg/__pycache__/__init__.cpython-311.pyc": b"\0"})
    plan = plan_of(root, "safe")
    shared = root / SITE / "__pycache__"
    assert {a.path for a in plan.actions} >= {f"{SITE}/__pycache__/one.cpython-311.pyc",
                                              f"{SITE}/__pycache__/two.cpython-311.pyc"}
    verifier = _SeesCaches(root / SITE / "two_pkg" / "__pycache__")
    apply_plan(plan, verifier=verifier)
    # Imports after pruning ran with the caches in place (no recompiling every source)...
    assert verifier.seen == [True, True]
    # ...and the caches are gone afterwards, the emptied shared __pycache__ with them.
    assert not (root / SITE / "two_pkg" / "__pycache__").exists()
    assert not shared.exists()
    assert (root / SITE / "one.py").exists() and (root / SITE / "two_pkg" / "__init__.py").exists()
    for name in ("one", "two"):
        record = next((root / SITE).glob(f"{name}-*.dist-info")) / "RECORD"
        assert not [r for r in read_rows(record.read_text()) if "__pycache__" in r[0]]


@pytest.mark.parametrize("width", [1, 3, 40, 700])
def test_parallel_delete_removes_the_tree_and_never_follows_links(tmp_path: Path, width: int) -> None:
    # The stash is deleted by several rm processes over chunks of its entries; whatever
    # the shape (one big directory, many small ones), everything goes, a link goes as a
    # link, and what a link points at outside stays.
    from prune.apply._delete import delete_tree

    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "data.txt").write_text("precious")
    stash = tmp_path / "stash"
    for i in range(width):
        d = stash / f"m{i:06d}" / "pkg" / "tests"
        d.mkdir(parents=True)
        for j in range(3):
            (d / f"t{j}.py").write_text("x")
    (stash / "m999999").symlink_to(outside / "keep", target_is_directory=True)
    (stash / f"m{0:06d}" / "pkg" / "link").symlink_to(outside / "keep", target_is_directory=True)
    ro = stash / f"m{width - 1:06d}" / "pkg"
    ro.chmod(0o555)
    delete_tree(stash, jobs=4)
    assert not stash.exists()
    assert (outside / "keep" / "data.txt").read_text() == "precious"


@pytest.mark.parametrize("count", [0, 1, 5, 32, 33, 1000, 20000])
def test_deletion_chunks_partition_the_entries(count: int) -> None:
    from prune.apply._delete import chunks as split

    units = [f"u{i}" for i in range(count)]
    chunks = split(units, 8)
    assert sorted(u for c in chunks for u in c) == sorted(units)
    assert all(0 < len(c) <= 256 for c in chunks)
    assert len(chunks) == min(count, max(32, -(-count // 256)))


def test_parallel_delete_falls_back_when_rm_cannot_start(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from prune.apply._delete import delete_tree

    stash = tmp_path / "stash"
    for i in range(50):
        (stash / f"m{i:06d}" / "tests").mkdir(parents=True)
        (stash / f"m{i:06d}" / "tests" / "t.py").write_text("x")
    started: list[list[str]] = []

    def refuse(cmd: list[str], **kwargs: object) -> None:
        started.append(cmd)
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "run", refuse)
    delete_tree(stash, jobs=4)
    assert started and not stash.exists()
