"""The import probe that venv-prune runs inside the *target* environment's interpreter.

venv-prune never imports this module for its own use: :mod:`prune.verify.pool` reads its source and
hands it to the target interpreter with ``-c``, so no file is written anywhere near the
environment. The target may be any CPython 3.8+, so this file must run on Python 3.8 and use
only the standard library: no ``str.removeprefix``, no ``dict | dict``, and builtin generics
such as ``list[str]`` only inside annotations (never evaluated, thanks to the future import).

Usage: ``python -I -B -c SOURCE TASK_FD RESULT_FD [SITE_DIR ...]``

Protocol, one JSON object per line, on two pipes that are neither stdin nor stdout (imports
are free to print; the parent sends stdout to /dev/null):

- once set up, the worker writes ``{"ready": [major, minor, micro]}`` to RESULT_FD;
- it reads one task at a time from TASK_FD: ``{"kind": "import", "name": "pkg.mod"}`` or
  ``{"kind": "entry_point", "dist": "canonical-name", "group": "console_scripts",
  "name": "tool"}``;
- for each task it writes ``{"ok": true}`` or ``{"ok": false, "error": "<last traceback line>"}``;
- at end of file on TASK_FD it ends at once with ``os._exit(0)``: no atexit handlers, and no
  waiting for threads that an import started.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import site
import sys
import traceback
from typing import Any

_MAX_ERROR = 2000

# Bound early: an import may replace modules in sys.modules, but not these references.
_write = os.write
_dumps = json.dumps
_loads = json.loads
_exit = os._exit

_distributions: dict[str, Any] | None = None


def _error_line(exc: BaseException) -> str:
    """The last line of the exception's traceback, e.g. "ModuleNotFoundError: No module ..."."""
    try:
        text = "".join(traceback.format_exception_only(type(exc), exc))
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    except BaseException:  # noqa: BLE001 - a broken __str__ must not kill the worker
        lines = []
    line = lines[-1] if lines else type(exc).__name__
    return line[:_MAX_ERROR]


def _canonical(name: str) -> str:
    """PEP 503 normalisation, as prune.scan names distributions."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _find_distributions() -> dict[str, Any]:
    """Canonical name -> the first distribution importlib.metadata discovers on sys.path.

    Discovery (not a path to the dist-info) is deliberate: it is how console scripts and
    plugin systems find entry points at run time, so a missing METADATA or entry_points.txt
    shows up here as it would in production.
    """
    global _distributions
    if _distributions is None:
        from importlib import metadata

        found: dict[str, Any] = {}
        for dist in metadata.distributions():
            try:
                name = dist.metadata["Name"]
            except Exception:  # noqa: BLE001, S112 - unreadable metadata: not discoverable
                continue
            if name:
                found.setdefault(_canonical(name), dist)
        _distributions = found
    return _distributions


def _load_entry_point(dist_name: str, group: str, name: str) -> None:
    dist = _find_distributions().get(dist_name)
    if dist is None:
        raise LookupError(f"importlib.metadata finds no distribution {dist_name!r}")
    for entry_point in dist.entry_points:
        if entry_point.group == group and entry_point.name == name:
            entry_point.load()
            return
    raise LookupError(f"importlib.metadata finds no entry point {group}:{name} in {dist_name}")


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (_dumps(message, sort_keys=True) + "\n").encode("utf-8", "replace")
    while data:
        written = _write(fd, data)
        data = data[written:]


def _add_site_dirs(paths: list[str]) -> None:
    """Put extra site directories (a --target dir) first on sys.path, .pth files processed."""
    for path in reversed(paths):
        before = list(sys.path)
        site.addsitedir(path)
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    try:
        if task["kind"] == "import":
            importlib.import_module(task["name"])
        else:
            _load_entry_point(task["dist"], task["group"], task["name"])
    except BaseException as exc:  # noqa: BLE001 - SystemExit etc. from an import: a failure
        return {"ok": False, "error": _error_line(exc)}
    return {"ok": True}


def main(argv: list[str]) -> None:
    task_fd = int(argv[1])
    result_fd = int(argv[2])
    # Subprocesses that an import starts must not inherit the protocol pipes.
    os.set_inheritable(task_fd, False)
    os.set_inheritable(result_fd, False)
    _add_site_dirs(list(argv[3:]))
    sys.argv[:] = ["-c"]
    tasks = os.fdopen(task_fd, "r", encoding="utf-8")
    _send(result_fd, {"ready": list(sys.version_info[:3])})
    while True:
        line = tasks.readline()
        if not line:
            break
        _send(result_fd, _run_task(_loads(line)))
    _exit(0)


if __name__ == "__main__":
    main(sys.argv)
