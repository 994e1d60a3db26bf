"""The probe interpreters: each runs many tasks, ``jobs`` of them pull from one queue.

A :class:`Worker` is one target interpreter running :mod:`._worker` (its source passed with
``-c``), fed one task at a time on a pipe, each with its own deadline. :func:`run_tasks` runs
every task in up to ``jobs`` workers; a failure counts only when its worker had run nothing
before (see there), so import order never produces a false alarm. A hung import is killed and
recorded as timed out; a worker that dies costs only the task it was running.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import queue
import select
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from . import _worker
from ._process import Result, child_env, has_ended, kill_group, status, tail_line
from .targets import EntryPointTarget, ModuleTarget

__all__ = ["FIRST_TRY_TIMEOUT", "Count", "Launcher", "StartFailed", "probe", "replay"]

#: Told (done, total) as each import or entry point is decided: the command's counter.
Count = Optional[Callable[[int, int], None]]

# An interpreter gets at least this long to start, whatever the per-import timeout.
_START_GRACE = 5.0
#: Seconds a module beside removed files (``first_try`` in :func:`prune.verify.capture_baseline`)
#: may take to import in the baseline: such a module adds coverage, and one that hangs (a
#: server started at import) must not cost the full per-import timeout; slower ones are just
#: not checked again.
FIRST_TRY_TIMEOUT = 20.0
# A worker that hears end-of-input but is still alive after this long is killed.
_EXIT_GRACE = 5.0
_POLL = 0.2


@lru_cache(maxsize=1)
def _worker_source() -> str:
    """The probe's source, handed to the target with ``-c`` (nothing written to disk)."""
    return inspect.getsource(_worker)


class StartFailed(Exception):
    """The interpreter did not start or did not report ready."""


class _TimedOut(Exception):
    pass


class _Stopped(Exception):
    """The caller was interrupted (Ctrl-C, SIGTERM): stop waiting at once."""


class _Died(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(returncode)
        self.returncode = returncode


def _death_message(returncode: int | None) -> str:
    if returncode is None:
        return "the interpreter stopped answering"
    if returncode < 0:
        return f"crashed the interpreter ({status(returncode)})"
    return f"ended the interpreter ({status(returncode)})"


class Launcher:
    """How to start a probe interpreter; shared read-only by every thread."""

    def __init__(self, python: Path, paths: Sequence[str], env_root: Path, workdir: Path,
                 timeout: float) -> None:
        self.python = python
        self.paths = tuple(paths)
        self.workdir = workdir
        self.timeout = timeout
        self.env = child_env(env_root, for_check=False)
        self._serial = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def stderr_path(self) -> Path:
        with self._lock:
            self._serial += 1
            return self.workdir / f"worker-{self._serial}.err"

    def start(self) -> Worker:
        """A ready worker. :raises StartFailed: with a one-line reason."""
        return Worker(self)


class Worker:
    """One probe interpreter, fed one task at a time."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.stderr_path = launcher.stderr_path()
        source = _worker_source()
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [str(launcher.python), "-I", "-B", "-c", source,
                     str(task_r), str(result_w), *launcher.paths],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    cwd=launcher.workdir, env=launcher.env, pass_fds=(task_r, result_w),
                    start_new_session=True,
                )
        except OSError as exc:
            for fd in (task_r, task_w, result_r, result_w):
                os.close(fd)
            raise StartFailed(f"cannot run {launcher.python}: {exc.strerror or exc}") from exc
        os.close(task_r)
        os.close(result_w)
        self.task_w: int | None = task_w
        self.result_r: int | None = result_r
        self.buffer = b""
        self.used = 0
        self.history: list[int] = []  # the tasks this interpreter ran, in order
        try:
            ready = self.receive(max(launcher.timeout, _START_GRACE))
            self.version = ".".join(str(v) for v in ready["ready"])
        except _Stopped:
            self.kill()
            raise
        except (_TimedOut, _Died, KeyError, TypeError) as exc:
            self.kill()
            if isinstance(exc, _TimedOut):
                reason = "did not start within the timeout"
            elif isinstance(exc, _Died) and exc.returncode is not None:
                reason = f"failed to start ({status(exc.returncode)})"
            else:
                reason = "failed to start"
            detail = tail_line(self.stderr_path)
            raise StartFailed(
                f"{launcher.python} {reason}" + (f": {detail}" if detail else "")
            ) from exc

    def run(self, payload: Mapping[str, str], timeout: float) -> dict[str, Any]:
        """Send one task and wait for its reply. :raises _TimedOut, _Died:"""
        assert self.task_w is not None
        self.used += 1
        data = (json.dumps(dict(payload), sort_keys=True) + "\n").encode("utf-8")
        try:
            os.write(self.task_w, data)
        except OSError as exc:  # the interpreter is gone (BrokenPipeError)
            raise _Died(kill_group(self.proc)) from exc
        return self.receive(timeout)

    def receive(self, timeout: float) -> dict[str, Any]:
        assert self.result_r is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if self.launcher.stop.is_set():
                raise _Stopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimedOut()
            readable, _, _ = select.select([self.result_r], [], [], min(remaining, _POLL))
            if readable:
                chunk = os.read(self.result_r, 65536)
                if not chunk:
                    # The interpreter is ending; a signal cannot change an exit under way.
                    raise _Died(kill_group(self.proc))
                self.buffer += chunk
            elif has_ended(self.proc):
                # Dead, yet the pipe is held open by a process the import forked.
                raise _Died(kill_group(self.proc))
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):  # something else wrote to the pipe
            raise _Died(None)
        return message

    def _close_fds(self) -> None:
        for name in ("task_w", "result_r"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def kill(self) -> None:
        kill_group(self.proc)
        self._close_fds()

    def close(self) -> None:
        """End the worker: end-of-input makes it ``os._exit(0)``; killed if it lingers."""
        if self.task_w is not None:
            os.close(self.task_w)
            self.task_w = None
        try:
            self.proc.wait(_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
        self._close_fds()




class _Pool:
    """Tasks, their results, and the threads that run them (see :func:`run_tasks`)."""

    def __init__(self, launcher: Launcher, payloads: Sequence[Mapping[str, str]], *,
                 recheck_timeouts: bool, count: Count, final_at_once: Sequence[bool]) -> None:
        self.launcher = launcher
        self.payloads = payloads
        self.recheck_timeouts = recheck_timeouts
        self.count = count
        self.final_at_once = final_at_once
        self.results: list[Result | None] = [None] * len(payloads)
        self.todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(payloads)):
            self.todo.put(index)
        self.errors: list[BaseException] = []
        self.finished_tasks = itertools.count(1)  # next() is atomic: the threads share it

    def at_once(self, index: int) -> bool:
        """Whether task ``index`` counts on its first failure (``final_at_once``)."""
        return index < len(self.final_at_once) and self.final_at_once[index]

    def attempt(self, worker: Worker, index: int) -> tuple[Result, bool]:
        """Run task ``index`` once: its result, and whether the worker is still usable."""
        limit = self.launcher.timeout
        if self.at_once(index):
            limit = min(limit, FIRST_TRY_TIMEOUT)
        try:
            reply = worker.run(self.payloads[index], limit)
        except _TimedOut:
            worker.kill()
            return Result(False, f"timed out after {limit:g}s", True), False
        except _Died as exc:
            worker.kill()
            return Result(False, _death_message(exc.returncode), False), False
        return Result(bool(reply.get("ok")), str(reply.get("error", "")), False), True

    def counts(self, result: Result, first: bool, index: int) -> bool:
        """Whether ``result`` is final: a success, a failure in a fresh interpreter, a
        timeout when timeouts are not re-checked, or any result of an ``at_once`` task."""
        return (result.ok or first or (result.timed_out and not self.recheck_timeouts)
                or self.at_once(index))

    def record(self, index: int, result: Result) -> None:
        self.results[index] = result
        if self.count is not None:
            self.count(next(self.finished_tasks), len(self.payloads))

    def run(self, jobs: int) -> list[Result]:
        """Start the threads, wait for them, and return one result per payload.

        :raises BaseException: what a thread raised unexpectedly, or the caller's interruption
            (then every interpreter is killed first).
        """
        # Completion is signalled by events, not Thread.join: a KeyboardInterrupt that lands
        # inside join() can leave the thread marked finished while it still runs (bpo-21822).
        finished = [threading.Event() for _ in range(max(1, min(jobs, len(self.payloads))))]
        for n, done in enumerate(finished):
            threading.Thread(target=_Puller(self).work, args=(done,), name=f"venv-prune-verify-{n}",
                             daemon=True).start()
        try:
            for done in finished:
                while not done.wait(_POLL):
                    pass
        except BaseException:
            # Ctrl-C or SIGTERM in the caller: stop promptly, kill the interpreters, re-raise.
            self.launcher.stop.set()
            for done in finished:
                done.wait()
            raise
        if self.errors:
            raise self.errors[0]
        return [r if r is not None else Result(False, "not run", False) for r in self.results]


class _Puller:
    """One thread of a :class:`_Pool`: takes tasks until the queue is empty, each run in this
    thread's current interpreter, which it replaces whenever it is spent."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.stop = pool.launcher.stop
        self.worker: Worker | None = None

    def work(self, done: threading.Event) -> None:
        try:
            while not self.stop.is_set():
                try:
                    index = self.pool.todo.get_nowait()
                except queue.Empty:
                    break
                self.task(index)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            self.pool.errors.append(exc)
        finally:
            try:
                if self.worker is not None:
                    if self.stop.is_set():
                        self.worker.kill()
                    else:
                        self.worker.close()
            finally:
                done.set()

    def task(self, index: int) -> None:
        """Run task ``index`` until its result counts (or the caller stops everything)."""
        while not self.stop.is_set():
            if self.worker is None:
                try:
                    self.worker = self.pool.launcher.start()
                except StartFailed as exc:
                    self.pool.results[index] = Result(False, str(exc), False)
                    return
            first = self.worker.used == 0
            before = tuple(self.worker.history)
            result, alive = self.pool.attempt(self.worker, index)
            if alive:
                self.worker.history.append(index)
            else:
                self.worker = None
            if self.pool.counts(result, first, index):
                self.pool.record(index, replace(result, before=before))
                return
            if self.worker is not None:  # tainted by earlier imports: retire it
                self.worker.close()
                self.worker = None


def run_tasks(launcher: Launcher, payloads: Sequence[Mapping[str, str]], *, jobs: int,
              recheck_timeouts: bool, count: Count = None,
              final_at_once: Sequence[bool] = ()) -> list[Result]:
    """Run every payload in up to ``jobs`` interpreters pulling from one queue.

    Many tasks share an interpreter, which makes checking fast, but an import can fail only
    because of what an earlier import in the same process did (e.g. pip importing the stdlib
    ``distutils`` before setuptools' entry points load). So a failure counts only when the task
    was the first one its interpreter ran: otherwise that interpreter is retired and the task
    runs again, first, in a fresh one, which then carries on with the queue. A genuinely broken
    module thus costs one extra interpreter start. A timed-out or dead interpreter is replaced
    the same way; without ``recheck_timeouts`` a timeout counts at once (the baseline does not
    wait twice for a hang it will ignore anyway). A task whose ``final_at_once`` entry is true
    counts on its first failure and its interpreter carries on, and gets at most
    :data:`FIRST_TRY_TIMEOUT` seconds.
    """
    pool = _Pool(launcher, payloads, recheck_timeouts=recheck_timeouts, count=count,
                 final_at_once=final_at_once)
    return pool.run(jobs)


def _payload(target: ModuleTarget | EntryPointTarget) -> dict[str, str]:
    """The task :mod:`._worker` reads for ``target``."""
    if isinstance(target, ModuleTarget):
        return {"kind": "import", "name": target.name}
    return {"kind": "entry_point", "dist": target.distribution, "group": target.group,
            "name": target.name}


def probe(launcher: Launcher, targets: Sequence[ModuleTarget | EntryPointTarget], *,
          jobs: int, recheck_timeouts: bool, count: Count = None,
          first_try: Collection[str] = ()) -> list[Result]:
    """Import each module and load each entry point of ``targets``; one result each, in order.
    A module named in ``first_try`` counts on its first failure (see :func:`run_tasks`)."""
    at_once = [isinstance(t, ModuleTarget) and t.name in first_try for t in targets]
    return run_tasks(launcher, [_payload(t) for t in targets], jobs=jobs,
                     recheck_timeouts=recheck_timeouts, count=count, final_at_once=at_once)


def replay(launcher: Launcher, before: Sequence[ModuleTarget | EntryPointTarget],
           target: ModuleTarget | EntryPointTarget) -> Optional[Result]:
    """Run ``before`` (results ignored), then ``target``, in one fresh interpreter: what
    ``target``'s interpreter had done when it succeeded in the baseline. None when an
    interpreter does not start, hangs or dies on the way (the failure then stands)."""
    try:
        worker = launcher.start()
    except StartFailed:
        return None
    try:
        for earlier in before:
            worker.run(_payload(earlier), launcher.timeout)
        reply = worker.run(_payload(target), launcher.timeout)
    except (_TimedOut, _Died):
        worker.kill()
        return None
    worker.close()
    return Result(bool(reply.get("ok")), str(reply.get("error", "")), False)
