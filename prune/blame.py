"""Blame: which staged removal most plausibly broke what verification found broken.

A failure's error line usually names what it missed: a module (``No module named 'x'``,
``cannot import name 'y' from 'x'``) or a file (``FileNotFoundError: ... '/opt/venv/.../data.json'``,
lazy_loader's ``Cannot load imports from non-existent stub '.../__init__.pyi'``). The removal
that took that module or file is the cause; a removal that merely touched the same
distribution is only a suspect, listed when nothing better matches (issue 15, kind F: on
Python 3.12 a missing ``distutils`` was blamed on a ``__pycache__`` removal instead of the
removal of setuptools, which provides ``distutils`` there through ``setuptools/_distutils``).

Bytecode caches are staged only after verification (see :func:`prune.apply.apply_plan`), so
they are never blamed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Optional, Protocol

from .model import Action, Plan
from .paths import site_relative

__all__ = ["blame"]

#: Rules whose removals are staged after verification: they cannot have caused a failure.
LATE_RULES = frozenset({"bytecode"})
#: At most this many removals are named for one failure.
LIMIT = 5

_MISSING = re.compile(r"No module named '([^']+)'")
# "cannot import name 'X' from 'pkg.sub' (...)", and during a circular import "... from
# partially initialized module 'pkg.sub' (most likely due to a circular import)".
_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)' from (?:partially initialized module )?'([^']+)'")
# An absolute path in an error line, quoted or not, up to a quote, a space or a bracket.
_PATH = re.compile(r"(/[^\s'\"(),:]+(?:[^\s'\"(),]*[^\s'\"(),.:])?)")
# A file name with an extension (a dot then letters): libz-1a2b.so.1.2, cacert.pem.
_FILE_WORD = re.compile(r"[\w.+-]*\w\.[A-Za-z][\w.]*")
_EXTENSION = re.compile(r"\.(?:cpython|pypy|abi3|cp3)[^/]*\.(?:so|pyd)$|\.(?:so|pyd)$")


class _Failure(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def distribution(self) -> str: ...

    @property
    def error(self) -> str: ...


def _entry(action: Action) -> str:
    return f"{action.rule} ({action.path})"


def _module_of(sub: str) -> Optional[str]:
    """The dotted module a site-relative file defines (``a/b.py`` -> ``a.b``,
    ``a/__init__.py`` -> ``a``, ``a/_c.cpython-312-x86_64-linux-gnu.so`` -> ``a._c``)."""
    if sub.endswith((".py", ".pyc")) and "/__pycache__/" not in f"/{sub}":
        stem = sub.rsplit(".", 1)[0]
    else:
        m = _EXTENSION.search(sub)
        if m is None:
            return None
        stem = sub[:m.start()]
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


class _Staged:
    """What verification saw removed: the staged actions, and the modules and files in them."""

    def __init__(self, plan: Plan) -> None:
        self.actions = [a for a in plan.actions if a.rule not in LATE_RULES]
        self._by_path = {a.path: a for a in self.actions}
        self.sites = tuple(plan.inventory.env.site_packages)
        root = str(plan.inventory.env.root)
        self.roots = tuple(dict.fromkeys((root, os.path.realpath(root))))
        self._modules: Optional[list[tuple[str, Action]]] = None
        self._files = [f.path for f in plan.inventory.files]

    def action_for(self, rel: str) -> Optional[Action]:
        """The staged action that removed ``rel`` (root-relative): itself or a directory above."""
        probe = rel
        while probe:
            found = self._by_path.get(probe)
            if found is not None:
                return found
            probe = probe.rpartition("/")[0]
        return None

    def relative(self, path: str) -> Optional[str]:
        for root in self.roots:
            if path.startswith(root.rstrip("/") + "/"):
                return os.path.normpath(path[len(root.rstrip("/")) + 1:])
        return None

    def site_relative(self, rel: str) -> Optional[str]:
        """``rel`` relative to its site-packages directory, None outside every one."""
        found = site_relative(rel, self.sites)
        return found[1] if found is not None else None

    def files(self) -> list[str]:
        """Root-relative paths of the inventory's files that staging took away."""
        return [path for path in self._files if self.action_for(path) is not None]

    def modules(self) -> list[tuple[str, Action]]:
        """(dotted module, staged action) for every module file staging took away."""
        if self._modules is None:
            found: list[tuple[str, Action]] = []
            for path in self._files:
                action = self.action_for(path)
                if action is None:
                    continue
                sub = self.site_relative(path)
                module = _module_of(sub) if sub is not None else None
                if module is not None:
                    found.append((module, action))
            self._modules = found
        return self._modules


def _by_paths(staged: _Staged, error: str) -> list[Action]:
    """Removals of the files an error line names (FileNotFoundError, a missing stub)."""
    hits = []
    for m in _PATH.finditer(error):
        rel = staged.relative(m.group(1))
        if rel is None:
            continue
        action = staged.action_for(rel)
        if action is not None:
            hits.append(action)
    return hits


def _by_file_names(staged: _Staged, error: str) -> list[Action]:
    """Removals of files an error names without a path (``libgfortran-040039e1.so.5.0.0:
    cannot open shared object file``, ``data.json not found``)."""
    words = {w.strip(".:'\"") for w in _FILE_WORD.findall(error)}
    if not words:
        return []
    hits = []
    for path in staged.files():
        if path.rsplit("/", 1)[-1] in words:
            action = staged.action_for(path)
            if action is not None:
                hits.append(action)
    return hits


def _missing_modules(error: str) -> list[str]:
    names = [m.group(1) for m in _MISSING.finditer(error)]
    names += _missing_submodules(error)
    return names


def _missing_submodules(error: str) -> list[str]:
    """``pkg.sub.X`` for ``cannot import name 'X' from 'pkg.sub'``: X is perhaps a submodule
    (``from pkg.sub import X`` finds a module only as ``pkg/sub/X.py`` or ``pkg/sub/X/``)."""
    return [f"{m.group(2)}.{m.group(1)}" for m in _CANNOT_IMPORT.finditer(error)
            if all(p.isidentifier() for p in f"{m.group(2)}.{m.group(1)}".split("."))]


def _by_module(staged: _Staged, missing: str, indirect: bool = True) -> list[Action]:
    """Removals that took the module ``missing``: its file, a package above it, or, when
    nothing defined it under that name, a module that provides it under another (a vendored
    or aliased copy such as ``setuptools._distutils`` for ``distutils``, or a ``.pth`` named
    after it such as ``distutils-precedence.pth``). ``indirect=False``: only the first two."""
    parts = missing.split(".")
    exact = [a for mod, a in staged.modules() if mod == missing or missing.startswith(mod + ".")]
    # A package staged as one directory action counts even without an __init__ (a namespace).
    for site in staged.sites:
        base = f"{site}/" if site else ""
        action = staged.action_for(base + "/".join(parts))
        if action is not None and action.path.startswith(base) and action.path != site:
            exact.append(action)
    if exact or not indirect:
        return exact
    top = parts[0]
    aliases = {top, "_" + top}
    provided = [a for mod, a in staged.modules() if aliases & set(mod.split(".")[1:])
                or mod.split(".")[0] in (f"_{top}", f"_{top}_hack")]
    provided += [a for a in staged.actions if a.path.endswith(".pth")
                 and top in a.path.rsplit("/", 1)[-1]]
    return provided


def _inside(staged: _Staged, failure: _Failure) -> list[Action]:
    """Removals inside the failing module's own package directory."""
    name = "" if ":" in failure.name else failure.name  # entry points are group:name
    if not name or not all(p.isidentifier() for p in name.split(".")):
        return []
    rel = name.replace(".", "/")
    hits = []
    for a in staged.actions:
        sub = staged.site_relative(a.path)
        if sub is not None and (sub == rel or sub.startswith(rel + "/") or sub.startswith(rel + ".")):
            hits.append(a)
    return hits


def _unique(actions: Iterable[Action]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for a in actions:
        seen.setdefault(_entry(a), None)
    return tuple(seen)[:LIMIT]


def blame(plan: Plan, failure: _Failure) -> tuple[str, ...]:
    """The removals that most plausibly broke ``failure``, as ``"rule (path)"`` strings.

    In order of strength, the first that finds anything decides: the removal of the submodule
    a ``cannot import name 'X' from 'pkg.sub'`` misses (``pkg/sub/X.py``); of paths the
    error names; of the module it misses (or of what provides that module under another
    name); of files it names without a path (a shared library); of files inside the failing
    module's own package; then any removal of the failing distribution's files. At most
    :data:`LIMIT` entries; () when nothing staged matches.
    """
    staged = _Staged(plan)
    # "cannot import name 'X' from 'pkg.sub'" with pkg/sub/X.py staged: that removal, before
    # the paths the line names (the kept pkg/sub/__init__.py that failed, never staged) and
    # before file names (every staged __init__.py would match the one the line names).
    for missing in _missing_submodules(failure.error):
        found = _by_module(staged, missing, indirect=False)
        if found:
            return _unique(found)
    direct = _by_paths(staged, failure.error)
    if direct:
        return _unique(direct)
    for missing in _missing_modules(failure.error):
        found = _by_module(staged, missing)
        if found:
            return _unique(found)
    named = _by_file_names(staged, failure.error)
    if named:
        return _unique(named)
    tiers = [_inside(staged, failure)]
    if failure.distribution:
        tiers.append([a for a in staged.actions if a.distribution == failure.distribution])
    for tier in tiers:
        if tier:
            return _unique(tier)
    return ()
