"""Byte-compile what stays, with the target interpreter, for reproducible layers.

``--bytecode compile`` rebuilds the ``__pycache__`` directories that pruning dropped. Three
choices make the result fit a Docker layer:

- The *target* interpreter compiles (``env.python -m compileall``): only it knows its magic
  number, cache tag and grammar, whatever Python runs venv-prune.
- Invalidation mode ``unchecked-hash`` (PEP 552): the header holds a hash of the source, not
  its mtime, so two builds of the same sources at the same path give the same bytes, and the
  interpreter never re-reads the source to validate the cache (files in an image do not
  change). ``-f`` rewrites any timestamp-based ``.pyc`` still present, which compileall would
  otherwise keep when its header matches.
- ``PYTHONHASHSEED=0``: ``frozenset`` constants are marshalled in hash order (bpo-37596), so a
  random seed would make their ``.pyc`` differ from build to build.

The ``.pyc`` files embed the path they were compiled at (``co_filename``). The import system
replaces it with the real source path at load time, so tracebacks stay right after a copy to
another prefix; only byte-for-byte equality needs the same build path.

The compile is a transaction of its own, because it runs after the prune has committed
(issue 16: a SIGKILL mid-compile left a mix of old and new ``.pyc`` nobody knew about, and a
SIGTERM left compileall writing into the environment after venv-prune had exited):

1. a journal ``{"state": "compiling"}`` is written in a scratch directory beside the
   environment's files (:func:`scratch_dir`), and compileall writes every cache *into that
   scratch tree* (``PYTHONPYCACHEPREFIX``, Python 3.8+), never into the environment;
2. the journal becomes ``{"state": "placing", "moves": [...]}`` and each cache is renamed into
   its ``__pycache__``; then the scratch directory is removed.

A run killed while compiling leaves the environment as the prune left it; one killed while
placing is finished. Either way the next run, or ``venv-prune recover``, settles it
(:func:`finish_pending`). compileall and its workers run in a process group of their own,
marked with ``VENV_PRUNE_COMPILE=<scratch>`` in their environment: Ctrl-C or SIGTERM kills the
group before the error is raised, and :func:`finish_pending` kills any process still carrying
the mark (a worker orphaned by a SIGKILL) before it removes the scratch tree.

Start-up is measured as the wall clock of ``python -B -c "import a, b, c, d, e"`` over the five
top-level packages with the most Python source that import, best of three, before and after
compiling (``-B``: the measurement writes nothing).
"""

from __future__ import annotations

import ast
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from . import _tmp
from ._lock import env_lock
from ._signals import first_only, handling, raise_interrupt, signal_name, signal_number
from .env import Environment
from .errors import Busy, Interrupted, PruneError, UsageError
from .report.units import human_bytes

__all__ = ["INVALIDATION_MODE", "compile_environment", "finish_pending", "scratch_dir"]

INVALIDATION_MODE = "unchecked-hash"

_STARTUP_MODULES = 5
_STARTUP_CANDIDATES = 15
_STARTUP_RUNS = 3
_TIMEOUT = 600.0
_PROBE_MARK = "@@venv-prune-importable@@"
_ERROR_LINE = re.compile(r"^\*\*\* Error compiling (.+)\.\.\.$")
_SKIP_SUFFIXES = (".dist-info", ".egg-info", ".data", ".libs")
SCRATCH_NAME = ".venv-prune-bytecode"
_JOURNAL = "journal.json"
_MARK = "VENV_PRUNE_COMPILE"

# Runs in the target interpreter: which candidates import, in order, at most N of them.
# Packages may print while importing, so the answer is one marked line.
_PROBE = (
    "import importlib, sys\n"
    "found = []\n"
    "for name in sys.argv[2:]:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except BaseException:\n"
    "        continue\n"
    "    found.append(name)\n"
    "    if len(found) >= int(sys.argv[1]):\n"
    "        break\n"
    f"sys.stdout.write('\\n{_PROBE_MARK}' + ','.join(found) + '\\n')\n"
)


def compile_environment(env: Environment, *, optimize: int = 0, measure: bool = True) -> dict[str, Any]:
    """Byte-compile every source in the environment's site-packages with its own interpreter.

    Runs ``env.python -B -s -m compileall -q -f -j 0 --invalidation-mode unchecked-hash [-o N]``
    on the site-packages directories (for a Python below 3.9, which has no ``-o``, the level is
    given as ``-O``/``-OO`` to the interpreter). compileall decides what to compile (every
    ``*.py``, symlinked directories not followed); a file that does not compile (for example
    Python 2 syntax in a template) is listed in ``failed`` and the rest still compile.

    :param env: the environment; ``env.python`` runs compileall and the start-up measurement.
    :param optimize: 0, 1 or 2; levels 1 and 2 write ``.opt-N.pyc`` files, which the
        interpreter only reads when it runs with ``-O``/``-OO`` (or ``PYTHONOPTIMIZE``), so the
        start-up measurement runs with that level too.
    :param measure: time the start-up before and after compiling (costs seven interpreter
        runs that import the five largest packages); when False both times are None.
    :returns: ``files`` (``.pyc`` files written), ``bytes_added`` (site-packages bytes after
        minus before), ``optimize``, ``invalidation_mode``, ``startup_seconds_before`` and
        ``startup_seconds_after`` (best of three, in seconds to the millisecond; None when not
        measured or nothing could be imported),
        ``startup_modules`` (what the measurement imports), ``failed`` (sources compileall
        could not compile, relative to the root, sorted) and ``summary`` (one line of text).
    :raises UsageError: the environment has no interpreter, or ``optimize`` is not 0, 1 or 2.
    :raises PruneError: the interpreter could not run compileall at all (it is missing, or
        compileall failed without naming a file); nothing was placed.
    :raises Interrupted: SIGINT or SIGTERM arrived: compileall's process group was killed and
        the caches discarded (or, once placing had begun, all placed); the message says which.
    :raises Busy: another run holds the environment's lock or is compiling it.
    """
    python, version = _check_can_compile(env, optimize)
    sites = [p for p in env.site_paths() if p.is_dir()]
    # Measure with the level compiled for: .opt-N.pyc files are read only under -O/-OO.
    flags = optimize_flags(optimize)
    finish_pending(env)
    scratch = scratch_dir(env)

    modules: list[str] = []
    before_seconds: Optional[float] = None
    # The environment's lock for the whole compile: a second run meanwhile is Busy (exit 75).
    # SIGTERM and SIGINT raise, so that the children are killed and the scratch tree settled
    # before the run exits; a second signal must not cut that clean-up short.
    with env_lock(env.root), handling(first_only(raise_interrupt)):
        try:
            if measure and sites:
                modules = _importable(python, env, sites, flags)
                before_seconds = _time_imports(python, env, sites, flags, modules)
            pyc_before, bytes_before = _snapshot(sites)
            scratch.mkdir()
            _write_journal(scratch, {"state": "compiling", "pid": os.getpid()})
            failed = _run_compileall(python, env, sites, optimize, version, flags, scratch)
            moves = _placements(scratch, sites)
            _write_journal(scratch, {"state": "placing", "pid": os.getpid(), "moves": moves})
            _place(scratch, moves)
            _remove_scratch(scratch)
        except BaseException as exc:
            placed = _settle(scratch)
            if not isinstance(exc, KeyboardInterrupt):
                raise
            raise _interrupted(signal_number(exc), placed) from exc
    pyc_after, bytes_after = _snapshot(sites)
    files = sum(1 for path, sig in pyc_after.items() if pyc_before.get(path) != sig)

    after_seconds = _time_imports(python, env, sites, flags, modules) if measure and sites else None
    summary: dict[str, Any] = {
        "files": files,
        "bytes_added": bytes_after - bytes_before,
        "optimize": optimize,
        "invalidation_mode": INVALIDATION_MODE,
        "startup_seconds_before": before_seconds,
        "startup_seconds_after": after_seconds,
        "startup_modules": modules,
        "failed": failed,
    }
    summary["summary"] = _describe(summary, measured=measure)
    return summary


def _check_can_compile(env: Environment, optimize: int) -> tuple[str, tuple[int, int]]:
    """The interpreter to compile with and its (major, minor).

    :raises UsageError: no interpreter, a Python below 3.8, or ``optimize`` not 0, 1 or 2.
    """
    if env.python is None:
        raise UsageError(f"{env.root}: no interpreter to byte-compile with; pass --python EXE "
                         "or use --bytecode drop")
    if optimize not in (0, 1, 2):
        raise UsageError(f"--optimize {optimize}: must be 0, 1 or 2")
    python = str(env.python)
    version = env.python_version or _target_version(python)
    if version < (3, 8):
        raise UsageError(f"{env.root}: --bytecode compile needs a Python 3.8+ environment "
                         f"(this one is {version[0]}.{version[1]}); use --bytecode drop or keep")
    return python, version


def _interrupted(signum: int, placed: bool) -> Interrupted:
    """What a signal during the compile ends the run with: the prune is complete, and the
    caches are either all in place or none were written."""
    state = ("the bytecode caches had been compiled and are all in place" if placed
             else "bytecode compile was stopped and discarded, so no caches were written "
                  "(Python writes them on first import; run again with --bytecode compile "
                  "to write them now)")
    return Interrupted(f"{signal_name(signum)} after the prune was committed: the prune "
                       f"is complete; {state}", signum)


def scratch_dir(env: Environment) -> Path:
    """Where a compile writes its journal and caches before they are placed: inside the
    root (``.venv-prune-bytecode``), or beside a bare site-packages directory, so that it
    is on the environment's filesystem and outside every import path."""
    if env.kind == "site-packages":
        return env.root.parent / f"{SCRATCH_NAME}-{env.root.name}"
    return env.root / SCRATCH_NAME


def finish_pending(env: Environment) -> Optional[str]:
    """Settle a compile that a killed run left: finish placing its caches, or discard them.

    :returns: one line saying what was done, or None when there was nothing to settle.
    :raises Busy: the run that is compiling is still alive.
    """
    scratch = scratch_dir(env)
    if not os.path.lexists(scratch):
        return None
    if scratch.is_symlink() or not scratch.is_dir():
        raise UsageError(f"{scratch}: not venv-prune's bytecode scratch directory (a link or a "
                         "file); remove it by hand")
    with env_lock(env.root):
        journal = _read_journal(scratch)
        pid = int(journal.get("pid", 0) or 0)
        if pid and pid != os.getpid() and _tmp.pid_alive(pid):
            raise Busy(f"another venv-prune run (pid {pid}) is byte-compiling {env.root}; "
                       "wait for it to finish")
        placed = _settle(scratch)
    return (f"finished placing the bytecode caches of an interrupted compile in {env.root}" if placed
            else f"discarded the unfinished bytecode compile of an interrupted run in {env.root}")


def _settle(scratch: Path) -> bool:
    """Stop what still compiles into ``scratch``, finish a placing that started (True) or
    leave the environment without the new caches (False), and remove the scratch tree."""
    _kill_marked(scratch)
    journal = _read_journal(scratch)
    placed = journal.get("state") == "placing"
    if placed:
        _place(scratch, [tuple(m) for m in journal.get("moves", ())])
    _remove_scratch(scratch)
    return placed


def _read_journal(scratch: Path) -> dict[str, Any]:
    try:
        data = json.loads((scratch / _JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # killed before or while the first journal was written: nothing placed yet
    return data if isinstance(data, dict) else {}


def _write_journal(scratch: Path, data: Mapping[str, Any]) -> None:
    """Replace the journal atomically and durably (a rename is the commit point)."""
    tmp = scratch / (_JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, scratch / _JOURNAL)
    fd = os.open(scratch, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _placements(scratch: Path, sites: Sequence[Path]) -> list[tuple[str, str]]:
    """(cache in the scratch tree, its place in a ``__pycache__``) for every cache written.

    Under ``PYTHONPYCACHEPREFIX`` the cache of ``/a/b/c.py`` is ``PREFIX/a/b/c.TAG.pyc``
    (``importlib.util.cache_from_source``); its place is ``/a/b/__pycache__/c.TAG.pyc``.
    A place outside the site directories is never written (a link compileall followed).
    """
    prefix = scratch / "prefix"
    roots = [os.path.realpath(s) for s in sites]
    moves: list[tuple[str, str]] = []
    for dirpath, _dirs, files in os.walk(prefix):
        source_dir = "/" + os.path.relpath(dirpath, prefix) if dirpath != str(prefix) else "/"
        real = os.path.realpath(source_dir)
        if not any(real == r or real.startswith(r + os.sep) for r in roots):
            continue
        for name in sorted(files):
            if name.endswith(".pyc"):
                moves.append((os.path.join(dirpath, name), os.path.join(source_dir, "__pycache__", name)))
    return sorted(moves)


def _place(scratch: Path, moves: Sequence[tuple[str, str]]) -> None:
    """Rename each cache into place; a move already done (its source gone) is skipped, so a
    placing interrupted at any point can be run again to the end."""
    for src, dst in moves:
        if not src.startswith(str(scratch) + os.sep):
            continue  # a journal that names something else is not ours to act on
        if not os.path.lexists(src):
            continue
        parent = os.path.dirname(dst)
        if not os.path.isdir(parent):
            os.mkdir(parent)
        try:
            os.replace(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = dst + ".venv-prune-tmp"
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            os.unlink(src)


def _remove_scratch(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    if os.path.lexists(scratch):  # something still wrote into it: try once more
        _kill_marked(scratch)
        shutil.rmtree(scratch)


def _kill_marked(scratch: Path) -> None:
    """SIGKILL every process of ours that carries this scratch directory's mark in its
    environment (compileall, its pool workers, a forkserver), and wait until they are gone.
    Only /proc can tell (Linux); elsewhere the live run's process group kill is all there is."""
    mark = f"{_MARK}={scratch}\0".encode()
    deadline = time.monotonic() + 10.0
    while True:
        found = []
        try:
            pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
        except OSError:
            return
        for pid in pids:
            if pid == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if b"\0" + mark in b"\0" + fh.read() + b"\0":
                        found.append(pid)
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _target_version(python: str) -> tuple[int, int]:
    """The target's (major, minor), asked of the interpreter when the files do not say."""
    proc = run_interpreter([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], env=_clean_env())
    try:
        major, minor = proc.stdout.strip().split(".")
        return int(major), int(minor)
    except ValueError as exc:
        raise PruneError(f"{python}: could not ask the interpreter for its version "
                         f"({proc.stderr.strip()[-200:] or 'no output'})") from exc


def optimize_flags(optimize: int) -> list[str]:
    return ["-" + "O" * optimize] if optimize else []


def _clean_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """This process's environment without PYTHON* variables that would change what the
    target compiles or imports (PYTHONPATH, PYTHONPYCACHEPREFIX, PYTHONOPTIMIZE, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra or {})
    return env


def run_interpreter(args: Sequence[str], *, env: Mapping[str, str],
         mark: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
    """Run the target interpreter from an empty directory, so that ``-m`` and ``-c`` put no
    stray module on ``sys.path``, in a process group of its own that is killed whole when
    anything (Ctrl-C, SIGTERM, a timeout) stops the wait. ``mark``: the scratch directory
    whose mark the children carry (see :func:`_kill_marked`)."""
    environ = dict(env)
    if mark is not None:
        environ[_MARK] = str(mark)
    with _tmp.TemporaryDirectory("bytecode") as cwd:
        try:
            proc = subprocess.Popen(list(args), cwd=cwd, env=environ, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                    errors="replace", start_new_session=True)
        except OSError as exc:
            raise PruneError(f"{args[0]}: cannot run the interpreter ({exc.strerror}); "
                             "pass a working one with --python EXE") from exc
        try:
            out, err = proc.communicate(timeout=_TIMEOUT)
        except BaseException:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
            if mark is not None:
                _kill_marked(mark)
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run_compileall(python: str, env: Environment, sites: Sequence[Path], optimize: int,
                    version: tuple[int, int], flags: Sequence[str], scratch: Path) -> list[str]:
    """Run compileall, writing every cache under ``scratch/prefix``; return the sources it
    could not compile, relative to the root."""
    if not sites:
        return []
    # -B: site.py imports what *.pth files name (_distutils_hack) before compileall starts;
    # without it that import would leave a timestamp-based .pyc of its own.
    args = [python, "-B", "-s"]
    if version < (3, 9):  # no -o before 3.9: compileall compiles at the interpreter's own level
        args += flags
    args += ["-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode", INVALIDATION_MODE]
    if optimize and version >= (3, 9):
        args += ["-o", str(optimize)]
    args += [str(s) for s in sites]
    try:
        proc = run_interpreter(args, env=_clean_env({"PYTHONHASHSEED": "0",
                                          "PYTHONPYCACHEPREFIX": str(scratch / "prefix")}),
                    mark=scratch)
    except subprocess.TimeoutExpired as exc:
        raise PruneError(f"compileall did not finish within {_TIMEOUT:.0f}s in {env.root}") from exc
    failed = sorted({_relative(path, env.root) for path in _failed_sources(proc.stdout)})
    if proc.returncode != 0 and not failed:
        detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")
        raise PruneError(f"compileall failed in {env.root}: {detail.splitlines()[-1][:300]}")
    return failed


def _failed_sources(output: str) -> list[str]:
    """The files named by compileall's ``*** Error compiling '...'...`` lines (the name is a
    Python repr)."""
    out: list[str] = []
    for line in output.splitlines():
        m = _ERROR_LINE.match(line.strip())
        if not m:
            continue
        try:
            name = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            name = m.group(1)
        out.append(str(name))
    return out


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _snapshot(sites: Sequence[Path]) -> tuple[dict[str, tuple[int, int, int]], int]:
    """Every ``.pyc`` under the site directories with (inode, size, mtime), and the total bytes
    of the regular files there. Symlinked directories are not entered, as compileall does not."""
    pyc: dict[str, tuple[int, int, int]] = {}
    total = 0
    for site in sites:
        for dirpath, _dirnames, filenames in os.walk(site):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                total += st.st_size
                if name.endswith(".pyc"):
                    pyc[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return pyc, total


def measure_env(env: Environment, sites: Sequence[Path]) -> dict[str, str]:
    # A --target or bare site-packages directory is not on the interpreter's path by itself.
    extra = {"PYTHONPATH": os.pathsep.join(str(s) for s in sites)} if env.kind == "site-packages" else {}
    return _clean_env(extra)


def _candidates(sites: Sequence[Path]) -> list[str]:
    """Top-level regular packages and modules, most Python source first (then by name)."""
    sizes: dict[str, int] = {}
    for site in sites:
        try:
            entries = sorted(os.scandir(site), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if entry.is_file(follow_symlinks=False) and name.endswith(".py"):
                mod = name[:-3]
                if mod.isidentifier():
                    sizes[mod] = sizes.get(mod, 0) + _size(entry.path)
                continue
            if (not entry.is_dir(follow_symlinks=False) or not name.isidentifier()
                    or name.endswith(_SKIP_SUFFIXES) or name == "__pycache__"
                    or not os.path.isfile(os.path.join(entry.path, "__init__.py"))):
                continue
            source = 0
            for dirpath, _dirs, files in os.walk(entry.path):
                source += sum(_size(os.path.join(dirpath, f)) for f in files if f.endswith(".py"))
            sizes[name] = sizes.get(name, 0) + source
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ranked[:_STARTUP_CANDIDATES]]


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _importable(python: str, env: Environment, sites: Sequence[Path], flags: Sequence[str]) -> list[str]:
    """The (up to five) largest candidates that import in the target interpreter, with ``-B``."""
    names = _candidates(sites)
    if not names:
        return []
    try:
        proc = run_interpreter([python, *flags, "-B", "-c", _PROBE, str(_STARTUP_MODULES), *names],
                    env=measure_env(env, sites))
    except subprocess.TimeoutExpired:
        return []
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_PROBE_MARK):
            return [n for n in line[len(_PROBE_MARK):].split(",") if n]
    return []


def _time_imports(python: str, env: Environment, sites: Sequence[Path], flags: Sequence[str],
                  modules: Sequence[str]) -> Optional[float]:
    """Best of three wall-clock runs of ``python -B -c "import <modules>"``; None when there
    is nothing to import or a run fails."""
    if not modules:
        return None
    args = [python, *flags, "-B", "-c", "import " + ", ".join(modules)]
    environ = measure_env(env, sites)
    best: Optional[float] = None
    for _ in range(_STARTUP_RUNS):
        start = time.perf_counter()
        try:
            proc = run_interpreter(args, env=environ)
        except subprocess.TimeoutExpired:
            return None
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            return None
        best = elapsed if best is None else min(best, elapsed)
    return None if best is None else round(best, 3)


def _describe(s: Mapping[str, Any], *, measured: bool) -> str:
    """``compiled 812 files (+4.1 MiB), start-up 0.42s -> 0.18s``."""
    added = int(s["bytes_added"])
    sign = "+" if added >= 0 else "-"
    level = f", -{'O' * s['optimize']}" if s["optimize"] else ""
    text = f"compiled {s['files']} files ({sign}{human_bytes(abs(added))}{level})"
    before, after = s["startup_seconds_before"], s["startup_seconds_after"]
    if before is not None and after is not None:
        text += f", start-up {before:.2f}s -> {after:.2f}s"
    elif measured:
        text += ", start-up not measured (nothing imported)"
    if s["failed"]:
        text += f"; {len(s['failed'])} source{'s' if len(s['failed']) != 1 else ''} did not compile"
    return text
