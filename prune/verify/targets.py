"""What verification imports: the modules and entry points of an inventory.

:func:`importable_modules` gives every distribution's top-level modules (the baseline's core),
:func:`touched_modules` the packages and modules beside removed files (issue 15, kind E), and
:func:`entry_point_targets` every entry point. All read the inventory only (its RECORD paths),
never the disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..model import Inventory
from ..paths import site_relative, under_site

__all__ = ["EntryPointTarget", "ModuleTarget", "entry_point_targets", "importable_modules", "touched_modules"]

_EXTENSION_SUFFIXES = (".so", ".pyd")


@dataclass(frozen=True)
class ModuleTarget:
    """A module to import: ``name`` (dotted), owned by ``distribution`` ("" when unowned)."""

    __slots__ = ("distribution", "name")
    name: str
    distribution: str


@dataclass(frozen=True)
class EntryPointTarget:
    """An entry point ``group:name = value`` declared by ``distribution`` (canonical name)."""

    __slots__ = ("distribution", "group", "name", "value")
    distribution: str
    group: str
    name: str
    value: str

    @property
    def label(self) -> str:
        """``group:name``, the name an entry point's outcome and failure carry."""
        return f"{self.group}:{self.name}"


class _Dir:
    """A directory of a distribution's file list, built from RECORD paths."""

    __slots__ = ("dirs", "files")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.dirs: dict[str, _Dir] = {}

    def add(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        node = self
        for part in parts[:-1]:
            node = node.dirs.setdefault(part, _Dir())
        if parts:
            node.files.add(parts[-1])


def _module_of_file(filename: str) -> str | None:
    """The module a file in a package directory defines: ``x.py``, ``x.pyc`` (sourceless),
    ``x.cpython-312-x86_64-linux-gnu.so``, ``x.abi3.so``, ``x.pyd``; None for anything else."""
    if filename.endswith((".py", ".pyc")):
        stem = filename.rsplit(".", 1)[0]
    elif filename.endswith(_EXTENSION_SUFFIXES):
        stem = filename.split(".", 1)[0]
    else:
        return None
    return stem if stem.isidentifier() else None


def _is_package(node: _Dir) -> bool:
    return any(_module_of_file(f) == "__init__" for f in node.files)


def _holds_python(node: _Dir) -> bool:
    if any(_module_of_file(f) is not None for f in node.files):
        return True
    return any(
        name != "__pycache__" and _holds_python(child) for name, child in node.dirs.items()
    )


def _modules_in(node: _Dir, prefix: str = "") -> list[str]:
    """Importable top-level modules under ``node``; a namespace package (a directory holding
    Python code but no ``__init__``) yields the regular packages and modules inside it
    instead, since importing the bare namespace proves nothing."""
    found: list[str] = []
    for filename in node.files:
        module = _module_of_file(filename)
        if module is not None and module != "__init__":
            found.append(prefix + module)
    for name, child in node.dirs.items():
        # dist-info, egg-info, *.data, *.libs and dotted names are not identifiers.
        if name == "__pycache__" or not name.isidentifier():
            continue
        if _is_package(child):
            found.append(prefix + name)
        elif _holds_python(child):
            found.extend(_modules_in(child, prefix + name + "."))
    return found


def importable_modules(inventory: Inventory) -> tuple[ModuleTarget, ...]:
    """The top-level modules worth importing in ``inventory``'s environment, sorted by name.

    For each distribution: the modules its RECORD files define directly in site-packages
    (``x.py``, ``x/__init__.py``, ``x.<abi>.so``, ``x.pyd``, sourceless ``x.pyc``), and for a
    namespace package the packages and modules inside it. Names that cannot be imported
    (``-`` in them, a leading dot), ``*.dist-info`` and ``__pycache__`` are skipped. An
    editable distribution, or one without a RECORD, adds the names in its ``top_level.txt``.
    Modules in site-packages that no distribution owns are listed with distribution "".
    A name claimed twice goes to an owner over "", then to the first owner alphabetically.
    """
    owners: dict[str, set[str]] = {}

    def claim(names: Iterable[str], distribution: str) -> None:
        for name in names:
            owners.setdefault(name, set()).add(distribution)

    for dist in inventory.distributions:
        tree = _Dir()
        for path in dist.files:
            rel = under_site(path, dist.site)
            if rel is not None:
                tree.add(rel)
        claim(_modules_in(tree), dist.name)
        if dist.editable or not dist.has_record:
            claim((n for n in dist.top_level if all(p.isidentifier() for p in n.split("."))),
                  dist.name)

    for site in inventory.env.site_packages:
        tree = _Dir()
        for entry in inventory.files:
            if entry.owner:
                continue
            rel = under_site(entry.path, site)
            if rel is not None:
                tree.add(rel)
        claim(_modules_in(tree), "")

    targets = []
    for name, dists in owners.items():
        owned = sorted(d for d in dists if d)
        targets.append(ModuleTarget(name, owned[0] if owned else ""))
    return tuple(sorted(targets, key=lambda t: t.name))


def touched_modules(inventory: Inventory, removed: Iterable[str]) -> tuple[ModuleTarget, ...]:
    """The packages and modules in each directory of site-packages that loses an entry, sorted.

    A removal next to code is where a guess about "unread" files goes wrong: lazy_loader's
    ``attach_stub`` parses the ``__init__.pyi`` it removes the moment ``skimage.filters`` is
    imported, and ``__file__``-relative data is read by the module beside it (issue 15, kind
    E). Top-level imports do not reach lazily loaded subpackages, so each touched directory's
    package (``skimage.filters``) and the modules in it (``skimage.filters.edges``) are
    imported by name.

    :param removed: root-relative paths (files or directories) removed before verification.
    :returns: targets for the modules that stay: ``__main__``, modules in ``__pycache__`` or
        below a non-identifier directory, and packages whose own or an enclosing package's
        ``__init__`` is removed (removed on purpose: not expected to import) are left out.
        A directory at the top of site-packages adds nothing (top-level modules are checked
        anyway). Each target's distribution is the owner of its file ("" when unowned).
    """
    sites = inventory.env.site_packages
    gone = set(removed)
    if not gone:
        return ()

    def is_gone(path: str) -> bool:
        probe = path
        while probe:
            if probe in gone:
                return True
            probe = probe.rpartition("/")[0]
        return False

    touched = _touched_packages(gone, sites)
    if not touched:
        return ()
    found: dict[str, tuple[str, str]] = {}  # module -> (owner, site)
    staying_inits: set[str] = set()
    inits: set[str] = set()
    for entry in inventory.files:
        directory, _, filename = entry.path.rpartition("/")
        module = _module_of_file(filename)
        if module == "__init__":
            inits.add(directory)
            if not is_gone(entry.path):
                staying_inits.add(directory)
        if directory not in touched or module is None or module == "__main__":
            continue
        if is_gone(entry.path):
            continue
        site, package = touched[directory]
        name = package if module == "__init__" else f"{package}.{module}"
        found.setdefault(name, (entry.owner or "", site))
    targets = []
    for name, (owner, site) in found.items():
        # An enclosing package whose __init__ is removed was removed on purpose (minimal):
        # nothing below it is expected to import.
        parts = name.split(".")
        base = f"{site}/" if site else ""
        if any(base + "/".join(parts[:i]) in inits and base + "/".join(parts[:i]) not in staying_inits
               for i in range(1, len(parts) + 1)):
            continue
        targets.append(ModuleTarget(name, owner))
    return tuple(sorted(targets, key=lambda t: t.name))


def _touched_packages(removed: Iterable[str], sites: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Directory (root-relative) -> (site, dotted package) for each directory inside a
    site-packages that loses an entry; the site's top level, ``__pycache__`` and directories
    below a non-identifier name are left out."""
    touched: dict[str, tuple[str, str]] = {}
    for path in removed:
        split = site_relative(path, sites)
        if split is None:
            continue
        site, sub = split
        directory = sub.rpartition("/")[0]
        parts = directory.split("/") if directory else []
        if not parts or not all(p.isidentifier() for p in parts) or "__pycache__" in parts:
            continue
        touched[path.rpartition("/")[0]] = (site, ".".join(parts))
    return touched


def entry_point_targets(inventory: Inventory) -> tuple[EntryPointTarget, ...]:
    """Every entry point of every distribution (all groups), sorted by distribution, group,
    name; each is loaded through the target's importlib.metadata when checked."""
    targets = {
        EntryPointTarget(dist.name, ep.group, ep.name, ep.value)
        for dist in inventory.distributions
        for ep in dist.entry_points
    }
    return tuple(sorted(targets, key=lambda t: (t.distribution, t.group, t.name, t.value)))
