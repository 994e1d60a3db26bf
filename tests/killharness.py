"""A reusable SIGKILL harness: run a real ``venv-prune`` process, kill its whole session at a
chosen moment, settle with ``venv-prune recover`` (or the same command again), and classify the
tree as the original or the completed result.

Used by test_crash_matrix.py (staging, verifying, committing on several venvs) and
test_overlay.py (an overlay mount); any phase can use it: give :func:`kill_once` the command,
where its state lives, and what "done" looks like. Kills are placed either at a delay after the
start or at a delay after the state directory appears, or when a journal state is first seen
(plus a delay), so they land in the phase wanted even on a loaded machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from conftest import tree_digest, wait_group_gone

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
Digest = dict[str, tuple[str, int, str]]


def tree_owners(root: Path) -> dict[str, tuple[int, int]]:
    """uid and gid of every path under ``root`` (tree_digest leaves owners out)."""
    out = {".": (os.lstat(root).st_uid, os.lstat(root).st_gid)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_uid, st.st_gid)
    return out


def full_digest(root: Path) -> tuple[Digest, dict[str, tuple[int, int]]]:
    return tree_digest(root), tree_owners(root)


def journal_state(state: Path) -> Optional[str]:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads((state / "journal.json").read_text())["state"])
    return None


@dataclass(frozen=True)
class Kill:
    """Where to kill: ``delay`` seconds after the start, after ``state`` dir appears
    (``anchor="state-dir"``), after the journal first shows ``anchor`` (e.g. "committing"), or,
    with ``until``, after that predicate first holds (a phase with a marker of its own: a
    compile's output appearing, an --output copy's temporary directory)."""

    delay: float
    anchor: str = "start"
    until: Optional[Callable[[], bool]] = None


def kill_once(argv: list[str], state: Path, kill: Kill, *, env: Optional[dict[str, str]] = None,
              poll: float = 0.0002) -> tuple[str, int]:
    """Start ``argv`` in its own session, SIGKILL the session at ``kill``; returns (what the
    kill interrupted: a journal state, "no-journal", "finished", ...; the exit code)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + 300
    if kill.until is not None:
        while proc.poll() is None and not kill.until() and time.monotonic() < deadline:
            time.sleep(poll)
    elif kill.anchor == "state-dir":
        while proc.poll() is None and not os.path.lexists(state) and time.monotonic() < deadline:
            time.sleep(poll)
    elif kill.anchor != "start":
        while proc.poll() is None and journal_state(state) != kill.anchor and time.monotonic() < deadline:
            time.sleep(poll)
    time.sleep(kill.delay)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    wait_group_gone(proc.pid)
    if proc.returncode == 0:
        return "finished", 0
    hit = journal_state(state) or ("no-journal" if not os.path.lexists(state) else "state-dir-without-journal")
    return hit, proc.returncode


def settle(root: Path, how: str, argv: list[str], *,
           env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """``how`` = "recover" (venv-prune recover ROOT) or "rerun": recover, then ``argv`` again
    (a build re-run after a crash: the command refuses until recover has run)."""
    rec = subprocess.run([str(VENV_PRUNE), "recover", str(root)], capture_output=True, text=True,
                         timeout=300, env=env)
    if how == "recover" or rec.returncode != 0:
        return rec
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)


def classify(root: Path, references: dict[str, Digest], owners: Optional[dict[str, tuple[int, int]]] = None,
             owners_pruned: Optional[dict[str, tuple[int, int]]] = None) -> Optional[str]:
    """The name of the reference digest the tree equals (owners too, when given), or None."""
    digest = tree_digest(root)
    for name, ref in references.items():
        if digest == ref:
            if owners is not None:
                got = tree_owners(root)
                want = owners if name == "original" else (owners_pruned or owners)
                if any(got.get(k) != v for k, v in want.items() if k in got):
                    return None
            return name
    return None


def describe(digest: Digest, original: Digest, pruned: Digest) -> str:
    extra = sorted(set(digest) - set(original))[:5]
    missing = sorted(set(pruned) - set(digest))[:5]
    changed = sorted(k for k in set(digest) & set(pruned) if digest[k] != pruned[k])[:5]
    return f"extra={extra} missing(vs pruned)={missing} changed(vs pruned)={changed}"


def slow_rename_argv(args: list[str], seconds: float, hold: Optional[Path] = None) -> list[str]:
    """A venv-prune command line whose every os.rename (staging, rollback) sleeps first, as
    on a slow filesystem: the window in which a second process could interfere is wide.
    With ``hold``, every rename also waits while that file exists: the run stays in its
    phase until the test removes it, however long other processes take on a loaded machine."""
    wait = f"    while os.path.exists({str(hold)!r}):\n        time.sleep(0.005)\n" if hold else ""
    code = ("import os, sys, time\n"
            "_r = os.rename\n"
            f"def rename(*a, **k):\n{wait}    time.sleep({seconds!r})\n    return _r(*a, **k)\n"
            "os.rename = rename\n"
            "from prune.cli import main\n"
            "sys.argv[0] = 'venv-prune'\n"
            "sys.exit(main())\n")
    return [sys.executable, "-c", code, *args]


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    """Poll until ``predicate`` holds; fail if ``proc`` ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.0005)
    raise AssertionError(f"timed out waiting for {what}")
