"""The ``venv-prune`` command's entry point: start walking the tree, then load the rest.

Python needs 0.1-0.2 s to import click, packaging, pathspec and importlib-metadata. The
walk of the environment (GNU ``find`` in a process of its own, see
:class:`prune.scan._FindWalk`) needs nothing of them, so it is started first and runs on
the other core while they load. Only this module and the light part of the package
(:mod:`prune.env`, :mod:`prune.scan`) are imported before it starts.
"""

from __future__ import annotations

import os
import sys
import time
from typing import NoReturn

__all__ = ["main", "SUBCOMMANDS", "COMPLETE_VAR", "STARTED"]

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


def main() -> NoReturn:
    """Console-script entry point (also ``python -m prune``)."""
    _prestart(sys.argv[1:])
    from .cli import main as cli_main

    cli_main()
    raise SystemExit(0)  # cli_main exits; this line only satisfies the type checker


def _prestart(args: list[str]) -> None:
    """Start the walk when the first argument is a directory (the command line then prunes
    it; a subcommand's name is that subcommand). Anything unusual is left to the command line,
    which reports it; a walk nobody scans is stopped before the process ends."""
    if (not args or args[0].startswith("-") or args[0] in SUBCOMMANDS or COMPLETE_VAR in os.environ
            or not os.path.isdir(args[0])):
        return
    from .env import locate
    from .errors import PruneError
    from .scan import prestart

    try:
        prestart(locate(args[0]))
    except (PruneError, OSError):
        return
