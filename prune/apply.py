"""Execute a plan as a transaction: stage, verify, then commit or roll back.

Staging moves every planned path by ``rename`` into a stash inside venv-prune's state
directory (same filesystem, outside every import path: never beside packages in
site-packages, where pip's ``~name`` leftovers polluted metadata, pip issues 11849 and 7307).
A journal is written before the first move and at every change of phase, so after a crash
``recover`` can undo a run that was staging or verifying, or finish one that was committing.
Replacements (rewritten RECORD files, stripped libraries) are staged the same way: the
original goes to the stash, the new file is renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from ._lock import env_lock
from ._signals import SignalGate
from ._staging import SPLITS, Restorer, SplitLog, copy_name, mount_points, move_file, plain_relative, stage
from .env import Environment
from .errors import ApplyFailed, Interrupted, PendingJournal, PruneError, UnsafePath, VerificationFailed
from .model import Plan
from .record import read_rows, render_rows, resolve_entry
from .scan import STATE_DIR_NAME

__all__ = [
    "Replacement",
    "Failure",
    "Verifier",
    "ApplyResult",
    "RecoverResult",
    "apply_plan",
    "recover",
    "state_dir",
    "pending_journal",
    "ensure_no_pending",
    "check_under_root",
]

JOURNAL = "journal.json"
_SCHEMA = "venv-prune-journal/1"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Replacement:
    """Swap the file at ``path`` (relative to root) for the prepared file ``new_file``.

    ``new_file`` must be on the same filesystem (apply moves it with rename); ``detail``
    is free text for the report (e.g. "stripped: 1.2 MiB saved").
    """

    path: str
    new_file: Path
    bytes_saved: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Failure:
    """What verification found broken: ``kind`` is import|entry_point|check."""

    kind: str
    name: str
    distribution: str
    error: str
    rules: tuple[str, ...] = ()


class Verifier(Protocol):
    """Checks the environment before staging and after; ``after`` returns the breaks."""

    def before(self) -> None: ...

    def after(self) -> Sequence[Failure]: ...


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    committed: bool
    failures: tuple[Failure, ...] = ()
    verified: Optional[bool] = None
    replacements: tuple[Replacement, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    records_rewritten: int = 0


@dataclass(frozen=True)
class RecoverResult:
    """``outcome``: nothing | rolled-back | committed."""

    outcome: str
    moves_undone: int = 0
    message: str = ""


def state_dir(env: Environment) -> Path:
    """Where a run keeps its journal and stash: inside the root for a venv or prefix (not an
    import path), beside the directory for a bare site-packages (which *is* one)."""
    if env.kind == "site-packages":
        return env.root.parent / f".venv-prune-{env.root.name}"
    return env.root / STATE_DIR_NAME


def pending_journal(env: Environment) -> Optional[Path]:
    path = state_dir(env) / JOURNAL
    return path if path.exists() else None


def ensure_no_pending(env: Environment) -> None:
    """:raises PendingJournal: an interrupted run must be recovered first (exit code 3)."""
    if pending_journal(env) is not None:
        raise PendingJournal(
            f"{env.root}: an interrupted venv-prune run left a journal; "
            f"run 'venv-prune recover {env.root}' first"
        )


def check_under_root(root: Path, rel: str, resolved: Optional[dict[str, bool]] = None) -> Path:
    """The absolute path for ``rel``, refusing anything that could leave ``root``.

    ``rel`` must be relative and free of ``..``; every directory above the entry must
    resolve inside root (a symlinked parent could redirect a rename elsewhere). The entry
    itself may be a symlink: it is moved as a link, never followed.

    :param resolved: remembers, per parent directory, whether it resolved where expected,
        for checking many paths at one moment (the check before the first change). The
        check right before each move is made afresh.
    :raises UnsafePath: the path escapes root or does not exist.
    """
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/")):
        raise UnsafePath(f"{rel!r}: not a plain path inside {root}; refusing to touch it")
    full = root / rel
    parent = os.path.dirname(rel)
    inside = resolved.get(parent) if resolved is not None else None
    if inside is None:
        expected = os.path.normpath(os.path.join(str(root), parent))
        inside = os.path.realpath(full.parent) == expected
        if resolved is not None:
            resolved[parent] = inside
    if not inside:
        raise UnsafePath(f"{rel}: a directory above it is a symlink leading outside {root}; refusing")
    if not os.path.lexists(full):
        raise UnsafePath(f"{rel}: no longer exists; re-run to plan again")
    return full


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_journal(sdir: Path, data: dict[str, Any], *, durable: bool = True) -> None:
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


def _rmtree(path: Path) -> None:
    def onerror(func: Callable[..., Any], p: str, exc: Any) -> None:
        # Gone already: a stash deletion's rm processes outlive a ``kill -9`` of their parent
        # and may still be deleting while ``recover`` finishes the same commit.
        if isinstance(exc[1] if isinstance(exc, tuple) else exc, FileNotFoundError):
            return
        # Read-only files and directories (some wheels ship them) must still go.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
        func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        # rm(1) deletes large stashes markedly faster than shutil.rmtree's per-entry Python
        # work; shutil (with chmod on errors) handles what rm could not, e.g. read-only dirs.
        rm = shutil.which("rm")
        if rm is not None:
            with contextlib.suppress(OSError):  # rm could not start: shutil does it all
                subprocess.run([rm, "-rf", "--", str(path)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
        if path.exists():
            shutil.rmtree(path, onerror=onerror)


#: Concurrent rm processes that delete the stash. Deleting is bound by the filesystem's
#: latency per unlink (ext4 with online discard here; overlayfs in image builds), not by
#: the CPU: on a 2-core machine, deleting a 100k-file tree took 16.7 s with one rm, 12.1 s
#: with 2, 6.4 s with 4 and 5.5 s with 8 at once; with this module's chunking, 4.7 s with
#: 8, 3.4-4.0 s with 16 and 3.4 s with 32.
DELETE_JOBS = 16


def _deletion_units(path: Path, jobs: int) -> list[str]:
    """Entries of ``path`` to delete independently, at least a few per worker when the tree
    allows: a directory is replaced by its own entries (two levels at most), so one large
    tests/ directory does not leave the other workers idle."""
    units = [e.path for e in os.scandir(path)]
    for _ in range(2):
        if len(units) >= jobs * 8:
            break
        expanded: list[str] = []
        for unit in units:
            if os.path.isdir(unit) and not os.path.islink(unit):
                try:
                    children = [e.path for e in os.scandir(unit)]
                except OSError:
                    children = []
                expanded.extend(children or [unit])
            else:
                expanded.append(unit)
        units = expanded
    return units


def _chunks(units: Sequence[str], jobs: int) -> list[list[str]]:
    """Split ``units`` into a few chunks per worker, at most 256 paths each (one rm command
    line). Interleaved: neighbouring entries tend to be alike (one package's caches), so
    each chunk takes every n-th unit rather than a run of neighbours."""
    n = min(len(units), max(jobs * 4, -(-len(units) // 256)))
    return [list(units[i::n]) for i in range(n)]


def _delete_tree(path: Path, jobs: int = DELETE_JOBS) -> None:
    """Delete a directory tree with up to ``jobs`` rm processes at once, then sweep what is
    left (emptied directories, read-only entries) with :func:`_rmtree`."""
    rm = shutil.which("rm")
    if rm is None or not path.is_dir() or path.is_symlink():
        _rmtree(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    chunks = _chunks(_deletion_units(path, jobs), jobs)

    def remove(chunk: list[str]) -> None:
        # A process that cannot start (a build sandbox's process limit) leaves its chunk to
        # the sweep below rather than failing a commit half done.
        with contextlib.suppress(OSError):
            subprocess.run([rm, "-rf", "--", *chunk], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(remove, chunks))
    _rmtree(path)


def _file_hash(path: Path) -> tuple[str, int]:
    import base64
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode(), size


def _new_record(root: Path, record_rel: str, removed: Sequence[str], site: str,
                updates: Optional[dict[str, tuple[str, int]]] = None) -> str:
    """RECORD text without the entries at or under a removed path; replaced files get their
    new hash and size (PEP 376)."""
    updates = updates or {}
    text = (root / record_rel).read_text(encoding="utf-8", errors="surrogateescape")
    removed_set = set(removed)

    def gone(p: str) -> bool:
        probe = p
        while True:
            if probe in removed_set:
                return True
            if "/" not in probe:
                return False
            probe = probe.rsplit("/", 1)[0]

    rows = []
    for row in read_rows(text):
        resolved = resolve_entry(site, row[0])
        if resolved is not None and gone(resolved):
            continue
        if resolved is not None and resolved in updates and len(row) >= 3:
            digest, size = updates[resolved]
            row = [row[0], digest, str(size)] + row[3:]
        rows.append(row)
    return render_rows(rows)


def _rules_for(plan: Plan, failure: Failure) -> tuple[str, ...]:
    """The rules whose removals most plausibly broke ``failure`` (see :mod:`prune.blame`)."""
    from .blame import blame

    return blame(plan, failure)


@dataclass
class _Txn:
    root: Path
    sdir: Path
    stash: Path
    journal: dict[str, Any] = field(default_factory=dict)
    log: Optional[SplitLog] = None
    #: root-relative paths found recreated during a rollback and moved into ``sdir/aside``
    moved_aside: list[str] = field(default_factory=list)

    def save(self, durable: bool = True) -> None:
        _write_journal(self.sdir, self.journal, durable=durable)


#: A file that marks a state directory as venv-prune's own: only such a directory is ever
#: deleted (issue 16: a pre-existing sibling ``.venv-prune-NAME`` was deleted).
MARKER = "venv-prune-state"
_MARKER_TEXT = "venv-prune keeps its journal and stash here while a run is live; see 'venv-prune recover'.\n"
ASIDE = "aside"


def _state_kind(sdir: Path) -> str:
    """"absent", "ours" (a real directory with venv-prune's marker) or "foreign"."""
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


def _state_is_ours(sdir: Path) -> bool:
    """Whether ``sdir`` exists (and is venv-prune's).

    :raises UnsafePath: ``sdir`` exists but is not a directory venv-prune made.
    """
    kind = _state_kind(sdir)
    if kind == "empty":
        # A kill between creating the directory and writing its marker leaves it empty;
        # deleting an empty directory loses nothing, so it is adopted.
        (sdir / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        kind = "ours"
    if kind == "foreign":
        raise UnsafePath(f"{sdir}: exists but venv-prune did not create it (a symlink, a file, or a "
                         f"directory without its {MARKER} marker); move it away, then run again")
    return kind == "ours"


def _open_state(txn: _Txn) -> None:
    """Create the state directory (marker first) and an empty stash; a journal-less leftover
    of venv-prune's own is cleared, keeping what an earlier rollback moved aside."""
    if _state_is_ours(txn.sdir):
        _clear_state(txn.sdir)
    if not os.path.lexists(txn.sdir):
        txn.sdir.mkdir(mode=0o700)
        (txn.sdir / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
    txn.stash.mkdir()
    txn.log = SplitLog(txn.sdir / SPLITS, mounts=mount_points(txn.root))


def _clear_state(sdir: Path) -> None:
    """Delete a state directory of venv-prune's own, or, when an earlier rollback moved
    recreated content aside, everything in it but that and the marker."""
    if _state_kind(sdir) != "ours":
        return
    aside = sdir / ASIDE
    if not (aside.is_dir() and not aside.is_symlink() and any(aside.iterdir())):
        _rmtree(sdir)
        return
    for entry in os.scandir(sdir):
        if entry.name not in (ASIDE, MARKER):
            _rmtree(Path(entry.path))


def _os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the path, the error, and why when we can tell."""
    code = errno.errorcode.get(exc.errno or 0, "")
    path = exc.filename if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    line = f"{os.fsdecode(path)}: " if path is not None else ""
    line += f"{exc.strerror or exc}" + (f" ({code})" if code else "")
    if exc.errno in (errno.EACCES, errno.EPERM) and path is not None:
        p = os.fsdecode(path)
        parent = os.path.dirname(p)
        if parent and not os.access(parent, os.W_OK):
            line += (f"; moving it needs write permission on the directory that holds it ({parent}): "
                     "run as the environment's owner or as root")
        elif os.path.isdir(p) and not os.path.islink(p) and not os.access(p, os.W_OK):
            line += ("; moving a directory to another needs write permission on the directory "
                     "itself (it is read-only): run as the environment's owner or as root")
        else:
            line += "; run as the environment's owner or as root"
    elif exc.errno == errno.EROFS:
        line += "; that filesystem is mounted read-only"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        line += "; free some space (or raise the quota) and run again"
    return line


def apply_plan(
    plan: Plan,
    *,
    verifier: Optional[Verifier] = None,
    replacements: Sequence[Replacement] = (),
    prepare: Optional[Callable[[Path], Sequence[Replacement]]] = None,
    progress: Optional[Progress] = None,
) -> ApplyResult:
    """Carry out ``plan`` transactionally, holding the environment's lock throughout.

    :param verifier: checks before and after staging; any failure rolls everything back.
    :param replacements: files to swap in (stripped libraries); staged like removals.
    :param prepare: called with a scratch directory on the stash's filesystem to produce
        more replacements after the baseline (e.g. stripping copies of libraries).
    :raises Busy: another run holds the environment's lock (nothing was changed).
    :raises PendingJournal: an earlier run awaits ``recover`` (or this run's rollback could
        not finish: its journal is kept for ``recover``).
    :raises UnsafePath: a planned path escapes the root (nothing was changed).
    :raises VerificationFailed: verification found a break; everything was rolled back.
        Its ``result`` attribute holds the :class:`ApplyResult` with the failures.
    :raises ApplyFailed: the operating system refused a step (chained from its OSError);
        everything was rolled back.
    :raises Interrupted: SIGINT or SIGTERM; before the commit everything was rolled back,
        during it the commit was finished first (the message says which).
    """
    env = plan.inventory.env
    with env_lock(env.root):
        ensure_no_pending(env)
        # Validate every path before the first change: an unsafe plan changes nothing.
        resolved: dict[str, bool] = {}
        for a in plan.actions:
            check_under_root(env.root, a.path, resolved)
        for r in replacements:
            check_under_root(env.root, r.path, resolved)
        sdir = state_dir(env)
        _state_is_ours(sdir)  # refuse a foreign state directory before anything else
        txn = _Txn(env.root, sdir, sdir / "stash")
        with SignalGate() as gate:
            return _transact(txn, plan, gate, verifier, replacements, prepare, progress)


def _transact(txn: _Txn, plan: Plan, gate: SignalGate, verifier: Optional[Verifier],
              replacements: Sequence[Replacement],
              prepare: Optional[Callable[[Path], Sequence[Replacement]]],
              progress: Optional[Progress]) -> ApplyResult:
    """Stage, verify and commit, or roll back; see :func:`apply_plan`."""
    timings: list[tuple[str, float]] = []
    t0 = time.monotonic()
    try:
        _open_state(txn)
        txn.journal = {"schema": _SCHEMA, "root": str(txn.root), "state": "preparing",
                       "steps": [{"op": "move", "path": a.path, "stash": f"m{i:06d}"}
                                 for i, a in enumerate(plan.actions)],
                       "pid": os.getpid(), "started": time.time()}
        txn.save(durable=False)
        if verifier is not None:
            if progress:
                progress("verifying: baseline imports before pruning")
            t = time.monotonic()
            verifier.before()
            timings.append(("baseline", time.monotonic() - t))
        all_repl, records_rewritten = _prepare_replacements(txn, plan, replacements, prepare, timings)
        failures = _stage_and_verify(txn, plan, verifier, timings, progress)
        if failures:
            gate.defer = True
            _fail_verification(txn, plan, failures, all_repl, timings, t0)
        gate.defer = True  # from the "committing" journal on, a signal waits for the commit
    except KeyboardInterrupt as exc:
        gate.defer = True
        _abort(txn)
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        raise Interrupted("interrupted: every change was rolled back; the environment is as before"
                          + _aside_note(txn), int(signum)) from None
    except VerificationFailed:
        raise
    except OSError as exc:
        gate.defer = True
        _abort(txn)
        raise ApplyFailed(f"could not apply the plan: {_os_error_line(exc)}; every change was rolled "
                          f"back, the environment is as before{_aside_note(txn)}") from exc
    except BaseException:
        gate.defer = True
        _abort(txn)
        raise
    t = time.monotonic()
    _commit_run(txn, plan, progress)
    timings.append(("commit", time.monotonic() - t))
    timings.append(("total", time.monotonic() - t0))
    if gate.caught:
        name = signal.Signals(gate.caught[0]).name
        raise Interrupted(f"{name} arrived during the commit, which was finished first: the prune is "
                          "complete and nothing is pending", gate.caught[0])
    return ApplyResult(plan, True, (), True if verifier is not None else None, tuple(all_repl),
                       tuple(timings), records_rewritten)


def _aside_note(txn: _Txn) -> str:
    if not txn.moved_aside:
        return ""
    return (f"; {len(txn.moved_aside)} path(s) recreated meanwhile were moved aside to "
            f"{txn.sdir / ASIDE} (first: {txn.moved_aside[0]})")


def _prepare_replacements(txn: _Txn, plan: Plan, replacements: Sequence[Replacement],
                          prepare: Optional[Callable[[Path], Sequence[Replacement]]],
                          timings: list[tuple[str, float]]) -> tuple[list[Replacement], int]:
    """Prepare stripped files and rewritten RECORDs in the state directory and journal them
    (state "staging", durable) before the first move. Returns (replacements, RECORDs rewritten)."""
    root, sdir = txn.root, txn.sdir
    all_repl = list(replacements)
    prepared = sdir / "prepared"
    prepared.mkdir(exist_ok=True)
    if prepare is not None:
        t = time.monotonic()
        all_repl += list(prepare(prepared))
        timings.append(("prepare", time.monotonic() - t))
    site_of = {d.metadata_dir + "/RECORD": d.site for d in plan.inventory.distributions}
    owner_of = {f.path: f.owner for f in plan.inventory.files if f.owner}
    record_of = {d.name: d.metadata_dir + "/RECORD" for d in plan.inventory.distributions if d.has_record}
    updates: dict[str, dict[str, tuple[str, int]]] = {}
    for rep in all_repl:
        rec = record_of.get(owner_of.get(rep.path, ""), "")
        if rec:
            updates.setdefault(rec, {})[rep.path] = _file_hash(rep.new_file)
    records = dict(plan.records)
    for rec in updates:
        records.setdefault(rec, ())
    repl_steps: list[dict[str, str]] = []
    for j, (record_rel, removed) in enumerate(sorted(records.items())):
        if any(record_rel == a.path or record_rel.startswith(a.path + "/") for a in plan.actions):
            continue
        if not (root / record_rel).is_file():
            continue
        new = prepared / f"record{j:05d}"
        new.write_text(_new_record(root, record_rel, removed, site_of.get(record_rel, ""),
                                   updates.get(record_rel)),
                       encoding="utf-8", errors="surrogateescape")
        repl_steps.append({"op": "replace", "path": record_rel, "stash": f"r{j:05d}",
                           "new": str(new.relative_to(sdir))})
    records_rewritten = len(repl_steps)
    for k, rep in enumerate(all_repl):
        check_under_root(root, rep.path)
        repl_steps.append({"op": "replace", "path": rep.path, "stash": f"x{k:05d}",
                           "new": os.path.relpath(rep.new_file, sdir)})
    txn.journal["steps"] = txn.journal["steps"] + repl_steps
    txn.journal["state"] = "staging"
    txn.save()
    return all_repl, records_rewritten


def _stage_and_verify(txn: _Txn, plan: Plan, verifier: Optional[Verifier],
                      timings: list[tuple[str, float]], progress: Optional[Progress]) -> tuple[Failure, ...]:
    """Stage every step, verify, then stage the bytecode caches; returns the failures (with
    the caches still in place when there are any)."""
    t = time.monotonic()
    moves = sum(1 for st in txn.journal["steps"] if st["op"] == "move")
    if progress:
        progress(f"staging {moves} removals")
    # Bytecode caches go last, after verification: a cache never decides whether a module
    # imports (a __pycache__ file without its source is ignored), and with the caches still
    # there the imports after pruning cost what they cost before, instead of compiling every
    # kept source.
    bytecode = {a.path for a in plan.actions if a.rule == "bytecode"} if verifier is not None else set()
    late = [st for st in txn.journal["steps"] if st["op"] == "move" and st["path"] in bytecode]
    for step in txn.journal["steps"]:
        if step["op"] != "move" or step["path"] not in bytecode:
            _do_step(txn, step)
    timings.append(("stage", time.monotonic() - t))
    if verifier is None:
        return ()
    txn.journal["state"] = "verifying"
    assert txn.log is not None
    txn.log.sync()
    txn.save(durable=False)
    if progress:
        progress("verifying: imports after pruning")
    t = time.monotonic()
    failures = tuple(verifier.after())
    timings.append(("verify", time.monotonic() - t))
    if not failures:
        for step in late:
            _do_step(txn, step)
    return failures


def _fail_verification(txn: _Txn, plan: Plan, failures: tuple[Failure, ...], all_repl: list[Replacement],
                       timings: list[tuple[str, float]], t0: float) -> None:
    """Roll back and raise VerificationFailed, blaming the rules that removed what broke."""
    failures = tuple(Failure(f.kind, f.name, f.distribution, f.error, _rules_for(plan, f)) for f in failures)
    _abort(txn)
    result = ApplyResult(plan, False, failures, False, tuple(all_repl),
                         tuple(timings + [("total", time.monotonic() - t0)]), 0)
    first = failures[0]
    rules = f"; removed by {', '.join(first.rules)}" if first.rules else ""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    err = VerificationFailed(
        f"verification failed, every change rolled back: {first.kind} {first.name}"
        f" ({first.distribution or 'unowned'}): {first.error}{rules}{more}{_aside_note(txn)}"
    )
    err.result = result  # type: ignore[attr-defined]
    raise err


def _commit_run(txn: _Txn, plan: Plan, progress: Optional[Progress]) -> None:
    """From the durable "committing" journal on, ``recover`` finishes the run instead of
    undoing it. Signals are deferred by the caller; an OS error leaves the journal for it."""
    try:
        txn.journal["state"] = "committing"
        assert txn.log is not None
        txn.log.sync()
        txn.save()
    except OSError as exc:
        _abort(txn)
        raise ApplyFailed(f"could not apply the plan: {_os_error_line(exc)}; every change was rolled "
                          "back, the environment is as before") from exc
    if progress:
        progress("committing")
    try:
        _commit(txn)
    except OSError as exc:
        raise PendingJournal(f"the commit stopped at {_os_error_line(exc)}; every planned removal is "
                             f"staged; fix that, then run 'venv-prune recover {txn.root}' to finish "
                             "it") from exc
    # A __pycache__ shared by several distributions' top-level modules loses its files in
    # several actions (one per owner, so each RECORD is rewritten) and is left empty: it goes.
    emptied = {a.path.rsplit("/", 1)[0] for a in plan.actions
               if a.rule == "bytecode" and a.kind != "dir" and "/" in a.path}
    for d in sorted(emptied, reverse=True):
        if d.rsplit("/", 1)[-1] == "__pycache__":
            with contextlib.suppress(OSError):
                os.rmdir(txn.root / d)


def _do_step(txn: _Txn, step: dict[str, str]) -> None:
    src = check_under_root(txn.root, step["path"])
    dst = str(txn.stash / step["stash"])
    assert txn.log is not None
    if step["op"] == "move":
        stage(txn.root, step["path"], dst, txn.log)
    elif step["op"] == "replace":
        st = os.lstat(src)
        move_file(str(src), dst)
        new = txn.sdir / step["new"]
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.chown(new, st.st_uid, st.st_gid)  # issue 16: root made others' files its own
        os.chmod(new, stat.S_IMODE(st.st_mode))
        move_file(str(new), str(src))
    else:  # pragma: no cover - journal written by this module only
        raise PruneError(f"unknown journal step {step['op']!r}")


def _abort(txn: _Txn) -> None:
    """Roll back with signals already deferred by the caller.

    :raises PendingJournal: the rollback itself failed; the journal is kept for ``recover``.
    """
    try:
        _rollback(txn)
    except (OSError, UnsafePath) as exc:
        line = _os_error_line(exc) if isinstance(exc, OSError) else str(exc)
        raise PendingJournal(f"rolling back stopped at {line}; the journal is kept: fix that, then run "
                             f"'venv-prune recover {txn.root}'") from exc


def _rollback(txn: _Txn) -> int:
    """Undo every staged step, newest first; returns how many were undone."""
    if _state_kind(txn.sdir) != "ours":
        return 0  # nothing of ours was created: nothing was staged
    log = SplitLog.load(txn.sdir / SPLITS)
    splits = {k: v for k, v in log.dirs.items() if plain_relative(k)}
    restorer = Restorer(txn.root, txn.sdir / ASIDE, splits)
    undone = 0
    for step in reversed(txn.journal.get("steps", [])):
        stashed = txn.stash / step["stash"]
        if not os.path.lexists(stashed):
            continue
        restorer.prepare_parents(step["path"])
        if step["op"] == "replace":
            src = txn.root / step["path"]
            if os.path.lexists(src) and not os.path.isdir(src):
                os.unlink(src)  # the replacement this run put there
            # ...or the copy of it that a kill interrupted (a file on another filesystem).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy_name(str(src)))
        if restorer.restore(str(stashed), step["path"]):
            undone += 1
    txn.moved_aside = restorer.moved_aside
    _clear_state(txn.sdir)
    return undone


def _commit(txn: _Txn) -> None:
    if os.path.isdir(txn.stash) and not os.path.islink(txn.stash):
        _delete_tree(txn.stash)
    prepared = txn.sdir / "prepared"
    if prepared.exists():
        _rmtree(prepared)
    (txn.sdir / JOURNAL).unlink()
    _clear_state(txn.sdir)


_STASH_NAME = re.compile(r"[mrx][0-9]{5,6}\Z")


def _check_journal(journal: Any, path: Path) -> list[dict[str, str]]:
    """The journal's steps, each checked to name a plain path inside the root and a stash
    entry inside the state directory (a tampered journal must not make ``recover`` write
    outside the environment, issue 16 item 8).

    :raises UnsafePath: any step fails the check; nothing is done.
    """
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
    return steps


def recover(env: Environment) -> RecoverResult:
    """Finish or undo an interrupted run from its journal, holding the environment's lock.

    A run that was preparing, staging or verifying is rolled back (the environment returns
    to what it was); a run that was committing is finished. With no journal, nothing happens.
    Content recreated meanwhile where a stashed path must go back is moved aside into the
    state directory (a recreated ``__pycache__`` is discarded) and named in the message.

    :raises Busy: the run that wrote the journal (or another) is still alive and holds the lock.
    :raises UnsafePath: the state directory is not venv-prune's, or the journal names a path
        outside the environment; nothing was done.
    """
    with env_lock(env.root), SignalGate() as gate:
        gate.defer = True
        result = _recover_locked(env)
    if gate.caught:
        raise Interrupted(f"{result.message}; a signal arrived meanwhile and waited for that to finish",
                          gate.caught[0])
    return result


def _recover_locked(env: Environment) -> RecoverResult:
    sdir = state_dir(env)
    if not _state_is_ours(sdir):
        return RecoverResult("nothing", 0, f"{env.root}: nothing to recover")
    path = sdir / JOURNAL
    if not path.exists():
        # Without a journal nothing was ever moved: the journal is written before the first
        # move and removed only after the stash is gone. What is left is scaffolding.
        stash = sdir / "stash"
        if stash.is_dir() and not stash.is_symlink() and any(stash.iterdir()):
            raise PruneError(f"{stash}: holds files but there is no journal; inspect it by hand, "
                             "then remove it")
        _clear_state(sdir)
        return RecoverResult("nothing", 0, f"{env.root}: nothing to recover")
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PruneError(f"{path}: journal unreadable ({exc}); inspect {sdir} by hand") from exc
    steps = _check_journal(journal, path)
    txn = _Txn(env.root, sdir, sdir / "stash", {**journal, "steps": steps})
    try:
        if journal.get("state") == "committing":
            _commit(txn)
            return RecoverResult("committed", 0, f"{env.root}: finished the interrupted prune")
        undone = _rollback(txn)
    except OSError as exc:
        raise PendingJournal(f"recover stopped at {_os_error_line(exc)}; the journal is kept: fix "
                             f"that, then run 'venv-prune recover {env.root}' again") from exc
    return RecoverResult("rolled-back", undone,
                         f"{env.root}: rolled back an interrupted prune ({undone} moves undone)"
                         + _aside_note(txn))
