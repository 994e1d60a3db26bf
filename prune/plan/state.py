"""What the planner knows about each file while it decides: :class:`FileState`, one per file
of the inventory, and :class:`Removal`, why a file goes.

Building the states is the first per-file step, and it runs over every file of the
environment (100k and more), so it is written to keep the per-file work in C: files are
sorted by path, so a site-packages directory's files are one slice of them, found by
bisection and cut with ``map`` rather than a Python statement per file.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from itertools import repeat
from operator import getitem, itemgetter
from typing import Any, NamedTuple, Optional

from .._match import Matcher
from ..model import FileEntry

__all__ = ["FileState", "Removal", "entry_field", "file_states", "indexes", "owners_of", "rule_removal",
           "site_top_files", "split_sites"]


def entry_field(name: str) -> itemgetter[Any]:
    """A getter of one :class:`~prune.model.FileEntry` field, by name, as fast as indexing
    (``map(entry_field("owner"), files)`` runs in C)."""
    return itemgetter(FileEntry._fields.index(name))


_PATH, _OWNER = entry_field("path"), entry_field("owner")


class Removal(NamedTuple):
    """Why a file goes. ``rule``: a rule id, ``distribution`` (its distribution goes),
    ``minimal-untraced`` or ``optional:<id>``; ``pattern``: the pattern to report ("": the
    rule's matcher names it when the action is made); ``profile``: the profile (or
    ``graph``/``command line``) that decided; ``owner``: the owning distribution;
    ``traced``: a trace licensed the removal."""

    rule: str
    pattern: str
    profile: str
    owner: str
    traced: bool


@lru_cache(maxsize=4096)
def rule_removal(rule: Matcher, owner: str) -> Removal:
    """The removal by ``rule`` of a file of ``owner`` (its pattern named later). Cached: tens
    of thousands of files share a few hundred (rule, owner) pairs."""
    return Removal(rule.rule.id, "", rule.rule.profile, owner, False)


class FileState:
    """What the planner has decided about one file so far (one per file: slotted).

    ``site``: its site-packages directory (None outside one); ``sub``: its path relative to
    that (or to the root); ``removal``: why it goes, None while it stays; ``remove_rule``:
    the removal rule that claimed it; ``fallback_rule``: when that rule is import-checked
    (tests/), the last earlier rule that is not, which applies if the check saves the file;
    ``saved_by``/``saved_reason``: what keeps it (a protection, a keep rule, evidence).
    """

    __slots__ = ("entry", "site", "sub", "owner", "remove_rule", "fallback_rule", "removal",
                 "saved_by", "saved_reason")

    def __init__(self, entry: FileEntry, site: Optional[str], sub: str, owner: str) -> None:
        self.entry = entry
        self.site = site
        self.sub = sub
        self.owner = owner
        self.remove_rule: Optional[Matcher] = None
        self.fallback_rule: Optional[Matcher] = None
        self.removal: Optional[Removal] = None
        self.saved_by = ""
        self.saved_reason = ""

    def save(self, by: str, reason: str) -> None:
        """The file stays, for ``reason``."""
        self.removal = None
        self.saved_by = by
        self.saved_reason = reason

    def gated_by_its_rule(self) -> bool:
        """Whether the file goes by the removal rule that claimed it (not by its distribution,
        a trace, or a fallback rule)."""
        rule = self.remove_rule
        return self.removal is not None and rule is not None and self.removal.rule == rule.rule.id


def indexes(items: list[Any], value: object) -> list[int]:
    """The positions of ``value`` in ``items``, found by list.index (a C loop): for values
    that are rare, in lists as long as the inventory."""
    found: list[int] = []
    with contextlib.suppress(ValueError):
        while True:
            found.append(items.index(value, found[-1] + 1 if found else 0))
    return found


def site_top_files(files: Sequence[FileEntry], sites: Sequence[str]) -> list[tuple[str, str]]:
    """(site, path) of every file directly inside a site-packages directory.

    ``files`` is sorted by path, so everything under a top-level directory ``d`` lies
    between ``site/d/`` and ``site/d0`` ("0" follows "/"): one bisection skips it. That is a
    few hundred steps instead of one per file.
    """
    # A FileEntry compares as a tuple, path first: bisecting for (p,) finds the first file
    # whose path is p or sorts after it (bisect's key= needs Python 3.10; the zipapp runs on 3.9).
    found: list[tuple[str, str]] = []
    for site in sites:
        prefix = f"{site}/" if site else ""
        i, n = bisect_left(files, (prefix,)), len(files)
        while i < n:
            path = files[i].path
            if not path.startswith(prefix):
                break
            head, below, _ = path[len(prefix):].partition("/")
            if below:
                i = bisect_left(files, (f"{prefix}{head}0",), i, n)
            else:
                found.append((site, path))
                i += 1
    return found


def split_sites(files: Sequence[FileEntry], sites: Sequence[str]) -> tuple[list[Optional[str]], list[str]]:
    """Each file's site-packages directory (None outside one) and its path relative to it:
    :func:`prune.paths.site_relative` for every file, without a Python statement per file."""
    n = len(files)
    site_of: list[Optional[str]] = [None] * n
    subs = list(map(_PATH, files))
    for site in sites:
        if not site:  # the root is a site: every path not in an earlier site is relative to it
            return [s if s is not None else "" for s in site_of], subs
        lo = bisect_left(files, (f"{site}/",))
        hi = bisect_left(files, (f"{site}0",), lo)  # "0" follows "/": the slice is "site/..."
        cut = slice(len(site) + 1, None)
        if site_of[lo:hi].count(None) == hi - lo:
            site_of[lo:hi] = [site] * (hi - lo)
            subs[lo:hi] = map(getitem, subs[lo:hi], repeat(cut))
        else:  # nested sites: a path belongs to the first that holds it
            for i in range(lo, hi):
                if site_of[i] is None:
                    site_of[i], subs[i] = site, subs[i][cut]
    return site_of, subs


def _top_level_owner(files: Sequence[FileEntry], site_of: Sequence[Optional[str]],
                     subs: Sequence[str]) -> dict[tuple[str, str], str]:
    """(site, top-level name) -> owning distribution, to attribute files RECORD omits."""
    owner: dict[tuple[str, str], str] = {}
    for fe, site, sub in zip(files, site_of, subs):
        if fe.owner is None or site is None or "/" not in sub:
            continue
        top = sub.split("/", 1)[0]
        if top.endswith((".dist-info", ".egg-info")):
            continue
        owner.setdefault((site, top), fe.owner)
    return owner


def owners_of(files: Sequence[FileEntry], site_of: Sequence[Optional[str]], subs: Sequence[str]) -> list[str]:
    """Each file's owning distribution ("" for none). A file RECORD omits is attributed by its
    top-level name; most environments have none in a package directory, so that map is
    built only when one turns up."""
    owners: list[Optional[str]] = list(map(_OWNER, files))
    by_top: Optional[dict[tuple[str, str], str]] = None
    for i in indexes(owners, None) + indexes(owners, ""):
        site, sub, owner = site_of[i], subs[i], ""
        if site is not None and "/" in sub:
            if by_top is None:
                by_top = _top_level_owner(files, site_of, subs)
            owner = by_top.get((site, sub.split("/", 1)[0]), "")
        owners[i] = owner
    return owners  # type: ignore[return-value]  # no None is left


def file_states(files: Sequence[FileEntry], site_of: Sequence[Optional[str]], subs: Sequence[str],
                owners: Sequence[str]) -> list[FileState]:
    """One state per file; ``site_of`` and ``subs`` from :func:`split_sites`, ``owners``
    from :func:`owners_of`."""
    return list(map(FileState, files, site_of, subs, owners))
