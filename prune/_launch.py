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
from typing import TYPE_CHECKING, NoReturn, Optional

from ._start import COMPLETE_VAR, STARTED, SUBCOMMANDS, Launch

if TYPE_CHECKING:
    from .scan import FindWalk

__all__ = ["main"]


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
