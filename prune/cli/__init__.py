"""The command line (``venv-prune``): one module per command, :func:`main` in :mod:`.main`.

Re-exports only.
"""

from __future__ import annotations

from .main import cli, main
from .prune import parse_size, prune_command

__all__ = ["cli", "main", "parse_size", "prune_command"]
