"""The state directory and the journal in it: what ``recover`` reads after a crash.

A run keeps its journal, its stash and its prepared replacements in one state directory
(:func:`state_dir`), marked as venv-prune's own by a marker file so that only such a directory
is ever deleted (issue 16: a pre-existing sibling ``.venv-prune-NAME`` was deleted). The
journal (``journal.json``) lists every step of the transaction and its phase ("preparing",
"staging", "verifying", "committing"); it is written before the first move and removed only
after the stash is gone, so its presence is what "a run awaits recover" means.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Optional

from ..env import Environment
from ..errors import PendingJournal, PruneError, UnsafePath
from ..scan import STATE_DIR_NAME
from ._delete import rmtree
from ._staging import plain_relative

__all__ = [
    "ASIDE",
    "JOURNAL",
    "MARKER",
    "SCHEMA",
    "clear_state",
    "create_state",
    "ensure_no_pending",
    "load_journal",
    "pending_journal",
    "state_dir",
    "state_is_ours",
    "state_kind",
    "write_journal",
]

JOURNAL = "journal.json"
SCHEMA = "venv-prune-journal/1"
#: A file that marks a state directory as venv-prune's own.
MARKER = "venv-prune-state"
_MARKER_TEXT = "venv-prune keeps its journal and stash here while a run is live; see 'venv-prune recover'.\n"
#: Where a rollback moves content recreated meanwhile where a stashed path must go back.
ASIDE = "aside"
#: Stash entry names: ``m`` a removal, ``r`` a rewritten RECORD, ``x`` another replacement.
_STASH_NAME = re.compile(r"[mrx][0-9]{5,6}\Z")


def state_dir(env: Environment) -> Path:
    """Where a run keeps its journal and stash: inside the root for a venv or prefix (not an
    import path), beside the directory for a bare site-packages (which *is* one)."""
    if env.kind == "site-packages":
        return env.root.parent / f".venv-prune-{env.root.name}"
    return env.root / STATE_DIR_NAME


def pending_journal(env: Environment) -> Optional[Path]:
    """The journal an interrupted run left, or None."""
    path = state_dir(env) / JOURNAL
    return path if path.exists() else None


def ensure_no_pending(env: Environment) -> None:
    """:raises PendingJournal: an interrupted run must be recovered first (exit code 3)."""
    if pending_journal(env) is not None:
        raise PendingJournal(
            f"{env.root}: an interrupted venv-prune run left a journal; "
            f"run 'venv-prune recover {env.root}' first"
        )


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_journal(sdir: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    """Atomically replace the journal. ``durable`` fsyncs file and directory: needed before
    the first move (so a crash can be undone) and before the commit starts deleting (so a
    crash cannot be "undone" from a half-deleted stash); other phase changes need not wait."""
    tmp = sdir / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, sdir / JOURNAL)
    if durable:
        _fsync_dir(sdir)


def load_journal(path: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The journal at ``path`` and its steps, each checked to name a plain path inside the
    root and a stash entry inside the state directory (a tampered journal must not make
    ``recover`` write outside the environment, issue 16 item 8).

    :raises PruneError: the journal cannot be read or parsed.
    :raises UnsafePath: any step fails the check; nothing is done.
    """
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PruneError(f"{path}: journal unreadable ({exc}); inspect {path.parent} by hand") from exc
    steps = journal.get("steps") if isinstance(journal, dict) else None
    if not isinstance(steps, list):
        raise UnsafePath(f"{path}: not a venv-prune journal; inspect it by hand")
    for step in steps:
        ok = (isinstance(step, dict) and step.get("op") in ("move", "replace")
              and isinstance(step.get("path"), str) and plain_relative(step["path"])
              and isinstance(step.get("stash"), str) and _STASH_NAME.match(step["stash"]) is not None)
        if ok and step["op"] == "replace":
            new = step.get("new")
            ok = isinstance(new, str) and plain_relative(new) and new.startswith("prepared/")
        if not ok:
            raise UnsafePath(f"{path}: step {step!r} names a path outside the environment or its "
                             "stash; refusing to act on it; inspect the journal by hand")
    return journal, steps


def state_kind(sdir: Path) -> str:
    """"absent", "ours" (a real directory with venv-prune's marker), "empty" or "foreign"."""
    try:
        st = os.lstat(sdir)
    except FileNotFoundError:
        return "absent"
    if not stat.S_ISDIR(st.st_mode):
        return "foreign"
    marker = sdir / MARKER
    if os.path.isfile(marker) and not os.path.islink(marker):
        return "ours"
    return "empty" if not os.listdir(sdir) else "foreign"


def state_is_ours(sdir: Path) -> bool:
    """Whether ``sdir`` exists (and is venv-prune's).

    :raises UnsafePath: ``sdir`` exists but is not a directory venv-prune made.
    """
    kind = state_kind(sdir)
    if kind == "empty":
        # A kill between creating the directory and writing its marker leaves it empty;
        # deleting an empty directory loses nothing, so it is adopted.
        (sdir / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        kind = "ours"
    if kind == "foreign":
        raise UnsafePath(f"{sdir}: exists but venv-prune did not create it (a symlink, a file, or a "
                         f"directory without its {MARKER} marker); move it away, then run again")
    return kind == "ours"


def create_state(sdir: Path) -> None:
    """Create the state directory, marker first; a journal-less leftover of venv-prune's own
    is cleared first, keeping what an earlier rollback moved aside."""
    if state_is_ours(sdir):
        clear_state(sdir)
    if not os.path.lexists(sdir):
        sdir.mkdir(mode=0o700)
        (sdir / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")


def clear_state(sdir: Path) -> None:
    """Delete a state directory of venv-prune's own, or, when an earlier rollback moved
    recreated content aside, everything in it but that and the marker."""
    if state_kind(sdir) != "ours":
        return
    aside = sdir / ASIDE
    if not (aside.is_dir() and not aside.is_symlink() and any(aside.iterdir())):
        rmtree(sdir)
        return
    for entry in os.scandir(sdir):
        if entry.name not in (ASIDE, MARKER):
            rmtree(Path(entry.path))
