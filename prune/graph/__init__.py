"""Distributions as a graph: who requires whom, what the application needs, what can go.

- :mod:`.build` builds the requirement graph for the *target* interpreter and tells which
  distribution defines a module (pure);
- :mod:`.decide` turns it into one :class:`~prune.model.DistDecision` per distribution, each
  with the chain of reasons that keeps or removes it (pure; issue 4, DESIGN.md
  "Distributions as a graph", invariant 6);
- :mod:`.requirements` reads roots from a requirements file or a pyproject.toml (the only
  part that opens files).
"""

from .build import Edge, Graph, build_graph, provided_modules
from .decide import (
    SEEDED,
    GraphDecision,
    candidates_in,
    decide_distributions,
    dev_tool_reasons,
    every_requested_removed,
    installed_by_name,
)
from .requirements import project_name, roots_from_requirements

__all__ = [
    "SEEDED",
    "Edge",
    "Graph",
    "GraphDecision",
    "build_graph",
    "candidates_in",
    "decide_distributions",
    "dev_tool_reasons",
    "every_requested_removed",
    "installed_by_name",
    "project_name",
    "provided_modules",
    "roots_from_requirements",
]
