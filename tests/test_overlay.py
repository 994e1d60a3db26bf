"""Apply on a real overlay mount (issue 14): the environment lives in the lower layer, as in a
Docker build whose prune runs in a later ``RUN`` than the install. Renaming a lower-layer
directory there fails with EXDEV; staging splits such directories entry by entry.

Needs root and the overlay filesystem (``mount -t overlay``); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import VenvFactory, copy_env, tree_digest
from killharness import VENV_PRUNE, Kill, classify, describe, full_digest, kill_once, settle, tree_owners

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="overlayfs is Linux's")

SEED = int(os.environ.get("VENV_PRUNE_CRASH_SEED", time.time_ns() % 2**32))
PRUNE = ["--profile", "aggressive", "-q"]
OWNER = 10001  # the environment belongs to another user, as a builder's venv may


class Overlay:
    """A lower directory holding ``venv`` and fresh overlay mounts of it."""

    def __init__(self, base: Path, lower: Path) -> None:
        self.base = base
        self.lower = lower
        self.count = 0
        self.mounted: list[Path] = []

    def mount(self, *options: str) -> Path:
        self.count += 1
        d = self.base / f"m{self.count:03d}"
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir(parents=True)
        opts = ",".join((f"lowerdir={self.lower},upperdir={d / 'upper'},workdir={d / 'work'}",) + options)
        proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(d / "merged")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount overlayfs here ({proc.stderr.strip() or proc.returncode}); "
                        "these tests need root and the overlay filesystem")
        self.mounted.append(d / "merged")
        return d / "merged"

    def unmount(self, merged: Path) -> None:
        subprocess.run(["umount", "-l", str(merged)], check=False)
        self.mounted.remove(merged)
        shutil.rmtree(merged.parent, ignore_errors=True)

    def close(self) -> None:
        for m in list(self.mounted):
            self.unmount(m)


def _own_by_other_user(venv: Path) -> None:
    """chown the tree to OWNER and give a few directories unusual modes, so a rollback that
    recreates directories must restore owners and modes, not just names."""
    for dirpath, dirnames, filenames in os.walk(venv):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), OWNER, OWNER)
    os.lchown(venv, OWNER, OWNER)
    for d in venv.glob("lib/python*/site-packages/pip/_internal/*"):
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o750)


@pytest.fixture(scope="module")
def overlay(venvs: VenvFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Overlay]:
    if os.geteuid() != 0:
        pytest.skip("mounting overlayfs needs root")
    base = tmp_path_factory.mktemp("overlay")
    lower = base / "lower"
    lower.mkdir()
    copy_env(venvs.pristine(["requests", "six"]), lower / "venv")
    _own_by_other_user(lower / "venv")
    ov = Overlay(base, lower)
    yield ov
    ov.close()


def imports(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-I", "-B", "-c", "import requests, six, certifi"],
                          capture_output=True, text=True, timeout=120)


def test_lower_layer_directory_rename_is_refused(overlay: Overlay) -> None:
    # The premise: on this mount a lower directory cannot be renamed, a lower file can.
    merged = overlay.mount()
    try:
        site = next((merged / "venv" / "lib").glob("python*/site-packages"))
        with pytest.raises(OSError) as info:
            os.rename(site / "requests", merged / "elsewhere")
        assert info.value.errno == 18  # EXDEV
        os.rename(site / "six.py", merged / "six.py")
    finally:
        overlay.unmount(merged)


def test_prune_on_overlay_matches_a_prune_where_directories_rename(overlay: Overlay, tmp_path: Path) -> None:
    plain = copy_env(overlay.lower / "venv", tmp_path / "venv")
    done = subprocess.run([str(VENV_PRUNE), str(plain), *PRUNE], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    merged = overlay.mount()
    try:
        venv = merged / "venv"
        run = subprocess.run([str(VENV_PRUNE), str(venv), *PRUNE], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        assert tree_digest(venv) == tree_digest(plain)
        assert tree_owners(venv) == tree_owners(plain)
        assert not os.path.lexists(venv / ".venv-prune")
        assert imports(venv).returncode == 0
    finally:
        overlay.unmount(merged)


def test_failed_verification_on_overlay_rolls_back_byte_for_byte(overlay: Overlay) -> None:
    merged = overlay.mount()
    try:
        venv = merged / "venv"
        before = full_digest(venv)
        # Passes before the prune, fails after it: pip (a split directory tree) is removed.
        check = f"test -d {next((venv / 'lib').glob('python*/site-packages'))}/pip/_internal"
        run = subprocess.run([str(VENV_PRUNE), str(venv), *PRUNE, "--check", check],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 1, run.stderr
        assert "rolled back" in run.stderr and "Traceback" not in run.stderr
        assert full_digest(venv) == before
        assert not os.path.lexists(venv / ".venv-prune")
    finally:
        overlay.unmount(merged)


def test_sigkill_on_overlay_then_recover(overlay: Overlay) -> None:
    rng = random.Random(SEED)
    merged = overlay.mount()
    venv = merged / "venv"
    original, owners = full_digest(venv)
    start = time.monotonic()
    done = subprocess.run([str(VENV_PRUNE), str(venv), *PRUNE, "--no-verify"], capture_output=True,
                          text=True, timeout=600)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    pruned, owners_pruned = full_digest(venv)
    overlay.unmount(merged)
    refs = {"original": original, "pruned": pruned}
    outcomes: Counter[str] = Counter()
    kills = [(["--no-verify"], Kill(rng.uniform(0, seconds * 1.1))) for _ in range(8)]
    kills += [(["--no-verify"], Kill(rng.uniform(0, seconds * 0.8), "state-dir")) for _ in range(10)]
    kills += [([], Kill(rng.uniform(0, 0.5), "verifying")) for _ in range(2)]
    kills += [(["--no-verify"], Kill(rng.uniform(0, 0.3), "committing")) for _ in range(2)]
    for extra, kill in kills:
        merged = overlay.mount()
        venv = merged / "venv"
        argv = [str(VENV_PRUNE), str(venv), *PRUNE, *extra]
        hit, _ = kill_once(argv, venv / ".venv-prune", kill)
        rec = settle(venv, "recover", argv)
        where = f"seed={SEED} {kill}, hit={hit}"
        assert rec.returncode == 0, f"{where}: {rec.stderr}"
        assert not os.path.lexists(venv / ".venv-prune"), where
        outcome = classify(venv, refs, owners, owners_pruned)
        assert outcome is not None, f"{where}: {describe(tree_digest(venv), original, pruned)}"
        assert imports(venv).returncode == 0, where
        outcomes[f"{hit}->{outcome}"] += 1
        overlay.unmount(merged)
    print(f"overlay kills, seed={SEED}, full run {seconds:.2f}s: {dict(outcomes)}")
    assert sum(outcomes.values()) >= 20
    assert any(k.endswith("->original") for k in outcomes) and any(k.endswith("->pruned") for k in outcomes)
    mid = sum(n for k, n in outcomes.items() if k.split("->")[0] in ("preparing", "staging", "verifying", "committing"))
    assert mid >= 8, dict(outcomes)
