"""Import traces: run a command with every Python process traced, and the trace file format.

A trace records what a real run of the application reached inside an environment: modules
imported, files opened, directories listed, shared libraries loaded and distribution metadata
read. ``--keep-from`` turns it into an allowlist and the ``minimal`` profile into the licence
to remove what was not reached (issue 5).

How a run is traced: :func:`run_trace` starts the command with a private temporary directory
first on PYTHONPATH. That directory holds ``sitecustomize.py`` from ``prune/_trace_hook/``,
which every Python process inheriting the variables imports at start-up - the command, its
subprocesses, multiprocessing workers (spawn, fork, forkserver), server workers. It installs
an audit hook (PEP 578), appends records to one JSON-lines file per process and chain-loads
the ``sitecustomize`` it shadows. PYTHONDONTWRITEBYTECODE=1 keeps the traced run from writing
bytecode caches, so the environment is byte-identical afterwards.

The trace file (schema ``venv-prune-trace/1``) is JSON with keys in this order::

    {
      "schema": "venv-prune-trace/1",
      "root": "/opt/venv",                  # where it was traced (information only)
      "python_version": "3.12",             # the environment's, "" when unknown
      "commands": [                         # in the order they were traced
        {"argv": ["python", "-m", "app"], "cwd": "/src", "exit_code": 0, "processes": 2}
      ],
      "modules": {"app": "lib/python3.12/site-packages/app/__init__.py",
                  "zope": null},            # null: a namespace package (no file)
      "files": ["lib/python3.12/site-packages/certifi/cacert.pem", ...],
      "dirs": ["lib/python3.12/site-packages", ...],
      "libraries": ["lib/python3.12/site-packages/markupsafe/_speedups.cpython-312-...so"],
      "distributions": ["certifi", "requests"]
    }

Every path is a real path (symlinks resolved) relative to the root, POSIX, and only paths
under the root that still exist after the run are kept. Lists are sorted, ``modules`` is
sorted by name. ``files`` holds files opened or memory-mapped (bytecode caches included);
``dirs`` directories listed, which says the directory must exist, not that any of its content
is needed (see :meth:`Trace.reached_paths`); ``libraries`` shared objects loaded (extension
modules, their vendored ``*.libs``, ctypes); ``distributions`` the canonical names (PEP 503)
of distributions whose dist-info or egg-info files were opened. ``exit_code`` is the command's
status as a shell reports it (128+N for signal N); ``processes`` how many Python processes were traced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name

from . import _tmp
from .env import Environment
from .errors import TraceError, UsageError

__all__ = [
    "TRACE_SCHEMA",
    "Trace",
    "TraceRun",
    "TracedCommand",
    "command_environ",
    "load_trace",
    "merge",
    "parse_trace",
    "run_trace",
    "write_trace",
]

TRACE_SCHEMA = "venv-prune-trace/1"

_HOOK_DIR = "_trace_hook"
_HOOK_FILE = "sitecustomize.py"
_ENV_OUT = "VENV_PRUNE_TRACE_OUT"
_ENV_ROOT = "VENV_PRUNE_TRACE_ROOT"
_METADATA_DIR = re.compile(r"^([^-/]+)(?:-[^/]*)?\.(?:dist-info|egg-info)$")


@dataclass(frozen=True)
class TracedCommand:
    """One traced command: ``argv`` as given, the absolute ``cwd`` it ran in, its exit code
    (128+N for signal N) and how many Python processes were traced while it ran."""

    argv: tuple[str, ...]
    cwd: str
    exit_code: int
    processes: int = 0


@dataclass(frozen=True)
class Trace:
    """What one or more traced runs reached in an environment (see the module docstring).

    The plain constructor trusts its input: sorted, de-duplicated, root-relative POSIX paths;
    ``modules`` sorted by name. :func:`parse_trace` validates, :func:`merge` combines.
    """

    root: str
    python_version: str = ""
    commands: tuple[TracedCommand, ...] = ()
    modules: tuple[tuple[str, str | None], ...] = ()
    files: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    distributions: tuple[str, ...] = ()

    def reached_paths(self) -> frozenset[str]:
        """Every root-relative path the trace reached: module files, files opened, directories
        listed and libraries loaded.

        A directory here stands for itself (the run listed it, so it must keep existing), not
        for its subtree: botocore lists all 400+ ``botocore/data/<service>`` directories while
        it reads one service's model. To ask "did the run use anything under X", match
        prefixes against :meth:`used_paths` instead.
        """
        return self.used_paths() | frozenset(self.dirs)

    def used_paths(self) -> frozenset[str]:
        """The files whose content the run used: module files, files opened or memory-mapped,
        libraries loaded (no directories)."""
        module_files = (path for _, path in self.modules if path is not None)
        return frozenset((*module_files, *self.files, *self.libraries))

    def module_names(self) -> frozenset[str]:
        """Names of the modules imported from the environment (packages and submodules)."""
        return frozenset(name for name, _ in self.modules)

    def module_files(self) -> dict[str, str | None]:
        """Module name -> root-relative file (None for a namespace package)."""
        return dict(self.modules)

    def traced_commands(self) -> tuple[TracedCommand, ...]:
        """The commands traced, in order: what ``minimal`` re-runs as checks."""
        return self.commands

    def to_dict(self) -> dict[str, object]:
        """The trace as JSON-ready data, keys in the documented order."""
        return {
            "schema": TRACE_SCHEMA,
            "root": self.root,
            "python_version": self.python_version,
            "commands": [
                {
                    "argv": list(c.argv),
                    "cwd": c.cwd,
                    "exit_code": c.exit_code,
                    "processes": c.processes,
                }
                for c in self.commands
            ],
            "modules": dict(self.modules),
            "files": list(self.files),
            "dirs": list(self.dirs),
            "libraries": list(self.libraries),
            "distributions": list(self.distributions),
        }

    def to_json(self) -> str:
        """The trace file's text: deterministic, two-space indented, newline-terminated."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class TraceRun:
    """The outcome of :func:`run_trace`: the command's exit code (128+N for signal N), the
    trace (merged with ``append_to`` when given) and how many Python processes were traced
    (0 means the hook never ran: the command used no Python of this environment, or ran it
    with ``-I``/``-E``/``-S`` or a scrubbed environment)."""

    exit_code: int
    trace: Trace
    processes: int


# -- building and combining ------------------------------------------------------------------


def _distribution_names(paths: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for part in path.split("/"):
            m = _METADATA_DIR.match(part)
            if m:
                names.add(canonicalize_name(m.group(1)))
                break
    return names


def _build(
    *,
    root: str,
    python_version: str,
    commands: Sequence[TracedCommand],
    modules: Mapping[str, str | None],
    files: Iterable[str],
    dirs: Iterable[str],
    libraries: Iterable[str],
    distributions: Iterable[str] = (),
) -> Trace:
    """A normalised Trace: sorted, de-duplicated, commands de-duplicated by (argv, cwd)."""
    files = set(files)
    libraries = set(libraries)
    dirs = set(dirs)
    # A file that is a library is listed once, as a library.
    files -= libraries
    dists = set(distributions) | _distribution_names(files)
    unique: dict[tuple[tuple[str, ...], str], TracedCommand] = {}
    for command in commands:
        # The same command traced again replaces its earlier result but keeps its place.
        unique[(command.argv, command.cwd)] = command
    return Trace(
        root=root,
        python_version=python_version,
        commands=tuple(unique.values()),
        modules=tuple(sorted(modules.items())),
        files=tuple(sorted(files)),
        dirs=tuple(sorted(dirs)),
        libraries=tuple(sorted(libraries)),
        distributions=tuple(sorted(dists)),
    )


def _merge_modules(
    *sources: Iterable[tuple[str, str | None]],
) -> tuple[dict[str, str | None], set[str]]:
    """One file per module name, and the other files seen for a name (which stay reached)."""
    merged: dict[str, str | None] = {}
    displaced: set[str] = set()
    for source in sources:
        for name, path in source:
            old = merged.get(name)
            # Deterministic whatever the order: a file beats null, the smaller path wins.
            if name not in merged or (path is not None and (old is None or path < old)):
                merged[name] = path
                if old is not None:
                    displaced.add(old)
            elif path is not None and path != old:
                displaced.add(path)
    return merged, displaced


def merge(a: Trace, b: Trace) -> Trace:
    """Combine two traces (``--append``): the union of everything reached, ``a``'s commands
    then ``b``'s (a command traced in both keeps ``a``'s place and ``b``'s result), and
    ``b``'s root and Python version (the latest run's). A module name found with two files
    keeps the smaller path; the other stays reached, in ``files``."""
    modules, displaced = _merge_modules(a.modules, b.modules)
    return _build(
        root=b.root or a.root,
        python_version=b.python_version or a.python_version,
        commands=(*a.commands, *b.commands),
        modules=modules,
        files=(*a.files, *b.files, *displaced),
        dirs=(*a.dirs, *b.dirs),
        libraries=(*a.libraries, *b.libraries),
        distributions=(*a.distributions, *b.distributions),
    )


# -- reading and writing trace files -----------------------------------------------------------


def _check_path(value: object) -> bool:
    if not isinstance(value, str) or not value or "\\" in value or "\0" in value:
        return False
    pure = PurePosixPath(value)
    return not pure.is_absolute() and ".." not in pure.parts and str(pure) == value


def parse_trace(text: str, *, source: str = "trace") -> Trace:
    """Parse and validate a trace file's text.

    :param source: how to name the file in error messages.
    :raises TraceError: not JSON, not a venv-prune trace, another schema version, or
        malformed fields (every problem is collected, the first ones are named).
    """
    fix = "re-create it with `venv-prune trace PATH -o FILE -- CMD`"
    fields = _TraceFields(_trace_data(text, source, fix))
    commands = fields.commands()
    modules = fields.modules()
    dists = fields.distributions()
    trace = _build(
        root=fields.string("root"),
        python_version=fields.string("python_version"),
        commands=commands,
        modules=modules,
        files=fields.paths("files"),
        dirs=fields.paths("dirs"),
        libraries=fields.paths("libraries"),
        distributions=(canonicalize_name(d) for d in dists),
    )
    problems = fields.problems
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TraceError(f"{source}: malformed trace: {problems[0]}{more}; {fix}")
    return trace


def _trace_data(text: str, source: str, fix: str) -> dict[str, Any]:
    """The JSON object of a trace file of this venv-prune's schema.

    :raises TraceError: not JSON, no "schema" key, or another schema.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TraceError(f"{source}: not a trace file (invalid JSON: {exc}); {fix}") from exc
    if not isinstance(data, dict) or "schema" not in data:
        raise TraceError(f'{source}: not a venv-prune trace (no "schema" key); {fix}')
    if data["schema"] != TRACE_SCHEMA:
        raise TraceError(
            f"{source}: trace schema {data['schema']!r} is not {TRACE_SCHEMA!r}, the one this "
            f"venv-prune reads; {fix}"
        )
    return data


class _TraceFields:
    """Reads a trace's fields, each checked; a malformed field reads as empty and its
    problem is appended to ``problems`` (in the order the fields are read)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def string(self, key: str) -> str:
        value = self.data.get(key, "")
        if not isinstance(value, str):
            self.problems.append(f"{key!r} must be a string")
            return ""
        return value

    def paths(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.problems.append(f"{key!r} must be a list of paths")
            return []
        bad = [v for v in value if not _check_path(v)]
        if bad:
            self.problems.append(f"{key!r} holds {bad[0]!r}, not a relative POSIX path")
            return []
        return value

    def commands(self) -> list[TracedCommand]:
        commands: list[TracedCommand] = []
        raw_commands = self.data.get("commands", [])
        if not isinstance(raw_commands, list):
            self.problems.append("'commands' must be a list")
            raw_commands = []
        for i, c in enumerate(raw_commands):
            ok = (
                isinstance(c, dict)
                and isinstance(c.get("argv"), list)
                and bool(c["argv"])
                and all(isinstance(a, str) for a in c["argv"])
                and isinstance(c.get("cwd"), str)
                and isinstance(c.get("exit_code"), int)
                and isinstance(c.get("processes", 0), int)
            )
            if not ok:
                self.problems.append(f"commands[{i}] needs argv (strings), cwd and exit_code")
                continue
            commands.append(
                TracedCommand(tuple(c["argv"]), c["cwd"], c["exit_code"], c.get("processes", 0))
            )
        return commands

    def modules(self) -> dict[str, str | None]:
        modules: dict[str, str | None] = {}
        raw_modules = self.data.get("modules", {})
        if not isinstance(raw_modules, dict):
            self.problems.append("'modules' must map module names to paths")
            return modules
        for name, path in raw_modules.items():
            if not name or (path is not None and not _check_path(path)):
                self.problems.append(f"module {name!r} has {path!r}, not a relative POSIX path")
                break
            modules[name] = path
        return modules

    def distributions(self) -> list[str]:
        dists = self.data.get("distributions", [])
        if not isinstance(dists, list) or not all(isinstance(d, str) for d in dists):
            self.problems.append("'distributions' must be a list of names")
            return []
        return dists


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read and validate a trace file.

    :raises TraceError: the file is missing or unreadable, or :func:`parse_trace` rejects it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TraceError(
            f"{path}: no such trace file; record one with `venv-prune trace PATH -o {path} -- CMD`"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TraceError(f"{path}: cannot read the trace file ({reason})") from exc
    return parse_trace(text, source=str(path))


def write_trace(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Write ``trace`` to ``path`` atomically (a temporary file beside it, then rename).

    :raises TraceError: the file cannot be written.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(trace.to_json())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise TraceError(f"{path}: cannot write the trace ({exc.strerror or exc})") from exc


# -- running a traced command --------------------------------------------------------------


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def command_environ(env: Environment, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment a command runs in "using" ``env``: its ``bin/`` first on PATH
    and VIRTUAL_ENV set for a venv, the root on PYTHONPATH for a bare site-packages/--target
    directory. ``minimal``'s re-runs of traced commands should use the same.

    :param base: the environment to start from (default: this process's ``os.environ``).
    """
    environ = dict(os.environ if base is None else base)
    scripts = env.root / (env.scripts_dir or "bin")
    if scripts.is_dir():
        path = environ.get("PATH")
        environ["PATH"] = str(scripts) + (os.pathsep + path if path else "")
    if env.kind == "venv":
        environ["VIRTUAL_ENV"] = str(env.root)
    if env.kind == "site-packages":
        old = environ.get("PYTHONPATH")
        environ["PYTHONPATH"] = str(env.root) + (os.pathsep + old if old else "")
    return environ


def _hook_source() -> bytes:
    """The hook's text, shipped as package data (read through importlib.resources, so a
    zipped install works too)."""
    try:
        return (resources.files(__package__ or "prune") / _HOOK_DIR / _HOOK_FILE).read_bytes()
    except (OSError, TypeError, ValueError):
        # prune loaded as a namespace package (no __init__ yet, or split editable install).
        return (Path(__file__).parent / _HOOK_DIR / _HOOK_FILE).read_bytes()


def _collect(
    out_dir: Path, root: Path
) -> tuple[int, dict[str, str | None], set[str], set[str], set[str]]:
    """Merge every process's records; keep paths that exist under the root after the run."""
    processes = 0
    modules: list[tuple[str, str | None]] = []
    found: dict[str, set[str]] = {"file": set(), "dir": set(), "library": set()}
    for record_file in sorted(out_dir.glob("*.jsonl")):
        processes += 1
        with open(record_file, encoding="ascii", errors="replace") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed process
                if not isinstance(record, list) or not record:
                    continue
                kind = record[0]
                if kind == "module" and len(record) == 3 and isinstance(record[1], str):
                    path = record[2]
                    if path is None or _check_path(path):
                        modules.append((record[1], path))
                elif kind in found and len(record) == 2 and _check_path(record[1]):
                    found[kind].add(record[1])

    def exists(rel: str) -> bool:
        return os.path.lexists(root / rel)

    merged, displaced = _merge_modules(modules)
    found["file"] |= displaced
    kept_modules = {n: p for n, p in merged.items() if p is None or exists(p)}
    files, dirs, libraries = (set(filter(exists, found[k])) for k in ("file", "dir", "library"))
    return processes, kept_modules, files, dirs, libraries


def run_trace(
    env: Environment,
    command: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    append_to: Trace | None = None,
) -> TraceRun:
    """Run ``command`` using ``env`` with every Python process it starts traced.

    The command inherits stdin/stdout/stderr and runs with :func:`command_environ` plus
    PYTHONDONTWRITEBYTECODE=1 and the hook on PYTHONPATH. Nothing is written into the
    environment. A command that fails still yields its trace.

    :param command: argv; the program is looked up on the command's PATH (``python`` and
        console scripts resolve to the environment's ``bin/``).
    :param cwd: the working directory (default: the current one).
    :param append_to: an earlier trace to merge this run into.
    :returns: the exit code (128+N when killed by signal N), the trace and the number of
        Python processes traced.
    :raises UsageError: empty command, missing cwd, or a temporary directory inside the
        environment.
    :raises TraceError: the command could not be started.
    """
    argv = tuple(os.fspath(a) for a in command)
    if not argv or not argv[0]:
        raise UsageError(
            "no command to trace; give it after --, e.g. "
            "`venv-prune trace /opt/venv -o trace.json -- python -m app`"
        )
    workdir = Path(os.path.abspath(cwd if cwd is not None else os.curdir))
    if not workdir.is_dir():
        raise UsageError(f"{cwd}: no such working directory for the traced command")
    root = env.root
    with _tmp.TemporaryDirectory("trace") as tmp:
        if _is_under(os.path.realpath(tmp), str(root)):
            raise UsageError(
                f"the temporary directory {tmp} lies inside the environment {root}; "
                "set TMPDIR to a directory outside it"
            )
        hook_dir = Path(tmp, "hook")
        out_dir = Path(tmp, "out")
        hook_dir.mkdir()
        out_dir.mkdir()
        (hook_dir / _HOOK_FILE).write_bytes(_hook_source())
        returncode = _run_traced(argv, workdir, _traced_environ(env, hook_dir, out_dir), root)
        exit_code = 128 - returncode if returncode < 0 else returncode
        processes, modules, files, dirs, libraries = _collect(out_dir, root)

    run = _build(
        root=str(root),
        python_version=(
            "{}.{}".format(*env.python_version) if env.python_version is not None else ""
        ),
        commands=[TracedCommand(argv, str(workdir), exit_code, processes)],
        modules=modules,
        files=files,
        dirs=dirs,
        libraries=libraries,
    )
    trace = merge(append_to, run) if append_to is not None else run
    return TraceRun(exit_code=exit_code, trace=trace, processes=processes)


def _traced_environ(env: Environment, hook_dir: Path, out_dir: Path) -> dict[str, str]:
    """:func:`command_environ` with the hook first on PYTHONPATH, no bytecode written, and
    where the hook writes what it records (``out_dir``) and which root it records under."""
    environ = command_environ(env)
    old_path = environ.get("PYTHONPATH")
    environ["PYTHONPATH"] = str(hook_dir) + (os.pathsep + old_path if old_path else "")
    environ["PYTHONDONTWRITEBYTECODE"] = "1"
    environ[_ENV_OUT] = str(out_dir)
    environ[_ENV_ROOT] = str(env.root)
    return environ


def _run_traced(argv: tuple[str, ...], workdir: Path, environ: dict[str, str], root: Path) -> int:
    """Run the command to its end; its return code (negative: killed by that signal).

    :raises TraceError: the command could not be started.
    """
    try:
        proc = subprocess.Popen(argv, cwd=workdir, env=environ)
    except OSError as exc:
        raise TraceError(
            f"{argv[0]}: cannot start the command to trace ({exc.strerror or exc}); "
            f"check the command, or that it is in {root}/bin"
        ) from exc
    try:
        return proc.wait()
    except BaseException:
        # Ctrl-C reaches the whole foreground process group: give CMD time to end.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
