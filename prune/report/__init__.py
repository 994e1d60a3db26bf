"""Reports of a prune: a plan (dry run) or an applied result as text, JSON or Markdown. Pure.

:func:`summarise` turns a plan and what a real run added (:class:`Extras`) into plain data,
section by section (:mod:`.summary`); each output format has one renderer module that prints
that data (:mod:`.text`, :mod:`.json`, :mod:`.markdown`), so the formats always agree, and
:func:`render` picks one (:mod:`.formats`). This module only re-exports.
"""

from __future__ import annotations

from .extras import Extras
from .formats import FORMATS, render
from .summary import REPORT_SCHEMA, summarise
from .units import human_bytes

__all__ = ["REPORT_SCHEMA", "FORMATS", "Extras", "summarise", "render", "human_bytes"]
