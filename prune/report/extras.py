"""What only a real run knows, handed to the report beside the plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["Extras"]


@dataclass(frozen=True)
class Extras:
    """What only a real run knows: verification, timings, stripping, failures.

    A dry run passes the defaults, or the strip estimate and warnings. ``timings`` are
    ``(phase, seconds)`` pairs in run order, ``"total"`` among them when known; ``stripped``
    one ``{"path", "bytes_saved", ...}`` per ELF file (estimated in a dry run); ``max_size``
    the ``--max-size`` limit in bytes; ``startup`` what :mod:`prune.startup` measured;
    ``bytecode`` the summary of ``--bytecode compile`` (:func:`prune.bytecode.compile_environment`).
    """

    dry_run: bool = True
    verification: str = "not run"  # passed | failed | skipped: <why> | not run
    failures: tuple[dict[str, Any], ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    stripped: tuple[dict[str, Any], ...] = ()
    bytecode: Optional[dict[str, Any]] = None
    warnings: tuple[str, ...] = ()
    max_size: Optional[int] = None
    startup: Optional[dict[str, Any]] = None
    #: The layer rule (prune.layers.LAYER_RULE) when the environment lies on overlayfs.
    layer_note: Optional[str] = None
    # What verification covered (counts and what the plan removes on purpose, unverified).
    verified: Optional[dict[str, Any]] = None
