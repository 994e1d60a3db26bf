"""What the process boundary knows before any command runs, shared by :mod:`prune._launch`
(which starts the process's work) and :mod:`prune.cli` (which receives it): when the process
started, the subcommands' names, click's completion variable, and the :class:`Launch` the
boundary hands to the command. It imports nothing heavy: :mod:`prune._launch` reads it before
the walk starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .scan import FindWalk

__all__ = ["COMPLETE_VAR", "STARTED", "SUBCOMMANDS", "Launch"]


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
