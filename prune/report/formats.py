"""The report formats and the one entry point that renders a plan in any of them."""

from __future__ import annotations

from .._gc import paused_gc
from ..model import Plan
from .extras import Extras
from .json import render_json
from .markdown import render_markdown
from .summary import summarise
from .text import render_text

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "markdown")


def render(plan: Plan, fmt: str = "text", extras: Extras = Extras(), *, verbose: bool = False) -> str:
    """Render ``plan`` (with what a real run added in ``extras``) as text, json or markdown.

    An unknown ``fmt`` renders text (the command line only passes one of :data:`FORMATS`).
    ``verbose`` lists everything in text (every distribution, every action, info diagnostics).
    """
    # Summarising allocates a few objects per file and per action and frees none until done.
    with paused_gc():
        data = summarise(plan, extras)
        if fmt == "json":
            return render_json(data)
        if fmt == "markdown":
            return render_markdown(data)
        return render_text(data, verbose=verbose)
