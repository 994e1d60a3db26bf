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
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from .env import Environment
from .errors import Interrupted, PendingJournal, PruneError, UnsafePath, VerificationFailed
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


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so both roll back the same way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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
    """The rules whose removals most plausibly broke ``failure``."""
    m = re.search(r"No module named '([^']+)'", failure.error)
    missing = m.group(1) if m else None
    candidates: list[str] = []
    probes: list[str] = []
    if missing:
        probes.append(missing.replace(".", "/"))
    probes.append(failure.name.split(".")[0].replace(".", "/"))
    for probe in probes:
        for a in plan.actions:
            tail = a.path.split("/")
            for i in range(len(tail)):
                sub = "/".join(tail[i:])
                if sub in (probe, probe + ".py") or sub.startswith(probe + "/") or probe.startswith(sub + "/"):
                    entry = f"{a.rule} ({a.path})"
                    if entry not in candidates:
                        candidates.append(entry)
                    break
        if candidates:
            break
    if not candidates and failure.distribution:
        for a in plan.actions:
            if a.distribution == failure.distribution:
                entry = f"{a.rule} ({a.path})"
                if entry not in candidates:
                    candidates.append(entry)
    return tuple(candidates[:5])


@dataclass
class _Txn:
    root: Path
    sdir: Path
    stash: Path
    journal: dict[str, Any] = field(default_factory=dict)

    def save(self, durable: bool = True) -> None:
        _write_journal(self.sdir, self.journal, durable=durable)


def apply_plan(
    plan: Plan,
    *,
    verifier: Optional[Verifier] = None,
    replacements: Sequence[Replacement] = (),
    prepare: Optional[Callable[[Path], Sequence[Replacement]]] = None,
    progress: Optional[Progress] = None,
) -> ApplyResult:
    """Carry out ``plan`` transactionally.

    :param verifier: checks before and after staging; any failure rolls everything back.
    :param replacements: files to swap in (stripped libraries); staged like removals.
    :param prepare: called with a scratch directory on the stash's filesystem to produce
        more replacements after the baseline (e.g. stripping copies of libraries).
    :raises PendingJournal: an earlier run awaits ``recover``.
    :raises UnsafePath: a planned path escapes the root (nothing was changed).
    :raises VerificationFailed: verification found a break; everything was rolled back.
        Its ``result`` attribute holds the :class:`ApplyResult` with the failures.
    """
    env = plan.inventory.env
    root = env.root
    ensure_no_pending(env)
    timings: list[tuple[str, float]] = []
    t0 = time.monotonic()
    # Validate every path before the first change: an unsafe plan changes nothing.
    resolved: dict[str, bool] = {}
    for a in plan.actions:
        check_under_root(root, a.path, resolved)
    for r in replacements:
        check_under_root(root, r.path, resolved)

    sdir = state_dir(env)
    if sdir.exists():
        _rmtree(sdir)  # a stale, journal-less state dir from a finished run
    sdir.mkdir(mode=0o700)
    stash = sdir / "stash"
    stash.mkdir()
    txn = _Txn(root, sdir, stash)
    moves: list[dict[str, str]] = []
    for i, a in enumerate(plan.actions):
        moves.append({"op": "move", "path": a.path, "stash": f"m{i:06d}"})
    txn.journal = {"schema": _SCHEMA, "root": str(root), "state": "preparing", "steps": moves,
                   "pid": os.getpid(), "started": time.time()}
    try:
        txn.save(durable=False)
        with _signals_interrupt():
            if verifier is not None:
                if progress:
                    progress("verifying: baseline imports before pruning")
                t = time.monotonic()
                verifier.before()
                timings.append(("baseline", time.monotonic() - t))
            all_repl = list(replacements)
            if prepare is not None:
                t = time.monotonic()
                scratch = sdir / "prepared"
                scratch.mkdir(exist_ok=True)
                all_repl += list(prepare(scratch))
                timings.append(("prepare", time.monotonic() - t))
            # RECORD rewrites are replacements too, prepared before the first move.
            prepared = sdir / "prepared"
            prepared.mkdir(exist_ok=True)
            repl_steps: list[dict[str, str]] = []
            site_of = {d.metadata_dir + "/RECORD": d.site for d in plan.inventory.distributions}
            owner_of = {f.path: f.owner for f in plan.inventory.files if f.owner}
            record_of = {d.name: d.metadata_dir + "/RECORD" for d in plan.inventory.distributions
                         if d.has_record}
            updates: dict[str, dict[str, tuple[str, int]]] = {}
            for rep in all_repl:
                rec = record_of.get(owner_of.get(rep.path, ""), "")
                if rec:
                    updates.setdefault(rec, {})[rep.path] = _file_hash(rep.new_file)
            records = dict(plan.records)
            for rec in updates:
                records.setdefault(rec, ())
            records_rewritten = 0
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
                records_rewritten += 1
            for k, rep in enumerate(all_repl):
                check_under_root(root, rep.path)
                repl_steps.append({"op": "replace", "path": rep.path, "stash": f"x{k:05d}",
                                   "new": os.path.relpath(rep.new_file, sdir)})
            txn.journal["steps"] = moves + repl_steps
            txn.journal["state"] = "staging"
            txn.save()

            t = time.monotonic()
            if progress:
                progress(f"staging {len(moves)} removals")
            # Bytecode caches go last, after verification: a cache never decides whether a
            # module imports (a __pycache__ file without its source is ignored), and with the
            # caches still there the imports after pruning cost what they cost before,
            # instead of compiling every kept source.
            bytecode = {a.path for a in plan.actions if a.rule == "bytecode"} if verifier is not None else set()
            late = [st for st in txn.journal["steps"] if st["op"] == "move" and st["path"] in bytecode]
            for step in txn.journal["steps"]:
                if step["op"] != "move" or step["path"] not in bytecode:
                    _do_step(txn, step)
            timings.append(("stage", time.monotonic() - t))

            failures: tuple[Failure, ...] = ()
            if verifier is not None:
                txn.journal["state"] = "verifying"
                txn.save(durable=False)
                if progress:
                    progress("verifying: imports after pruning")
                t = time.monotonic()
                failures = tuple(verifier.after())
                timings.append(("verify", time.monotonic() - t))
            if failures:
                failures = tuple(
                    Failure(f.kind, f.name, f.distribution, f.error, _rules_for(plan, f)) for f in failures
                )
                _rollback(txn)
                result = ApplyResult(plan, False, failures, False, tuple(all_repl),
                                     tuple(timings + [("total", time.monotonic() - t0)]), 0)
                first = failures[0]
                rules = f"; removed by {', '.join(first.rules)}" if first.rules else ""
                more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
                err = VerificationFailed(
                    f"verification failed, every change rolled back: {first.kind} {first.name}"
                    f" ({first.distribution or 'unowned'}): {first.error}{rules}{more}"
                )
                err.result = result  # type: ignore[attr-defined]
                raise err
            for step in late:
                _do_step(txn, step)
    except KeyboardInterrupt as exc:
        _rollback(txn)
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        raise Interrupted("interrupted: every change was rolled back; the environment is as before",
                          int(signum)) from None
    except VerificationFailed:
        raise
    except BaseException:
        _rollback(txn)
        raise

    # Commit: from here on, recover finishes the run instead of undoing it.
    t = time.monotonic()
    txn.journal["state"] = "committing"
    txn.save()
    if progress:
        progress("committing")
    _commit(txn)
    # A __pycache__ shared by several distributions' top-level modules loses its files in
    # several actions (one per owner, so each RECORD is rewritten) and is left empty: it goes.
    emptied = {a.path.rsplit("/", 1)[0] for a in plan.actions
               if a.rule == "bytecode" and a.kind != "dir" and "/" in a.path}
    for d in sorted(emptied, reverse=True):
        if d.rsplit("/", 1)[-1] == "__pycache__":
            with contextlib.suppress(OSError):
                os.rmdir(root / d)
    timings.append(("commit", time.monotonic() - t))
    timings.append(("total", time.monotonic() - t0))
    return ApplyResult(plan, True, (), True if verifier is not None else None, tuple(all_repl),
                       tuple(timings), records_rewritten)


def _do_step(txn: _Txn, step: dict[str, str]) -> None:
    src = txn.root / step["path"]
    dst = txn.stash / step["stash"]
    if step["op"] == "move":
        check_under_root(txn.root, step["path"])
        os.rename(src, dst)
    elif step["op"] == "replace":
        check_under_root(txn.root, step["path"])
        mode = stat.S_IMODE(os.lstat(src).st_mode)
        os.rename(src, dst)
        new = txn.sdir / step["new"]
        os.chmod(new, mode)
        os.rename(new, src)
    else:  # pragma: no cover - journal written by this module only
        raise PruneError(f"unknown journal step {step['op']!r}")


def _undo_step(root: Path, sdir: Path, step: dict[str, str]) -> bool:
    src = root / step["path"]
    dst = sdir / "stash" / step["stash"]
    if not os.path.lexists(dst):
        return False
    if step["op"] == "replace" and os.path.lexists(src):
        os.unlink(src)
    os.rename(dst, src)
    return True


def _rollback(txn: _Txn) -> int:
    undone = 0
    for step in reversed(txn.journal.get("steps", [])):
        if _undo_step(txn.root, txn.sdir, step):
            undone += 1
    _rmtree(txn.sdir)
    return undone


def _commit(txn: _Txn) -> None:
    _delete_tree(txn.stash)
    prepared = txn.sdir / "prepared"
    if prepared.exists():
        _rmtree(prepared)
    (txn.sdir / JOURNAL).unlink()
    _rmtree(txn.sdir)


def recover(env: Environment) -> RecoverResult:
    """Finish or undo an interrupted run from its journal.

    A run that was preparing, staging or verifying is rolled back (the environment returns
    to what it was); a run that was committing is finished. With no journal, nothing happens.
    """
    sdir = state_dir(env)
    path = sdir / JOURNAL
    if not path.exists():
        # Without a journal nothing was ever moved: the journal is written before the first
        # move and removed only after the stash is gone. What is left is scaffolding.
        stash = sdir / "stash"
        if stash.is_dir() and not stash.is_symlink() and any(stash.iterdir()):
            raise PruneError(f"{stash}: holds files but there is no journal; inspect it by hand, "
                             "then remove it")
        if sdir.exists():
            _rmtree(sdir)
        return RecoverResult("nothing", 0, f"{env.root}: nothing to recover")
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PruneError(f"{path}: journal unreadable ({exc}); inspect {sdir} by hand") from exc
    txn = _Txn(env.root, sdir, sdir / "stash", journal)
    if journal.get("state") == "committing":
        _commit(txn)
        return RecoverResult("committed", 0, f"{env.root}: finished the interrupted prune")
    undone = _rollback(txn)
    return RecoverResult("rolled-back", undone,
                         f"{env.root}: rolled back an interrupted prune ({undone} moves undone)")
