"""Decide what goes: a pure function of (inventory, profile, options, source reader).

Every decision carries its reason (rule id, pattern, profile, owning distribution). Keep
always beats remove: protections (metadata, .pth, sourceless bytecode, .mo catalogs, the
knowledge base), keep rules, traces and the import check are applied before any removal
rule can take a file. The only input read from files is source code, through the
:class:`SourceReader` passed in (the pipeline's reads the disk; tests pass an in-memory
one), so dry-run and real run share this plan exactly.

One module per step, in the order :func:`build_plan` takes them:

- ``options``: :class:`PlanOptions`, what the user asked beyond the profile;
- ``sources``: the :class:`SourceReader` protocol, and readers over given bytes;
- ``rules``: the plan's rules compiled for matching;
- ``distributions``: which distributions go whole (the graph, fed with imports and runs);
- ``state``: what the planner knows of each file while it decides;
- ``decide``: the per-file pass (which rule claims a file, what protects it);
- ``protect``: protections, and evidence that kept code reads a file;
- ``traced``: what traces keep, and what trace-gated profiles remove;
- ``importcheck``: the import check's fixpoint;
- ``collapse``: per-file decisions into actions, and RECORD updates;
- ``build``: the steps in order; ``explain``: why a path goes or stays.
"""

from __future__ import annotations

from .build import build_plan
from .distributions import root_distributions
from .explain import explain, in_environment
from .options import PlanOptions, check_options, check_strings
from .rules import remove_pattern_lists
from .sources import MemorySources, SourceReader

__all__ = ["MemorySources", "PlanOptions", "SourceReader", "build_plan", "check_options", "check_strings",
           "explain", "in_environment", "remove_pattern_lists", "root_distributions"]
