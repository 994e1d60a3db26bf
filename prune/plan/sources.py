"""What the planner may ask of source code, and readers that answer from bytes they are given.

The planner never opens a file. Everything it learns from a file's contents (the modules it
imports, the programs it runs, the bytes of a sourceless ``.pyc`` or a ``.pth`` file) comes
through a :class:`SourceReader` passed in, as pypa/installer's ``install()`` writes through
the destination it is handed. The pipeline passes :class:`prune.sources.DiskSources` (the
files on disk, with a grep pre-filter); planner tests pass :class:`MemorySources`.

:class:`CachedSources` holds the answering logic both share, so an in-memory reader answers
exactly as the disk one does: each file is read once for its *import tokens* (every
identifier on an import line), which answers :meth:`~SourceReader.contains` for any
needle, and only files that pass that filter are scanned in full.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..imports import import_tokens, imported_modules, module_name_for, required_modules, run_references
from ..model import Inventory
from ..paths import site_relative

__all__ = ["CachedSources", "FileSources", "MemorySources", "SourceReader", "disk_reader", "shortest"]


class SourceReader(Protocol):
    """Where the planner gets source code from. Paths are relative to the environment's root.

    The ``hint``/``hint_group``/``prefetch`` calls announce, before the per-file questions,
    which needles will be asked about, so a reader can answer many questions with one read
    (or one grep); a reader that has no use for them does nothing.
    """

    def imports(self, path: str) -> frozenset[str]:
        """Absolute module names imported by the module at ``path`` (relative to the root)."""

    def required(self, path: str) -> frozenset[str]:
        """The imports whose absence breaks the module (no optional or TYPE_CHECKING ones)."""

    def contains(self, path: str, needles: tuple[bytes, ...]) -> bool:
        """Whether an import statement of the file mentions any of ``needles`` (identifiers).

        A cheap pre-filter: a False here means no import of those names can be in the file.
        """

    def may_contain(self, paths: Sequence[str], needles: tuple[bytes, ...]) -> list[str]:
        """The ``paths`` whose bytes may hold one of ``needles``, in order: a reader that
        knows some hold none (a grep) leaves them out; any other returns all of them."""

    def read_bytes(self, path: str) -> bytes:
        """The file's bytes, empty when it cannot be read (``.pth`` files, sourceless ``.pyc``)."""

    def runs(self, path: str, names: tuple[bytes, ...]) -> frozenset[tuple[str, str]]:
        """The modules and programs the file runs or looks up by name
        (:func:`prune.imports.run_references`), when its bytes hold one of ``names``."""

    def hint(self, needles: Iterable[bytes]) -> None:
        """Needles later :meth:`contains` questions will ask about."""

    def hint_group(self, needles: Iterable[bytes], *, skip_dirs: Iterable[str] = ()) -> None:
        """Needles of a question of their own (:meth:`may_contain` with them); ``skip_dirs``:
        directory names whose files that question never asks about (test code)."""

    def prefetch(self) -> None:
        """The hints are complete: start whatever answers them ahead (a background grep)."""


def shortest(needles: frozenset[bytes]) -> tuple[bytes, ...]:
    """The needles that contain no other needle: a text holds some needle exactly when it
    holds one of these (``test`` answers for ``tests`` and ``testing`` too)."""
    return tuple(sorted(n for n in needles if not any(o != n and o in n for o in needles)))


class CachedSources:
    """A :class:`SourceReader` over :meth:`_read`, which subclasses supply, with every answer
    cached. ``sites``: the site-packages directories (module names are relative to them).

    Reading every source file twice (once per question) dominated planning time on 100k-file
    environments: one read of a file answers :meth:`contains` for all the hinted needles,
    and the full import scan re-reads only the files that pass that filter.
    """

    def __init__(self, sites: Sequence[str] = ("",)) -> None:
        self._sites = tuple(sites)
        self._tokens: dict[str, frozenset[bytes]] = {}
        self._covered: dict[str, frozenset[bytes]] = {}
        self._hints: set[bytes] = set()
        self._asked_for: dict[tuple[bytes, ...], tuple[frozenset[bytes], tuple[bytes, ...]]] = {}
        self._imports: dict[str, frozenset[str]] = {}
        self._required: dict[str, frozenset[str]] = {}

    def _read(self, path: str) -> bytes:
        """The file's bytes, b"" when it cannot be read."""
        raise NotImplementedError

    def _ruled_out(self, path: str, needles: tuple[bytes, ...]) -> bool:
        """Whether the file is known, without reading it, to hold none of ``needles``."""
        return False

    def read_bytes(self, path: str) -> bytes:
        return self._read(path)

    def hint(self, needles: Iterable[bytes]) -> None:
        self._hints |= set(needles)
        self._asked_for.clear()

    def hint_group(self, needles: Iterable[bytes], *, skip_dirs: Iterable[str] = ()) -> None:
        return None

    def prefetch(self) -> None:
        return None

    def may_contain(self, paths: Sequence[str], needles: tuple[bytes, ...]) -> list[str]:
        return list(paths)

    def _asked(self, needles: tuple[bytes, ...]) -> tuple[frozenset[bytes], tuple[bytes, ...]]:
        """Every needle a read of a file answers (the hints and ``needles``), and the
        shortest of them to search for: one set per question, not one per file."""
        found = self._asked_for.get(needles)
        if found is None:
            asked = frozenset(self._hints) | frozenset(needles)
            found = self._asked_for[needles] = (asked, shortest(asked))
        return found

    def contains(self, path: str, needles: tuple[bytes, ...]) -> bool:
        if self._ruled_out(path, needles):
            return False
        tokens = self._tokens.get(path)
        covered = self._covered.get(path)
        if tokens is None or (covered is not None and not covered.issuperset(needles)):
            data = self._read(path)
            asked, short = self._asked(needles)
            # memmem first (C speed): most files mention none of the needles anywhere, and
            # only those that do pay for the import-statement regex.
            if data and any(n in data for n in short):
                tokens = import_tokens(data)
                self._covered.pop(path, None)
            else:
                tokens = frozenset()
                self._covered[path] = asked
            self._tokens[path] = tokens
        return any(n in tokens for n in needles)

    def _scan(self, path: str, required: bool) -> frozenset[str]:
        found = site_relative(path, self._sites)
        named = module_name_for(found[1]) if found else None
        if named is None:
            return frozenset()
        scan = required_modules if required else imported_modules
        return frozenset(scan(self._read(path), named[0], named[1]))

    def imports(self, path: str) -> frozenset[str]:
        cached = self._imports.get(path)
        if cached is None:
            cached = self._imports[path] = self._scan(path, required=False)
        return cached

    def required(self, path: str) -> frozenset[str]:
        cached = self._required.get(path)
        if cached is None:
            cached = self._required[path] = self._scan(path, required=True)
        return cached

    def runs(self, path: str, names: tuple[bytes, ...]) -> frozenset[tuple[str, str]]:
        data = self._read(path)
        if not any(n in data for n in names):
            return frozenset()
        return run_references(data)


class MemorySources(CachedSources):
    """Source files held in memory: ``files`` maps a path (relative to the root) to its
    bytes or text (UTF-8); a path not in it reads as empty, as an unreadable file does."""

    def __init__(self, files: Mapping[str, bytes | str], sites: Sequence[str] = ("",)) -> None:
        super().__init__(sites)
        self._files = {p: d.encode() if isinstance(d, str) else d for p, d in files.items()}

    def _read(self, path: str) -> bytes:
        return self._files.get(path, b"")


class FileSources(CachedSources):
    """Source files read from the environment at ``root`` on demand, plainly: no grep
    pre-filter, no process (:class:`prune.sources.DiskSources` adds those, and is what the
    pipeline passes in). ``sites``: the site-packages directories, relative to ``root``."""

    def __init__(self, root: os.PathLike[str] | str, sites: Sequence[str] = ("",)) -> None:
        super().__init__(sites)
        self._root = os.fspath(root)

    def _read(self, path: str) -> bytes:
        # os.open/os.read rather than open(): no buffered file object per file, which halves
        # the cost of reading tens of thousands of small sources.
        try:
            fd = os.open(os.path.join(self._root, path), os.O_RDONLY)
        except OSError:
            return b""
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 18)
                if not chunk:
                    break
                chunks.append(chunk)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except OSError:
            return b""
        finally:
            os.close(fd)


def disk_reader(inventory: Inventory) -> SourceReader:
    """The reader for a caller that brings none: the environment's files, read plainly
    (:class:`FileSources`). Never reached by the pipeline, which passes its own reader."""
    return FileSources(inventory.env.root, inventory.env.site_packages)
