"""SIGINT and SIGTERM outside the transaction (issue 16): before it (scan, plan, the start-up
timing before the prune) and right after its commit (the start-up timing after the prune), a
signal ends the run with 128+N and one line that says what state the environment is in. A
tester found both windows dying without a word: exit -15, empty stdout, stderr ending at
``committing``.

Each run is held in the window by a REQUESTED package whose import sleeps: the start-up timing
imports the REQUESTED distributions' top-level modules before and after the prune.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree_digest
from synth import add_dist, make_venv_tree

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"

pytestmark = [pytest.mark.heavy,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")]


def _sleeper_env(root: Path, flags: Path, *, after_commit: bool) -> Path:
    """An environment whose REQUESTED package ``sleeper`` writes ``flags/sleeping`` and sleeps
    when imported in the window under test: with ``after_commit``, the first import made
    while no transaction is open (no ``.venv-prune`` state directory) after one was seen;
    otherwise the very first import (the start-up timing before the prune)."""
    make_venv_tree(root)
    state = root / ".venv-prune"
    armed = flags / "armed"
    sleeping = flags / "sleeping"
    if after_commit:
        trigger = (f"if os.path.isdir({str(state)!r}):\n"
                   f"    open({str(armed)!r}, 'w').close()\n"
                   f"elif os.path.exists({str(armed)!r}) and not os.path.exists({str(sleeping)!r}):\n")
    else:
        trigger = f"if not os.path.exists({str(sleeping)!r}):\n"
    add_dist(root, "sleeper", {
        "sleeper/__init__.py": f"import os, time\n{trigger}"
                               f"    open({str(sleeping)!r}, 'w').close()\n    time.sleep(60)\n",
        "sleeper/tests/test_x.py": "x = 1\n",  # something for the prune to remove
    })
    return root


def _signal_when(proc: subprocess.Popen[str], flag: Path, signum: int) -> tuple[str, str]:
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the window"
        time.sleep(0.01)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    return out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_transaction_changes_nothing_and_says_so(tmp_path: Path, signum: int) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    env = _sleeper_env(tmp_path / "env", flags, after_commit=False)
    before = tree_digest(env)
    proc = subprocess.Popen([str(VENV_PRUNE), str(env)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, err = _signal_when(proc, flags / "sleeping", signum)
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert "stopped before anything was changed" in err and "Traceback" not in err, err
    assert tree_digest(env) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_right_after_the_commit_says_the_prune_is_complete(tmp_path: Path, signum: int) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    env = _sleeper_env(tmp_path / "env", flags, after_commit=True)
    proc = subprocess.Popen([str(VENV_PRUNE), str(env)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, err = _signal_when(proc, flags / "sleeping", signum)
    assert (flags / "armed").exists(), "verification never imported sleeper inside the transaction"
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert "after the prune was committed: the prune is complete" in err, err
    assert "Traceback" not in err, err
    assert not os.path.lexists(env / ".venv-prune")
    assert not list((env / "lib").rglob("test_x.py")), "the prune was not committed"
