"""Value types shared by scan, plan, apply and report.

All paths are POSIX strings relative to ``Environment.root``. All types are immutable
(frozen dataclasses; :class:`FileEntry`, made once per file, is a named tuple); constructors
trust their input (parsing and validation happen in scan/profiles).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import NamedTuple, Optional, cast

from .env import Environment

__all__ = [
    "Diagnostic",
    "EntryPoint",
    "Distribution",
    "FileEntry",
    "Inventory",
    "Action",
    "Keep",
    "DistDecision",
    "Plan",
    "Failure",
    "Progress",
    "within_any",
]

#: Told one line at a time what a long step is doing ("staging 120 removals"); the command
#: prints it on stderr, a library caller may pass None.
Progress = Callable[[str], None]


def within_any(directories: Container[str]) -> Callable[[str], bool]:
    """A test of whether a directory is one of ``directories`` or lies inside one ("", the
    root, is in none). Each directory is answered once: asked for every file's parent, the
    test costs a dict lookup per file. ``directories`` must not change while it is used."""
    answers: dict[str, bool] = {"": False}

    def within(directory: str) -> bool:
        found = answers.get(directory)
        if found is None:
            found = answers[directory] = directory in directories or within(directory.rpartition("/")[0])
        return found

    return within


@dataclass(frozen=True)
class Diagnostic:
    """Something odd found while scanning or planning: reported, never fatal.

    ``level`` is ``"warning"`` or ``"info"``; ``path`` is relative to the root (or "").
    """

    level: str
    code: str
    message: str
    path: str = ""


@dataclass(frozen=True)
class EntryPoint:
    group: str
    name: str
    value: str


@dataclass(frozen=True)
class Distribution:
    """One installed distribution, as its metadata describes it.

    ``name`` is canonical (PEP 503). ``metadata_dir`` is the dist-info/egg-info directory and
    ``site`` the site-packages directory holding it, both relative to the root. ``files`` are
    the RECORD entries that lie under the root, relative to the root, sorted.
    ``requires`` are raw Requires-Dist strings (PEP 508), parsed by the graph.
    """

    name: str
    display_name: str
    version: str
    metadata_dir: str
    site: str
    files: tuple[str, ...]
    top_level: tuple[str, ...]
    requires: tuple[str, ...]
    extras: tuple[str, ...]
    entry_points: tuple[EntryPoint, ...]
    requested: bool
    editable: bool
    installer: str = ""
    has_record: bool = True
    #: Why a RECORD that exists could not be read ("Permission denied"); "" when it was read
    #: or is absent. Such a distribution is never removed whole (its files are unknown).
    record_error: str = ""

    @property
    def console_scripts(self) -> tuple[str, ...]:
        return tuple(
            ep.name for ep in self.entry_points if ep.group in ("console_scripts", "gui_scripts")
        )


class FileEntry(NamedTuple):
    """A file or symlink found on disk. ``size`` is the apparent size (a link's own size).
    ``executable``: a regular file with an execute bit (a program a package may start).

    A named tuple rather than a frozen dataclass: a scan makes one per file (100k on a large
    environment), and a named tuple is made in less than half the time (0.10 s against
    0.22 s per 100k on the benchmark machine). It is just as immutable; it also compares,
    sorts and unpacks as a tuple.
    """

    path: str
    size: int
    is_link: bool = False
    owner: Optional[str] = None
    executable: bool = False

    @classmethod
    def many(cls, paths: Iterable[str], sizes: Iterable[int], owners: Iterable[Optional[str]], *,
             is_link: bool, executable: bool) -> Iterator[FileEntry]:
        """Entries for parallel lists of paths, sizes and owners, all of one kind (a link or
        not, executable or not), as ``FileEntry(path, size, is_link, owner, executable)``
        makes them but by C loops (``map``, ``zip``, ``tuple.__new__`` with the fields in
        their order): without the Python call a named tuple's constructor costs per file."""
        make = partial(tuple.__new__, cls)
        return cast("Iterator[FileEntry]", map(make, zip(paths, sizes, repeat(is_link), owners, repeat(executable))))


@dataclass(frozen=True)
class Inventory:
    """What scan found: the environment, its distributions, every file and its owner.

    ``files`` is sorted by path. ``dirs`` lists every real directory (not links) under the
    walked areas, sorted. ``imports`` maps a module file (relative path) to the absolute
    module names it imports, for the files scan chose to read (see scan.read_imports).
    """

    env: Environment
    distributions: tuple[Distribution, ...]
    files: tuple[FileEntry, ...]
    dirs: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    imports: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def bytes_total(self) -> int:
        return sum(map(attrgetter("size"), self.files))

    def distribution(self, name: str) -> Optional[Distribution]:
        for d in self.distributions:
            if d.name == name:
                return d
        return None


@dataclass(frozen=True)
class Action:
    """One removal: a file, a symlink or a whole directory (``kind``: file|link|dir).

    ``rule`` is the rule id that decided it, ``pattern`` the pattern that matched (or the
    distribution decision), ``profile`` the profile that defined the rule, ``distribution``
    the canonical name of the owner ("" when unowned), ``files`` how many files go.
    """

    path: str
    kind: str
    bytes: int
    files: int
    rule: str
    pattern: str
    profile: str
    distribution: str
    reason: str
    trace: bool = False


@dataclass(frozen=True)
class Keep:
    """A file a removal rule matched but something saved, and why (for reports and --explain)."""

    path: str
    bytes: int
    rule: str
    saved_by: str
    reason: str
    distribution: str = ""


@dataclass(frozen=True)
class DistDecision:
    """Whether a whole distribution stays or goes, with the chain of reasons.

    ``requested``: the user installed it by name, as far as REQUESTED can tell
    (:func:`prune.graph.installed_by_name`). ``remove_with``: for a distribution kept only
    because it was installed by name although a profile list names it, the option that
    removes it (``--remove-dist black``); empty otherwise.
    """

    name: str
    version: str
    remove: bool
    bytes: int
    reason: str
    chain: tuple[str, ...] = ()
    requested: bool = False
    remove_with: str = ""


@dataclass(frozen=True)
class Plan:
    """A pure description of a prune: what goes, what was saved, and why.

    ``actions`` are sorted by path and never overlap (no action lies inside another).
    ``records`` maps each touched distribution's RECORD path to the RECORD entries (relative
    to that distribution's site-packages, as in the file) that remain after the actions.
    ``scripts`` are console scripts of removed distributions (also included in actions).
    ``roots`` are the distributions the user chose (``--root``, else installed by name; see
    :func:`prune.plan.root_distributions`), sorted: verification checks their modules and
    scripts, and minimal keeps what of them no trace reached.
    """

    inventory: Inventory
    profile: str
    actions: tuple[Action, ...]
    kept: tuple[Keep, ...] = ()
    distributions: tuple[DistDecision, ...] = ()
    records: tuple[tuple[str, tuple[str, ...]], ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    options: tuple[tuple[str, str], ...] = field(default=())
    roots: tuple[str, ...] = ()

    @property
    def bytes_removed(self) -> int:
        return sum(a.bytes for a in self.actions)

    def removes(self, path: str) -> bool:
        """True when ``path`` is an action's target or lies inside one.

        Walks the path's ancestors rather than bisecting sorted paths: ``mypy/x.so`` sorts
        after ``mypy-1.0.dist-info``, so a nearest-predecessor test misses the ``mypy`` action.
        """
        targets = self._targets()
        p = path
        while True:
            if p in targets:
                return True
            if "/" not in p:
                return False
            p = p.rsplit("/", 1)[0]

    def staying(self) -> tuple[FileEntry, ...]:
        """The inventory's files that no action removes, in inventory order.

        :meth:`removes` for every file, with each directory's answer worked out once.
        """
        return tuple(f for _, f in self.staying_with_directories())

    def staying_with_directories(self) -> Iterator[tuple[str, FileEntry]]:
        """(directory, file) for every file that stays, in inventory order; the directory is
        the file's parent ("" for the root), which callers grouping by it need anyway."""
        targets = self._targets()
        removed = within_any(targets)
        for f in self.inventory.files:
            path = f[0]  # FileEntry.path
            if path in targets:
                continue
            directory = path.rpartition("/")[0]
            if not removed(directory):
                yield directory, f

    def _targets(self) -> frozenset[str]:
        cached = self.__dict__.get("_target_set")
        if cached is None:
            cached = frozenset(a.path for a in self.actions)
            object.__setattr__(self, "_target_set", cached)
        return cached

    @property
    def files_removed(self) -> int:
        return sum(a.files for a in self.actions)


@dataclass(frozen=True)
class Failure:
    """Something that worked before pruning and fails after it, found by verification.

    ``kind`` is ``import``, ``entry_point`` or ``check``; ``name`` is the module, the entry
    point's ``group:name`` or the check's command; ``distribution`` its owner ("" when
    unowned); ``error`` one line (the last line of the traceback, "timed out after 60s", a
    check's exit status). ``rules`` are the rules whose removals most plausibly broke it,
    filled in by apply when it rolls back (see :mod:`prune.blame`).
    """

    kind: str
    name: str
    distribution: str
    error: str
    rules: tuple[str, ...] = ()
