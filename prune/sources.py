"""Source code read from the environment on disk: the reader the pipeline hands the planner.

:class:`DiskSources` answers the planner's questions (:class:`prune.plan.SourceReader`) from
the files under the environment's root, each file read at most once per kind of question
(the caching is :class:`prune.plan.sources.CachedSources`'), and with a grep pre-filter:
once the planner has announced its needles (``hint``, ``hint_group``, ``prefetch``), one GNU
grep per question runs over the site-packages directories in the background
(:mod:`prune._grep`), and files a grep does not name are never read for its needles.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Optional

from .model import Inventory
from .plan.sources import FileSources, shortest

if TYPE_CHECKING:
    from ._grep import GrepHits

__all__ = ["DiskSources"]

_PATH, _IS_LINK = attrgetter("path"), attrgetter("is_link")  # FileEntry fields, read in C


class DiskSources(FileSources):
    """Reads sources from the environment at ``root`` on demand.

    ``inventory``: the scan of that environment (its site-packages directories, which files
    are symlinks); without it paths are module paths from the root and no grep runs.
    ``grep``: whether :meth:`prefetch` may start greps. Use as a context manager, or call
    :meth:`close`, to stop greps whose answer was never needed.
    """

    def __init__(self, root: os.PathLike[str] | str, inventory: Optional[Inventory] = None, *,
                 grep: bool = True) -> None:
        super().__init__(root, inventory.env.site_packages if inventory else ("",))
        self._inventory = inventory
        self._use_grep = grep
        self._grep: Optional[GrepHits] = None
        self._groups: list[tuple[frozenset[bytes], tuple[str, ...]]] = []
        self._group_greps: list[GrepHits] = []
        self._links: frozenset[str] = frozenset()

    def __enter__(self) -> DiskSources:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def hint_group(self, needles: Iterable[bytes], *, skip_dirs: Iterable[str] = ()) -> None:
        """Needles of a question of their own (:mod:`prune.evidence`'s locators), answered by
        a grep of their own: mixed into the hints, they would make every file that holds a
        hinted word a candidate for them, and the hinted questions read more."""
        self._groups.append((frozenset(needles), tuple(skip_dirs)))

    def prefetch(self) -> None:
        """Start one grep for the hinted needles, and one per hinted group, over the
        site-packages directories, in the background: files a grep does not name are never
        read for its needles (see :mod:`prune._grep`). Needs the inventory (which files are
        symlinks)."""
        if not self._use_grep or self._inventory is None or self._grep is not None or self._group_greps:
            return
        if not self._hints and not self._groups:
            return
        from ._grep import GrepHits

        root, sites = self._root, self._inventory.env.site_packages
        files = self._inventory.files
        self._links = frozenset(compress(map(_PATH, files), map(_IS_LINK, files)))
        if self._hints:
            self._grep = GrepHits(root, sites, shortest(frozenset(self._hints)))
        self._group_greps = [GrepHits(root, sites, shortest(words), skip_dirs=skip)
                             for words, skip in self._groups]

    def close(self) -> None:
        """Stop the greps started by :meth:`prefetch` whose answer was never needed."""
        for grep in self._greps():
            grep.close()

    def _greps(self) -> list[GrepHits]:
        return ([self._grep] if self._grep is not None else []) + self._group_greps

    def may_contain(self, paths: Sequence[str], needles: tuple[bytes, ...]) -> list[str]:
        """All of ``paths`` less those the background greps rule out (one set lookup each)."""
        found = list(paths)
        for grep in self._greps():
            found = grep.possible(found, needles, self._links)  # each rules out only what it covers
        return found

    def _ruled_out(self, path: str, needles: tuple[bytes, ...]) -> bool:
        return self._grep is not None and not self._grep.possible((path,), needles, self._links)
