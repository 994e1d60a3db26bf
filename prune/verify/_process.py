"""The child processes of verification: how they are started, killed and summed up in a line,
and the user's ``--check`` commands, which are such a process each.

Every child runs in a session of its own, so that it and whatever it started die together
(:func:`kill_group`), from a scratch directory outside the environment, with the environment
variables of :func:`child_env`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .._signals import signal_name

__all__ = ["MAX_ERROR", "Result", "child_env", "has_ended", "kill_group", "run_check", "status", "tail_line"]

#: Characters of an error line kept (a traceback's last line can be a whole repr).
MAX_ERROR = 2000


@dataclass(frozen=True)
class Result:
    """What one task or check gave: ``error`` is "" when ``ok``; ``timed_out`` lets the pool
    decide whether a hang is worth a second try; ``before``: the tasks (indexes) its
    interpreter ran before it, in order."""

    ok: bool
    error: str
    timed_out: bool
    before: tuple[int, ...] = ()


def status(returncode: int) -> str:
    """"exit status 3" or "SIGSEGV" for a process's return code."""
    if returncode >= 0:
        return f"exit status {returncode}"
    return signal_name(-returncode)


def tail_line(path: Path) -> str:
    """The last non-empty line of a (possibly huge) output file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            data = fh.read()
    except OSError:
        return ""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:MAX_ERROR] if lines else ""


def kill_group(proc: subprocess.Popen[bytes]) -> int:
    """Kill a process we started in its own session, and whatever it started there; reap it
    and return its status (a process that had already ended keeps its own status).

    The group is signalled only while the leader is unreaped: its pid, and so the group id,
    cannot have been reused by an unrelated process yet.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except OSError:
            pass
    return proc.wait()


def has_ended(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it (see :func:`kill_group`)."""
    if proc.returncode is not None:
        return True
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # no waitid (some BSDs): reaping is the only way to ask
        return proc.poll() is not None
    try:
        return waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def child_env(env_root: Path, *, for_check: bool) -> dict[str, str]:
    """The environment variables a probe or a check runs with.

    Both: the environment's ``bin/`` first on PATH, VIRTUAL_ENV set for a venv, PYTHONHOME
    unset (as ``activate`` does), no bytecode written (``PYTHONDONTWRITEBYTECODE`` reaches
    Python subprocesses too), a non-interactive matplotlib backend. Probes also drop every
    other ``PYTHON*`` variable (the interpreter runs with ``-I`` anyway); a user's check keeps
    them, e.g. a PYTHONPATH naming the application.
    """
    env = dict(os.environ)
    for key in list(env):
        if key == "PYTHONHOME" or (not for_check and key.startswith("PYTHON")):
            del env[key]
    bin_dir = env_root / "bin"
    if bin_dir.is_dir():
        env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", os.defpath)
    if (env_root / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(env_root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def run_check(command: str, *, env_root: Path, timeout: float, workdir: Path) -> Result:
    """Run one ``--check`` command through the shell in the current directory; its output
    goes to ``workdir/check.out``, whose last line ends the error of a failed check."""
    out_path = workdir / "check.out"
    with open(out_path, "wb") as out:
        try:
            proc = subprocess.Popen(
                command, shell=True, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=child_env(env_root, for_check=True),
                start_new_session=True,
            )
        except OSError as exc:
            return Result(False, f"cannot run the shell: {exc}", False)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return Result(False, f"timed out after {timeout:g}s", True)
        except BaseException:
            kill_group(proc)
            raise
    if returncode == 0:
        return Result(True, "", False)
    line = status(returncode) if returncode > 0 else f"killed by {status(returncode)}"
    last = tail_line(out_path)
    return Result(False, line + (f": {last}" if last else ""), False)
