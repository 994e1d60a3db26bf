"""Execute a plan as a transaction: stage, verify, then commit or roll back.

Staging moves every planned path by ``rename`` into a stash inside venv-prune's state
directory (same filesystem, outside every import path: never beside packages in
site-packages, where pip's ``~name`` leftovers polluted metadata, pip issues 11849 and 7307).
A journal (:mod:`.journal`) is written before the first move and at every change of phase, so
after a crash :func:`recover` can undo a run that was staging or verifying, or finish one that
was committing. Replacements (rewritten RECORD files, stripped libraries; :mod:`.replace`) are
staged the same way: the original goes to the stash, the new file is renamed into place.

The steps of :func:`apply_plan`, in order: check every path, open the state directory
(journal "preparing"), capture the baseline, prepare replacements (journal "staging", durable),
stage, verify (journal "verifying"), stage the bytecode caches, commit (journal "committing",
durable; delete the stash). Any failure before the commit rolls every step back, newest first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from .._lock import env_lock
from .._signals import SignalGate, signal_name, signal_number
from ..env import Environment
from ..errors import ApplyFailed, Interrupted, PendingJournal, PruneError, UnsafePath, VerificationFailed
from ..model import Failure, Plan, Progress
from ._delete import delete_tree, rmtree
from ._staging import (
    SPLITS,
    Restorer,
    SplitLog,
    check_under_root,
    copy_name,
    mount_points,
    move_file,
    plain_relative,
    stage,
)
from .journal import (
    ASIDE,
    JOURNAL,
    SCHEMA,
    clear_state,
    create_state,
    ensure_no_pending,
    load_journal,
    state_dir,
    state_is_ours,
    state_kind,
    write_journal,
)
from .replace import PREPARED, Prepare, Replacement, prepare_replacements

__all__ = ["ApplyResult", "RecoverResult", "Verifier", "apply_plan", "recover"]


class Verifier(Protocol):
    """Checks the environment before staging and after; ``after`` returns the breaks."""

    def before(self) -> None: ...

    def after(self) -> Sequence[Failure]: ...


@dataclass(frozen=True)
class ApplyResult:
    """What a transaction did: ``committed``; the ``failures`` verification found (then
    nothing is committed); ``verified`` None without a verifier; ``timings`` (step, seconds)
    in order, ``total`` last; ``records_rewritten`` how many RECORD files were replaced."""

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


@dataclass
class _Txn:
    """One transaction's state: where it works, its journal (the steps, in order), the log of
    directories it split, and the timings and progress lines of :func:`apply_plan`."""

    root: Path
    sdir: Path
    stash: Path
    journal: dict[str, Any] = field(default_factory=dict)
    log: Optional[SplitLog] = None
    #: root-relative paths found recreated during a rollback and moved into ``sdir/aside``
    moved_aside: list[str] = field(default_factory=list)
    progress: Optional[Progress] = None
    timings: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def save(self, durable: bool = True) -> None:
        write_journal(self.sdir, self.journal, durable=durable)

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(line)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record how long the body took as ``step`` (only when it finishes)."""
        t = time.monotonic()
        yield
        self.timings.append((step, time.monotonic() - t))

    def aside_note(self) -> str:
        """What a rollback moved aside, for the end of a message ("" when nothing)."""
        if not self.moved_aside:
            return ""
        return (f"; {len(self.moved_aside)} path(s) recreated meanwhile were moved aside to "
                f"{self.sdir / ASIDE} (first: {self.moved_aside[0]})")


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
    prepare: Optional[Prepare] = None,
    progress: Optional[Progress] = None,
) -> ApplyResult:
    """Carry out ``plan`` transactionally, holding the environment's lock throughout.

    :param verifier: checks before and after staging; any failure rolls everything back.
    :param prepare: called with a scratch directory on the stash's filesystem to produce
        files to swap in after the baseline (e.g. stripped copies of libraries); they are
        staged like removals.
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
        sdir = state_dir(env)
        state_is_ours(sdir)  # refuse a foreign state directory before anything else
        txn = _Txn(env.root, sdir, sdir / "stash", progress=progress)
        with SignalGate() as gate:
            return _transact(txn, plan, gate, verifier, prepare)


def _transact(txn: _Txn, plan: Plan, gate: SignalGate, verifier: Optional[Verifier],
              prepare: Optional[Prepare]) -> ApplyResult:
    """Stage, verify and commit, or roll back; see :func:`apply_plan`. A signal rolls back
    until the commit starts; from then on (and during any rollback) it waits in ``gate``."""
    try:
        _open(txn, plan)
        if verifier is not None:
            txn.say("verifying: baseline imports before pruning")
            with txn.timed("baseline"):
                verifier.before()
        replacements, records_rewritten = _prepare(txn, plan, prepare)
        failures = _stage_and_verify(txn, plan, verifier)
        gate.defer = True  # from the "committing" journal on, a signal waits for the commit
        if failures:
            _fail_verification(txn, plan, failures, replacements)
    except KeyboardInterrupt as exc:
        gate.defer = True
        _abort(txn)
        raise Interrupted("interrupted: every change was rolled back; the environment is as before"
                          + txn.aside_note(), signal_number(exc)) from None
    except VerificationFailed:
        raise
    except OSError as exc:
        gate.defer = True
        _abort(txn)
        raise ApplyFailed(f"could not apply the plan: {_os_error_line(exc)}; every change was rolled "
                          f"back, the environment is as before{txn.aside_note()}") from exc
    except BaseException:
        gate.defer = True
        _abort(txn)
        raise
    with txn.timed("commit"):
        _commit_run(txn, plan)
    txn.timings.append(("total", time.monotonic() - txn.started))
    if gate.caught:
        raise Interrupted(f"{signal_name(gate.caught[0])} arrived during the commit, which was finished "
                          "first: the prune is complete and nothing is pending", gate.caught[0])
    return ApplyResult(plan, True, (), True if verifier is not None else None, tuple(replacements),
                       tuple(txn.timings), records_rewritten)


def _open(txn: _Txn, plan: Plan) -> None:
    """Create the state directory and an empty stash, and journal every planned removal as a
    ``move`` step (state "preparing": nothing has moved yet, so it need not be durable)."""
    create_state(txn.sdir)
    txn.stash.mkdir()
    txn.log = SplitLog(txn.sdir / SPLITS, mounts=mount_points(txn.root))
    txn.journal = {"schema": SCHEMA, "root": str(txn.root), "state": "preparing",
                   "steps": [{"op": "move", "path": a.path, "stash": f"m{i:06d}"}
                             for i, a in enumerate(plan.actions)],
                   "pid": os.getpid(), "started": time.time()}
    txn.save(durable=False)


def _prepare(txn: _Txn, plan: Plan, prepare: Optional[Prepare]) -> tuple[list[Replacement], int]:
    """Prepare stripped files and rewritten RECORDs in the state directory and journal them
    (state "staging", durable) before the first move. Returns (replacements, RECORDs rewritten)."""
    prepared = txn.sdir / PREPARED
    prepared.mkdir(exist_ok=True)
    replacements: list[Replacement] = []
    if prepare is not None:
        with txn.timed("prepare"):
            replacements = list(prepare(prepared))
    steps, records_rewritten = prepare_replacements(txn.root, txn.sdir, plan, replacements)
    for rep in replacements:
        check_under_root(txn.root, rep.path)
    txn.journal["steps"] = txn.journal["steps"] + steps
    txn.journal["state"] = "staging"
    txn.save()
    return replacements, records_rewritten


def _stage_and_verify(txn: _Txn, plan: Plan, verifier: Optional[Verifier]) -> tuple[Failure, ...]:
    """Stage every step, verify, then stage the bytecode caches; returns the failures (with
    the caches still in place when there are any)."""
    steps = txn.journal["steps"]
    txn.say(f"staging {sum(1 for st in steps if st['op'] == 'move')} removals")
    # Bytecode caches go last, after verification: a cache never decides whether a module
    # imports (a __pycache__ file without its source is ignored), and with the caches still
    # there the imports after pruning cost what they cost before, instead of compiling every
    # kept source.
    bytecode = {a.path for a in plan.actions if a.rule == "bytecode"} if verifier is not None else set()
    late = [st for st in steps if st["op"] == "move" and st["path"] in bytecode]
    with txn.timed("stage"):
        for step in steps:
            if step["op"] != "move" or step["path"] not in bytecode:
                _do_step(txn, step)
    if verifier is None:
        return ()
    txn.journal["state"] = "verifying"
    assert txn.log is not None
    txn.log.sync()
    txn.save(durable=False)
    txn.say("verifying: imports after pruning")
    with txn.timed("verify"):
        failures = tuple(verifier.after())
    if not failures:
        for step in late:
            _do_step(txn, step)
    return failures


def _fail_verification(txn: _Txn, plan: Plan, failures: tuple[Failure, ...],
                       replacements: list[Replacement]) -> None:
    """Roll back and raise VerificationFailed, blaming the rules that removed what broke."""
    from ..blame import blame

    failures = tuple(Failure(f.kind, f.name, f.distribution, f.error, blame(plan, f)) for f in failures)
    _abort(txn)
    result = ApplyResult(plan, False, failures, False, tuple(replacements),
                         tuple(txn.timings + [("total", time.monotonic() - txn.started)]), 0)
    first = failures[0]
    rules = f"; removed by {', '.join(first.rules)}" if first.rules else ""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    err = VerificationFailed(
        f"verification failed, every change rolled back: {first.kind} {first.name}"
        f" ({first.distribution or 'unowned'}): {first.error}{rules}{more}{txn.aside_note()}"
    )
    err.result = result  # type: ignore[attr-defined]
    raise err


def _commit_run(txn: _Txn, plan: Plan) -> None:
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
    txn.say("committing")
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
    """Carry out one journal step: a ``move`` into the stash, or a ``replace`` (the original
    into the stash, the prepared file into place with the original's owner and mode)."""
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
    if state_kind(txn.sdir) != "ours":
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
    clear_state(txn.sdir)
    return undone


def _commit(txn: _Txn) -> None:
    """Delete the stash and the prepared files, then the journal, then the state directory."""
    if os.path.isdir(txn.stash) and not os.path.islink(txn.stash):
        delete_tree(txn.stash)
    prepared = txn.sdir / PREPARED
    if prepared.exists():
        rmtree(prepared)
    (txn.sdir / JOURNAL).unlink()
    clear_state(txn.sdir)


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
    if not state_is_ours(sdir):
        return RecoverResult("nothing", 0, f"{env.root}: nothing to recover")
    path = sdir / JOURNAL
    if not path.exists():
        # Without a journal nothing was ever moved: the journal is written before the first
        # move and removed only after the stash is gone. What is left is scaffolding.
        stash = sdir / "stash"
        if stash.is_dir() and not stash.is_symlink() and any(stash.iterdir()):
            raise PruneError(f"{stash}: holds files but there is no journal; inspect it by hand, "
                             "then remove it")
        clear_state(sdir)
        return RecoverResult("nothing", 0, f"{env.root}: nothing to recover")
    journal, steps = load_journal(path)
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
                         + txn.aside_note())
