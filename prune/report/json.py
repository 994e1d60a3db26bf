"""The JSON report: the summary as it is (keys in the summary's order, never sorted: a
reader diffing two reports sees sections where it expects them).

Named like the standard library's module, as in pipdeptree's ``_render/json.py``: imports
are absolute, so ``import json`` below is the standard library's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["render_json"]


def render_json(data: Mapping[str, Any]) -> str:
    """``data`` (from :func:`prune.report.summarise`) as indented JSON, UTF-8 names unescaped."""
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
