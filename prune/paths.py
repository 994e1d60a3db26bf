"""Path arithmetic inside an environment: every path venv-prune handles is a POSIX path
relative to the environment's root (``lib/python3.11/site-packages/yaml/__init__.py``), and a
site-packages directory is one such path (``""`` when the target itself is a site-packages
directory, e.g. ``pip install --target``). This module is the one place that turns a path into
"its site-packages and the rest"; nothing else slices ``site + "/"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

__all__ = ["site_relative", "top_entry", "under_site"]


def under_site(path: str, site: str) -> Optional[str]:
    """``path`` relative to the site-packages directory ``site``, or None when it lies outside.

    >>> under_site("lib/python3.11/site-packages/yaml/__init__.py", "lib/python3.11/site-packages")
    'yaml/__init__.py'
    >>> under_site("bin/python", "")
    'bin/python'
    """
    if not site:
        return path
    prefix = site.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def site_relative(path: str, sites: Sequence[str]) -> Optional[tuple[str, str]]:
    """``(site, path relative to it)`` for the first of ``sites`` that holds ``path``, else None."""
    for site in sites:
        sub = under_site(path, site)
        if sub is not None:
            return site, sub
    return None


def top_entry(path: str, sites: Sequence[str]) -> str:
    """The entry directly inside a site-packages directory that holds ``path``, with its site
    (``lib/python3.11/site-packages/yaml``); outside every site, the first path component."""
    found = site_relative(path, sites)
    if found is None:
        return path.split("/", 1)[0]
    site, sub = found
    head = sub.split("/", 1)[0]
    return f"{site}/{head}" if site else head
