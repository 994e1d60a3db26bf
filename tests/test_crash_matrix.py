"""SIGKILL at 100+ random moments across staging, verifying and committing (issue 16).

For each of several environments (the ~4,000-file synthetic venv of test_crash.py, a real
requests + six venv), a reference run measures how long each phase lasts (journal states
preparing -> staging -> verifying -> committing); each kill is then anchored at the moment its
phase's journal state first appears, plus a random delay within the phase's measured length, so
kills land in every phase even on a loaded machine. After each kill: ``venv-prune recover``, or
recover and the same command again (a build re-run). The tree must be the original or the
completed prune, byte for byte, import, and hold no state directory.

The seed is printed (``-s``) and can be fixed with VENV_PRUNE_CRASH_SEED; VENV_PRUNE_KILLS sets
the number of kills (default 102). The harness itself is tests/killharness.py.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
from conftest import VenvFactory, tree_digest
from killharness import VENV_PRUNE, Kill, classify, describe, journal_state, kill_once, settle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, cp -al")

SEED = int(os.environ.get("VENV_PRUNE_CRASH_SEED", time.time_ns() % 2**32))
KILLS = int(os.environ.get("VENV_PRUNE_KILLS", "102"))
STATE = ".venv-prune"
PHASES = ("staging", "verifying", "committing")


@dataclass
class Case:
    name: str
    template: Path
    args: tuple[str, ...]
    imports: str
    original: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    pruned: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    copies: int = 0

    def copy(self, base: Path) -> Path:
        """A private copy alone in its own directory; files are hard links to the template's
        (venv-prune only renames and unlinks them; ``check_template`` proves it)."""
        self.copies += 1
        parent = base / f"{self.name}-{self.copies:03d}"
        parent.mkdir()
        subprocess.run(["cp", "-al", str(self.template), str(parent / "env")], check=True)
        return parent / "env"

    def argv(self, root: Path, verify: bool) -> list[str]:
        return [str(VENV_PRUNE), str(root), *self.args, *(() if verify else ("--no-verify",))]

    def measure(self, base: Path) -> None:
        """Prune a copy (verified): the result, and how long each journal state lasted."""
        self.original = tree_digest(self.template)
        root = self.copy(base)
        proc = subprocess.Popen(self.argv(root, True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen: dict[str, float] = {}
        last: Optional[str] = None
        while proc.poll() is None:
            state = journal_state(root / STATE)
            now = time.monotonic()
            if state != last:
                if state is not None and state not in seen:
                    seen[state] = now
                if last is not None:
                    self.phase_seconds[last] = now - seen[last]
                last = state
            time.sleep(0.0002)
        if last is not None:
            self.phase_seconds[last] = time.monotonic() - seen[last]
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        self.pruned = tree_digest(root)
        unverified = self.copy(base)
        done = subprocess.run(self.argv(unverified, False), capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert tree_digest(unverified) == self.pruned, "verification changed what a prune leaves"
        assert self.pruned != self.original
        shutil.rmtree(root.parent)
        shutil.rmtree(unverified.parent)

    def check_imports(self, root: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(root / "bin" / "python"), "-I", "-B", "-c", self.imports],
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cases(venvs: VenvFactory, tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    from test_crash import TOPS, build_big_env

    base = tmp_path_factory.mktemp("matrix")
    synth = Case("synthetic", build_big_env(base / "synthetic-template" / "env"),
                 ("--profile", "aggressive", "-q"), f"import {', '.join(TOPS)}")
    real_template = base / "real-template" / "env"
    real_template.parent.mkdir()
    subprocess.run(["cp", "-a", str(venvs.pristine(["requests", "six"])), str(real_template)], check=True)
    real = Case("requests-six", real_template, ("--profile", "aggressive", "-q"),
                "import requests, six, certifi, idna, urllib3, charset_normalizer")
    out = [synth, real]
    for c in out:
        c.measure(base)
    return out


def test_sigkill_in_every_phase_then_recover_or_rerun(cases: list[Case], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    plan: list[tuple[Case, str, float, bool, str]] = []
    for k in range(KILLS):
        case = cases[k % len(cases)]
        phase = PHASES[(k // len(cases)) % len(PHASES)]
        span = case.phase_seconds.get(phase, 0.05)
        verify = phase == "verifying" or rng.random() < 0.3
        plan.append((case, phase, rng.uniform(0, span), verify, "rerun" if rng.random() < 0.25 else "recover"))
    rng.shuffle(plan)
    outcomes: Counter[str] = Counter()
    for case, phase, delay, verify, how in plan:
        root = case.copy(tmp_path)
        argv = case.argv(root, verify)
        hit, _ = kill_once(argv, root / STATE, Kill(delay, phase))
        done = settle(root, how, argv)
        where = (f"seed={SEED} {case.name}: kill {delay:.3f}s into {phase} "
                 f"(verify={verify}), hit={hit}, then {how}")
        assert done.returncode == 0, f"{where}: {done.stderr}"
        assert "Traceback" not in done.stderr, f"{where}: {done.stderr}"
        assert not os.path.lexists(root / STATE), f"{where}: state left: {os.listdir(root / STATE)}"
        assert os.listdir(root.parent) == ["env"], f"{where}: strays: {os.listdir(root.parent)}"
        outcome = classify(root, {"original": case.original, "pruned": case.pruned})
        assert outcome is not None, f"{where}: {describe(tree_digest(root), case.original, case.pruned)}"
        if how == "rerun":
            assert outcome == "pruned", f"{where}: the re-run did not complete the prune"
        imp = case.check_imports(root)
        assert imp.returncode == 0, f"{where}: {outcome} tree does not import: {imp.stderr[-500:]}"
        outcomes[f"{case.name}:{hit}->{outcome}"] += 1
        shutil.rmtree(root.parent)
    for case in cases:
        assert tree_digest(case.template) == case.original, f"{case.name}: a run changed a file in place"
    phases = {c.name: {p: round(s, 3) for p, s in c.phase_seconds.items()} for c in cases}
    summary = f"seed={SEED}, {len(plan)} kills, phase seconds {phases}: {dict(sorted(outcomes.items()))}"
    print(summary)
    hits = Counter(k.split(":", 1)[1].split("->")[0] for k in outcomes.elements())
    assert len(plan) >= min(KILLS, 100)
    for phase in PHASES:
        assert hits[phase] >= len(plan) // 20, f"too few kills landed in {phase}: {summary}"
    assert any(k.endswith("->original") for k in outcomes), summary
    assert any(k.endswith("->pruned") for k in outcomes), summary
