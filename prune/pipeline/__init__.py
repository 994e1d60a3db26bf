"""The whole job in one call: what the command line runs and what build scripts call for the
default behaviour, verification and all (the individual steps stay available for finer control).

    from prune import PruneRequest, run

    outcome = run(PruneRequest("/opt/venv", profile="aggressive", output="/opt/slim", max_size=500_000_000))

One module per part: :mod:`.request` (what is asked, what it did), :mod:`.inputs` (traces
and requirements files), :mod:`.job` (the prune, step by step), :mod:`.verifier` (what must
keep importing), :mod:`.stripping`, :mod:`.finish` (``--output``, ``--relocate``, ``--bytecode
compile``, the size gate).
"""

from __future__ import annotations

from ..model import Progress
from .job import run
from .request import Outcome, PruneRequest
from .verifier import ImportVerifier

__all__ = ["PruneRequest", "Outcome", "Progress", "run", "ImportVerifier"]
