"""The import check: a directory that an import-checked rule matched (tests/, docs/) stays
when kept code imports it.

The module name of each candidate directory is compared with the imports of every Python
file that stays (a static scan: :mod:`prune.imports`); a directory saved this way
contributes its own imports, so the check runs to a fixpoint. Verification catches dynamic
imports this cannot see.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

from ..imports import is_evidence_file, module_name_for
from .protect import is_loose_pyc
from .rules import shallowest_match
from .sources import SourceReader
from .state import FileState, rule_removal

__all__ = ["import_check", "staying_test_code_needs"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Key = tuple[str, str]  # (site, directory relative to it)


def _module_of(dir_sub: str) -> Optional[str]:
    parts = dir_sub.strip("/").split("/")
    if not all(_IDENT.match(p) for p in parts):
        return None
    return ".".join(parts)


def _is_sourceless(st: FileState) -> bool:
    """A loose ``x.pyc`` (outside ``__pycache__``) that stays: protected as a sourceless
    module, or matched by no rule at all (then counted even with an ``x.py`` beside it, which
    costs at most a kept tests directory)."""
    return is_loose_pyc(st.entry.path) and (st.saved_by == "sourceless-bytecode" or st.remove_rule is None)


def _sourceless_mentions(st: FileState, sources: SourceReader, modules: Iterable[str]) -> set[str]:
    """The candidate modules a sourceless ``.pyc`` may import.

    Its bytecode may come from another Python version than ours, so it is not unmarshalled:
    a candidate counts as imported when its dotted name appears in the file's bytes, or its
    last part does and the candidate is in the same top-level package (``from . import
    tests`` stores only ``tests``). Over-keeping a tests directory costs bytes; missing one
    breaks the module.
    """
    data = sources.read_bytes(st.entry.path)
    top = st.sub.split("/", 1)[0]
    return {mod for mod in modules
            if mod.encode() in data
            or (mod.split(".", 1)[0] == top and mod.rsplit(".", 1)[-1].encode() in data)}


def _candidate_dirs(states: Iterable[FileState]) -> dict[Key, list[FileState]]:
    """(site, directory) -> its files, for every directory an import-checked rule matched
    (the shallowest such directory above each file it removes)."""
    candidates: dict[Key, list[FileState]] = defaultdict(list)
    # The shallowest directory the rule matches depends only on the file's directory (and,
    # for a symlink, the link itself): asked once per rule and directory.
    shallowest: dict[tuple[str, str], Optional[str]] = {}
    for st in states:
        rule = st.remove_rule
        if st.removal is None or rule is None or not rule.rule.import_check or st.site is None:
            continue
        # A symlink named like the directory (app/tests -> elsewhere) is itself a candidate.
        where = st.sub if st.entry.is_link else st.sub.rpartition("/")[0]
        memo = (rule.rule.id, where)
        if memo in shallowest:
            d = shallowest[memo]
        else:
            d = shallowest[memo] = shallowest_match(rule, where)
        if d is not None:
            candidates[(st.site, d)].append(st)
    return candidates


def _imported(pending: Sequence[FileState], sources: SourceReader, modules: Mapping[str, Key],
              needles: tuple[bytes, ...]) -> set[str]:
    """Every module the ``pending`` files import that may be one of ``modules`` (or lie below
    one). A reader may rule most files out at once (DiskSources: the files grep did not name)."""
    imported: set[str] = set()
    maybe = set(sources.may_contain([st.entry.path for st in pending], needles))
    for st in pending:
        if st.entry.path.endswith(".pyc"):
            imported |= _sourceless_mentions(st, sources, modules)
        elif st.entry.path in maybe and sources.contains(st.entry.path, needles):
            imported |= sources.imports(st.entry.path)
    return imported


def _save_directory(group: Sequence[FileState], mod: str) -> list[FileState]:
    """Keep the files of an imported candidate directory; returns the ``.py`` files kept,
    whose own imports are asked next. Saving the directory does not save its caches or C
    sources: the last rule that matched before the import-checked one still applies."""
    newly: list[FileState] = []
    for st in group:
        earlier = st.fallback_rule
        if earlier is not None and not st.saved_by:
            st.remove_rule = earlier
            st.removal = rule_removal(earlier, st.owner)
            continue
        st.save("imported", f"kept code imports {mod}")
        if st.entry.path.endswith(".py"):
            newly.append(st)
    return newly


def import_check(states: list[FileState], sources: SourceReader,
                 entry_point_modules: frozenset[str] = frozenset(),
                 seeds: Optional[Sequence[FileState]] = None) -> None:
    """Keep directories matched by import-checked rules (tests/, docs/) that kept code imports,
    to a fixpoint. ``entry_point_modules``: modules plugin discovery imports by name, counted
    as imported; ``seeds``: when given, only these staying files are scanned first (files
    kept since the last check, by evidence)."""
    candidates = _candidate_dirs(states)
    modules: dict[str, Key] = {}
    for site, d in candidates:
        mod = _module_of(d)
        if mod:
            modules[mod] = (site, d)
    if not modules:
        return
    needles = tuple(sorted({m.rsplit(".", 1)[-1].encode() for m in modules}))
    in_candidate = {id(st) for group in candidates.values() for st in group}
    # Cheapest tests first: most files go (a removal) or are not Python.
    pending = [st for st in (states if seeds is None else seeds)
               if st.removal is None and st.site is not None
               and (st.entry.path.endswith(".py") or _is_sourceless(st)) and id(st) not in in_candidate
               and not st.entry.is_link]
    saved: set[Key] = set()
    imported = set(entry_point_modules) | _imported(pending, sources, modules, needles)
    while True:
        newly: list[FileState] = []
        for mod, key in sorted(modules.items()):
            if key not in saved and any(i == mod or i.startswith(mod + ".") for i in imported):
                saved.add(key)
                newly += _save_directory(candidates[key], mod)
        if not newly:
            return
        imported = _imported(newly, sources, modules, needles)


def staying_test_code_needs(states: Sequence[FileState], sources: SourceReader,
                            owner_of_top: Mapping[str, str], needed: dict[str, str]) -> None:
    """Add to ``needed`` the removed distributions that test code which stays imports.

    The graph's import scan skips test code (files under tests/ and test/, conftest.py,
    setup.py: see prune/imports.py). A file in a test directory that stays after all (kept
    code imports it, or a keep pattern, a protection or a trace saves it) is evidence again.
    A conftest.py or setup.py that stays is evidence only when kept code imports it: pytest
    and build tools load those, rarely the application.
    """
    def needs(st: FileState) -> list[tuple[str, str]]:
        found = []
        for mod in sources.required(st.entry.path):
            dep = owner_of_top.get(mod.split(".", 1)[0])
            if dep is not None and dep != st.owner and dep not in needed:
                found.append((dep, mod))
        return found

    staying = [st for st in states if st.removal is None and st.entry.path.endswith(".py")
               and not st.entry.is_link and st.site is not None]
    hooks: dict[str, tuple[FileState, list[tuple[str, str]]]] = {}
    for st in staying:
        if is_evidence_file(st.entry.path):
            continue
        found = needs(st)
        if not found:
            continue
        if not st.entry.path.endswith(("/conftest.py", "/setup.py")):
            why = st.saved_reason or "no rule removes it"
            for dep, mod in found:
                needed.setdefault(dep, f"kept: {st.sub} imports {mod} (a test file that stays: {why})")
            continue
        named = module_name_for(st.sub)
        if named is not None:
            hooks[named[0]] = (st, found)
    if not hooks:
        return
    needles = tuple(sorted({m.rsplit(".", 1)[-1].encode() for m in hooks}))
    imported: set[str] = set()
    for st in staying:
        if sources.contains(st.entry.path, needles):
            imported |= sources.imports(st.entry.path)
    for name, (st, found) in sorted(hooks.items()):
        if name in imported:
            for dep, mod in found:
                needed.setdefault(dep, f"kept: {st.sub} imports {mod} (kept code imports {name})")
