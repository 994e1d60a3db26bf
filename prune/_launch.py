"""The process boundary: the ``venv-prune`` command's entry point (also ``python -m prune``).

Everything that concerns the process rather than the prune happens here, around
:func:`prune.cli.main.main` (which returns the exit code and never exits itself):

* The walk starts first. Python needs 0.1-0.2 s to import click, packaging, pathspec and
  importlib-metadata; the walk of the environment (GNU ``find`` in a process of its own, see
  :class:`prune.scan.FindWalk`) needs nothing of them, so it runs on the other core while they
  load. Only this module and the light part of the package (:mod:`prune.env`,
  :mod:`prune.scan`) are imported before it starts. The walk is handed to the command
  (:class:`Launch`), and closed here if no scan took it.
* The cyclic garbage collector is paused for the whole command (see :mod:`prune._gc`).
* The process ends with ``os._exit`` once the output is flushed (:func:`_exit_now`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, Optional

if TYPE_CHECKING:
    from .scan import FindWalk

__all__ = ["main", "Launch", "SUBCOMMANDS", "COMPLETE_VAR", "STARTED"]


def _process_started() -> float:
    """When this process started, on the :func:`time.perf_counter` clock: from the kernel's
    record of it (``/proc/self/stat`` field 22, in clock ticks since boot, against
    ``/proc/uptime``), so the report's time includes starting Python and the imports before
    this line, as ``time`` and a build log's timestamps count them (issue 17: the header said
    23.5 s of a 59.4 s run). Elsewhere, or if /proc cannot be read: now."""
    now = time.perf_counter()
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - age if 0 <= age < 60 else now


#: The process's start as the command sees it (the report's time counts from here).
STARTED = _process_started()

#: click's shell completion: ``_VENV_PRUNE_COMPLETE=bash_source venv-prune`` prints the
#: script; while it is set the command completes words and prunes nothing.
COMPLETE_VAR = "_VENV_PRUNE_COMPLETE"

#: The subcommands' names. A first argument that is one of them is that subcommand, even
#: where a directory of that name exists (write ``./graph`` to prune it).
SUBCOMMANDS = frozenset({"prune", "profiles", "recover", "trace", "graph", "pack", "libs"})


@dataclass(frozen=True)
class Launch:
    """What the process boundary hands the command: when the process started (on the
    :func:`time.perf_counter` clock; the report's time counts from here) and the walk of the
    environment it began, if any (for the prune's scan: :func:`prune.scan.scan`)."""

    started: Optional[float] = None
    walk: Optional[FindWalk] = None


def main() -> NoReturn:
    """Console-script entry point (also ``python -m prune``): run the command, then exit."""
    from ._gc import paused_gc

    args = sys.argv[1:]
    walk = _prestart(args)
    try:
        from .cli.main import main as cli_main

        # GC: one short run; the collector would only re-walk the inventory and the plan.
        with paused_gc():
            code = cli_main(args, launch=Launch(started=STARTED, walk=walk))
    finally:
        if walk is not None:
            walk.close()  # a walk the command never scanned (bad input, --help, --output)
    _exit_now(code)


def _prestart(args: list[str]) -> Optional[FindWalk]:
    """Start the walk when the first argument is a directory (the command line then prunes
    it; a subcommand's name is that subcommand). Anything unusual is left to the command line,
    which reports it."""
    if (not args or args[0].startswith("-") or args[0] in SUBCOMMANDS or COMPLETE_VAR in os.environ
            or not os.path.isdir(args[0])):
        return None
    from .env import locate
    from .errors import PruneError
    from .scan import prestart

    try:
        return prestart(locate(args[0]))
    except (PruneError, OSError):
        return None


def _exit_now(code: int) -> NoReturn:
    """End the process without Python freeing every object one by one first.

    After a plan of a 100k-file environment that teardown took 0.12 s, a tenth of a dry
    run's planning time. By now every file is closed, every pool and subprocess waited for,
    and nothing registers an exit handler; only the output needs flushing. (mypy ends the
    same way, for the same reason.)
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader has gone
            code = code or 1
    os._exit(code)
