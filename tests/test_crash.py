"""Crash safety (issue 3): a run killed at any moment is recoverable, and signals roll back.

A synthetic venv of ~4,000 files (40 distributions with sources, C files, stubs, caches, tests
and docs, plus unused pip/setuptools/wheel with console scripts) takes about a second to prune
with ``--profile aggressive``, most of it in apply (staging ~1,300 moves and ~40 RECORD
rewrites, then deleting the stash). The real console script runs in its own session and the
whole session is SIGKILLed (as a power loss would) after delays stratified over the measured
length of a full run, so kills land in start-up, scan, plan, baseline, staging, verification
and commit. After ``venv-prune recover PATH`` the tree must be byte-identical to the original
or to the fully pruned reference, import, and hold no journal or stash.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import pytest
from conftest import tree_digest, wait_group_gone
from synth import add_dist, make_venv_tree

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
PYTAG = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
STATE = ".venv-prune"
N_DISTS = 40
TOPS = tuple(f"big{d:03d}" for d in range(N_DISTS))
PRUNE = ("--profile", "aggressive", "-q")
SEED = int(os.environ.get("VENV_PRUNE_CRASH_SEED", time.time_ns() % 2**32))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, cp -a")


def build_big_env(root: Path) -> Path:
    make_venv_tree(root)
    for d, top in enumerate(TOPS):
        files: dict[str, str | bytes] = {f"{top}/__init__.py": f"from . import m0, sub\nVALUE = {d}\n",
                                           f"{top}/sub/__init__.py": "from . import s0\n",
                                           f"{top}/tests/__init__.py": ""}
        for m in range(10):
            files[f"{top}/m{m}.py"] = f"X = {m}\n" * 20
            files[f"{top}/m{m}.c"] = "int x;\n" * 50
            files[f"{top}/m{m}.pyi"] = "X: int\n"
            files[f"{top}/__pycache__/m{m}.{PYTAG}.pyc"] = b"\0" * 200
            files[f"{top}/sub/s{m}.py"] = "Y = 1\n"
            files[f"{top}/sub/s{m}.h"] = "#define Y 1\n"
        for t in range(20):
            files[f"{top}/tests/test_{t}.py"] = "import pytest\n" * 10
        for t in range(5):
            files[f"{top}/docs/page {t}.rst"] = "doc\n" * 30
        add_dist(root, f"big-{d}", files)
    for tool in ("pip", "setuptools", "wheel"):
        add_dist(root, tool, {f"{tool}/__init__.py": "", **{f"{tool}/_vendor/v{i}.py": "x = 1\n" for i in range(100)}},
                 requested=False, scripts=(f"{tool}-cli",))
    (root / "share" / "man" / "man1").mkdir(parents=True)
    (root / "share" / "man" / "man1" / "tool.1").write_text(".TH tool\n")
    (root / "include" / "site").mkdir(parents=True)
    (root / "include" / "site" / "x.h").write_text("#define X\n")
    return root


class Env:
    """The pristine tree, the pruned reference and the measured length of full runs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.template = build_big_env(base / "template" / "env")
        self.original = tree_digest(self.template)
        self.counter = 0
        self.blocked_checked = False
        self.pruned, self.seconds, self.window = self._reference(("--no-verify",))
        pruned_verified, self.seconds_verified, self.window_verified = self._reference(())
        assert pruned_verified == self.pruned, "verification changed what a prune leaves"
        assert self.pruned != self.original

    def copy(self) -> Path:
        """A private copy, alone in its own directory (so strays beside it would show).

        Files are hard links to the template's (``cp -al``: a tenth of the time of ``cp -a``
        on a loaded machine). venv-prune only renames and unlinks files and writes new ones
        beside them, which leaves the template alone; ``check_template`` proves it at the end.
        """
        self.counter += 1
        parent = self.base / f"run{self.counter:03d}"
        parent.mkdir()
        subprocess.run(["cp", "-al", str(self.template), str(parent / "env")], check=True)
        return parent / "env"

    def check_template(self) -> None:
        assert tree_digest(self.template) == self.original, "a run changed a file in place"

    def _reference(self, extra: tuple[str, ...]) -> tuple[dict[str, tuple[str, int, str]], float, float]:
        """Prune a copy completely: (the result, seconds for the whole run, seconds during
        which the state directory existed, i.e. the transaction)."""
        root = self.copy()
        start = time.monotonic()
        proc = subprocess.Popen([str(VENV_PRUNE), str(root), *PRUNE, *extra], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        opened = closed = None
        while proc.poll() is None:
            exists = os.path.lexists(root / STATE)
            now = time.monotonic()
            if exists and opened is None:
                opened = now
            if not exists and opened is not None and closed is None:
                closed = now
            time.sleep(0.0005)
        seconds = time.monotonic() - start
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        assert opened is not None, "never saw the state directory"
        digest = tree_digest(root)
        shutil.rmtree(root.parent)
        return digest, seconds, (closed or start + seconds) - opened


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("crash"))


def journal_state(root: Path) -> Optional[str]:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((root / STATE / "journal.json").read_text())["state"])
    return None


def imports_ok(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(root / "bin" / "python"), "-I", "-B", "-c", f"import {', '.join(TOPS)}"],
                          capture_output=True, text=True, timeout=120)


def describe(digest: dict[str, tuple[str, int, str]], big: Env) -> str:
    extra = sorted(set(digest) - set(big.original))[:5]
    missing_vs_pruned = sorted(set(big.pruned) - set(digest))[:5]
    changed = sorted(k for k in set(digest) & set(big.pruned) if digest[k] != big.pruned[k])[:5]
    return f"extra={extra} missing(vs pruned)={missing_vs_pruned} changed(vs pruned)={changed}"


def kill_and_recover(big: Env, extra: tuple[str, ...], delay: float, *, in_transaction: bool = False) -> str:
    """Run a prune, SIGKILL its whole session ``delay`` seconds after the start (or after the
    state directory appears), recover, check the tree; returns which state the kill hit."""
    root = big.copy()
    proc = subprocess.Popen([str(VENV_PRUNE), str(root), *PRUNE, *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    if in_transaction:
        while proc.poll() is None and not os.path.lexists(root / STATE):
            time.sleep(0.0002)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    wait_group_gone(proc.pid)
    if proc.returncode == 0:
        interrupted = "finished"
    else:
        interrupted = journal_state(root) or ("no-journal" if not os.path.lexists(root / STATE)
                                               else "state-dir-without-journal")
    if journal_state(root) is not None and not big.blocked_checked:
        big.blocked_checked = True
        # Any other command refuses to start until recover has run (exit 3), changing nothing.
        before = tree_digest(root)
        blocked = subprocess.run([str(VENV_PRUNE), str(root), "--dry-run", "-q"], capture_output=True,
                                 text=True, timeout=120)
        assert blocked.returncode == 3 and "recover" in blocked.stderr, blocked.stderr
        assert tree_digest(root) == before
    rec = subprocess.run([str(VENV_PRUNE), "recover", str(root)], capture_output=True, text=True, timeout=120)
    when = "into the transaction" if in_transaction else "after the start"
    where = f"seed={SEED} kill {delay:.3f}s {when}, state={interrupted}, args={extra}"
    assert rec.returncode == 0, f"{where}: recover failed: {rec.stderr}"
    assert not os.path.lexists(root / STATE), f"{where}: {STATE} left behind: {os.listdir(root / STATE)}"
    assert os.listdir(root.parent) == ["env"], f"{where}: strays beside the env: {os.listdir(root.parent)}"
    digest = tree_digest(root)
    if digest == big.original:
        outcome = "original"
    elif digest == big.pruned:
        outcome = "pruned"
    else:
        pytest.fail(f"{where}: neither the original nor the pruned tree: {describe(digest, big)}")
    imp = imports_ok(root)
    assert imp.returncode == 0, f"{where}: {outcome} tree does not import: {imp.stderr[-500:]}"
    shutil.rmtree(root.parent)
    return f"{interrupted}->{outcome}"


def stratified(n: int, span: float, rng: random.Random) -> list[float]:
    """``n`` delays, one uniform in each of ``n`` equal slices of [0, span], shuffled."""
    delays = [(i + rng.random()) * span / n for i in range(n)]
    rng.shuffle(delays)
    return delays


def test_sigkill_at_random_moments_then_recover(big: Env) -> None:
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    # Kills spread over a whole run (start-up, scan and plan included; the slices run a little
    # past its end), then kills spread over the transaction alone (from the moment the state
    # directory appears: preparing, staging, RECORD rewrites, committing); both without and
    # with verification (baseline and after-check widen the transaction).
    runs: list[tuple[tuple[str, ...], float, bool]]
    runs = [(("--no-verify",), d, False) for d in stratified(12, big.seconds * 1.1, rng)]
    runs += [(("--no-verify",), d, True) for d in stratified(10, big.window * 1.1, rng)]
    runs += [((), d, False) for d in stratified(2, big.seconds_verified * 1.1, rng)]
    runs += [((), d, True) for d in stratified(3, big.window_verified * 1.1, rng)]
    for extra, delay, in_txn in runs:
        outcomes[kill_and_recover(big, extra, delay, in_transaction=in_txn)] += 1

    def mid_run() -> int:
        return sum(n for k, n in outcomes.items() if k.split("->")[0] in
                   ("preparing", "staging", "verifying", "committing"))

    # The delays were measured on an idle run; on a loaded machine (a CI run beside other
    # work) runs speed up and slow down, and kills meant for the transaction can land after
    # the run has finished. Top up with kills in the first half of the transaction until
    # enough have hit it (each outcome is still checked in full).
    extra_kills = 0
    while mid_run() < 8 and extra_kills < 40:
        extra_kills += 1
        outcomes[kill_and_recover(big, ("--no-verify",), rng.random() * big.window * 0.5,
                                  in_transaction=True)] += 1
    big.check_template()
    summary = (f"seed={SEED}, {len(runs) + extra_kills} kills ({extra_kills} to top up); full run "
               f"{big.seconds:.2f}s, transaction {big.window:.2f}s (verified: {big.seconds_verified:.2f}s, "
               f"{big.window_verified:.2f}s): {dict(outcomes)}")
    print(summary)
    # The kills must really have hit the transaction, not only start-up or the finished run.
    assert mid_run() >= 8, summary
    assert any(k.endswith("->original") for k in outcomes), summary
    assert any(k.endswith("->pruned") for k in outcomes), summary
    assert big.blocked_checked, summary


def wait_for_state(root: Path, proc: subprocess.Popen[bytes], states: tuple[str, ...]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        state = journal_state(root)
        if state in states:
            return state
        time.sleep(0.0005)
    pytest.fail(f"the run never reached {states} (exit {proc.returncode})")


def test_sigterm_and_sigint_mid_run_roll_back(big: Env, tmp_path: Path) -> None:
    """Ctrl-C and SIGTERM during the baseline, staging or verification: every move is undone,
    the exit code is 128 + the signal (130, 143: the shell's convention, not 3: nothing awaits
    recover), and nothing is left pending.

    Each signal is sent when the run is certainly in that phase, however loaded the machine
    (issue 16: the test failed with both cores busy): a ``--check`` touches a marker file in
    the baseline or after staging and, when the test asks it to, holds that phase until the
    signal; staging runs with every rename slowed by 3 ms and is caught by its journal state.
    """
    from killharness import slow_rename_argv

    site = next(iter(big.template.glob("lib/python*/site-packages")))
    marks = tmp_path / "marks"
    check = (f"if [ -e {site.relative_to(big.template)}/pip ]; then m=baseline; else m=after; fi; "
             f"touch {marks}/$m; if [ -e {marks}/hold-$m ]; then sleep 120; fi")
    cases = [(signal.SIGTERM, "preparing"),   # during the baseline import check
             (signal.SIGINT, "preparing"),
             (signal.SIGTERM, "staging"),
             (signal.SIGINT, "staging"),
             (signal.SIGTERM, "verifying"),   # everything staged, imports being checked
             (signal.SIGINT, "verifying")]
    for i, (sig, state) in enumerate(cases):
        root = big.copy()
        shutil.rmtree(marks, ignore_errors=True)
        marks.mkdir()
        args = [str(root), *PRUNE, "--check", f"cd {root} && {check}"]
        if state == "staging":
            argv = slow_rename_argv(args, 0.003)
        else:
            argv = [str(VENV_PRUNE), *args]
            (marks / ("hold-baseline" if state == "preparing" else "hold-after")).touch()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if state == "staging":
            wait_for_state(root, proc, ("staging",))
        else:
            marker = marks / ("baseline" if state == "preparing" else "after")
            deadline = time.monotonic() + 300
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert marker.exists(), f"the run never reached {state} (exit {proc.returncode})"
            assert journal_state(root) == state
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        where = f"{signal.Signals(sig).name} while {state}"
        assert proc.returncode == 128 + sig, f"{where}: exit {proc.returncode}: {err.decode(errors='replace')}"
        assert b"Traceback" not in err, f"{where}: {err.decode(errors='replace')}"
        assert b"rolled back" in err, f"{where}: {err.decode(errors='replace')}"
        assert not os.path.lexists(root / STATE), f"{where}: {STATE} left behind"
        assert tree_digest(root) == big.original, f"{where}: {describe(tree_digest(root), big)}"
        assert imports_ok(root).returncode == 0, where
        if i == 0:
            # Nothing is pending: the next run works and prunes completely.
            again = subprocess.run([str(VENV_PRUNE), str(root), *PRUNE, "--no-verify"], capture_output=True,
                                   timeout=300)
            assert again.returncode == 0, again.stderr
            assert tree_digest(root) == big.pruned
        shutil.rmtree(root.parent)
    big.check_template()


def test_kill_before_the_first_journal_write_is_cleaned_by_recover(big: Env) -> None:
    root = big.copy()
    (root / STATE / "stash").mkdir(parents=True)     # exactly what such a kill leaves
    (root / STATE / "venv-prune-state").write_text("")  # the marker, written before the stash
    rec = subprocess.run([str(VENV_PRUNE), "recover", str(root)], capture_output=True, text=True, timeout=120)
    assert rec.returncode == 0, rec.stderr
    assert not os.path.lexists(root / STATE), os.listdir(root / STATE)
    assert tree_digest(root) == big.original
