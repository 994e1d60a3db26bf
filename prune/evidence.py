"""Evidence that kept code reads, at run time, files that a file-type rule would remove.

Rules keyed on a file type or a directory name (type stubs, C/Cython sources and headers,
docs/examples, tests, icons in ``share/``) are guesses about what nobody reads. Before the
planner acts on such a rule (one marked ``evidence = true`` in its profile), it asks this
module whether the owning distribution's kept code says otherwise. Evidence, strongest first:

- **a reader of sibling files** from the knowledge base: a kept module that calls
  ``attach_stub`` (lazy_loader) has the ``.pyi`` beside it parsed at import (scikit-image
  0.26, issue 15: ``ValueError: Cannot load imports from non-existent stub``);
- **the file named**: a string literal in the owner's kept code that is the file's name
  (triton's ``"driver.c"``, f2py's ``"fortranobject.c"``), or a path that the file's path
  ends with (``"csrc/utils.h"`` names ``.../csrc/utils.h``, not every ``utils.h``);
  A generic name (:data:`GENERIC_NAMES`: ``__init__.py``, ``conftest.py``, ``py.typed``...)
  names no particular file and is never evidence;
- **the type named**, for file-type rules: a literal, or a path component of one, that is
  the extension after nothing but globs and placeholders: ``"*.pyx"``, ``".pyx"``,
  ``'%s/*.po'``, ``f'{lang}.po'`` (mypyc's ``"*.c"`` for its ``lib-rt`` sources, compiled at
  run time; trytond's ``iglob('%s/*.po' % localedir)``, which loads translations at run time);
- **the directory named**, for directory rules (docs/, examples/, share/icons/): a literal
  naming the directory the rule matched. Never ``tests``/``test``: code names its test suite
  to run or skip it (pandas' ``util/_tester.py``), so there only the file's name counts.

Only source files that can locate data count: those that mention ``__file__``, ``__path__``,
``importlib.resources``, ``pkgutil.get_data``, ``pkg_resources`` ``resource_*``,
``sys.prefix``, ``sysconfig`` or a knowledge-base reader, outside test code (tests/,
conftest.py, setup.py). On real environments 5-15% of source files qualify; a background grep
(:mod:`prune._grep`) finds them, so the others are never read. Literals are found by a
regular expression, not a parser: a name quoted in a docstring counts too, which can only
keep a file more.

The knowledge base may say a read is optional (``read_optional``: jedi's bundled typeshed,
which jedi does without); those files are not asked about. The module is pure: it reads
source through the callable it is given.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

__all__ = ["GENERIC_NAMES", "LOCATORS", "Candidate", "Evidence", "SiblingReader", "find_evidence"]

#: Byte strings at least one of which a source file that locates data on disk contains.
LOCATORS: tuple[bytes, ...] = (
    b"__file__", b"__path__", b"resources", b"get_data", b"resource_", b"sys.prefix",
    b"sysconfig", b"jupyter_path",
)

# A one-line string literal without escapes (its prefix, r/b/f..., does not matter); a
# triple-quoted docstring yields only its first line, which at worst keeps a file more.
# Starting at a quote lets the regex engine skip to the next quote character.
_LITERAL = re.compile(rb"'([^'\\\n]{1,300})'|\"([^\"\\\n]{1,300})\"")
_SPLIT = re.compile(r"[/\\]")
# A type of file: an extension after nothing but globs and format placeholders ("*.po",
# ".po", "%s.po", "{lang}.po", "%(name)s.po"); "messages.po" names one file, not the type.
_EXTENSION = re.compile(r"^(?:\*|\{[^{}]*\}|%(?:\([^()]*\))?[-#0 +]*\d*(?:\.\d+)?[sdr])*(\.[A-Za-z0-9_]{1,8})$")
# Directory names that say nothing by themselves (every package has them, or they are the
# rule's own generic name for a test suite: see the module docstring).
_NO_DIRECTORY_EVIDENCE = frozenset({"tests", "test"})
#: File names that every package, test suite or documentation tree may have: a literal naming
#: one (``"__init__.py"`` in twisted's plugin.py, pip's req_uninstall.py, mypy's build.py) says
#: nothing about which file is read, so it is no evidence, bare or at the end of a path. Kept
#: as evidence, ``tests/__init__.py`` stayed while the rest of ``twisted/test`` went, and the
#: kept ``__init__`` failed on ``from twisted.test import proto_helpers`` (issue 15, kind A).
GENERIC_NAMES: frozenset[str] = frozenset({
    # Python package and module structure, build hooks, markers, caches.
    "__init__.py", "__init__.pyi", "__init__.pyc", "__main__.py", "__main__.pyc",
    "__pycache__", "conftest.py", "setup.py", "setup.cfg", "pyproject.toml", "py.typed",
    "MANIFEST.in", "tox.ini", "pytest.ini", "noxfile.py", "conf.py", "Makefile", "make.bat",
    # Metadata and project files any directory may carry.
    "README", "README.md", "README.rst", "README.txt", "LICENSE", "LICENSE.txt", "LICENSE.md",
    "COPYING", "NOTICE", "AUTHORS", "CHANGELOG", "CHANGES",
    ".gitignore", ".DS_Store", "RECORD", "METADATA", "WHEEL", "INSTALLER",
})
#: Extensions a literal such as ``"*.py"`` names without picking out a file-type rule's files.
_GENERIC_EXTENSIONS = frozenset({".py", ".pyc", ".pyo"})


@dataclass(frozen=True)
class SiblingReader:
    """A knowledge-base fact: code calling ``call`` reads the file beside the calling module
    with the suffix ``suffix`` (``attach_stub`` reads ``__init__.pyi`` for ``__init__.py``)."""

    id: str
    call: str
    suffix: str
    reason: str
    source: str


@dataclass(frozen=True)
class Candidate:
    """A file an evidence-gated rule would remove.

    ``sub``: its path relative to its site-packages directory (or to the root outside one);
    ``owner``: the distribution that installed it; ``rule``: the rule's id; ``anchor``: the
    directory (like ``sub``) that a directory rule matched, or "" for a file-type rule.
    """

    sub: str
    owner: str
    rule: str
    anchor: str = ""


@dataclass(frozen=True)
class Evidence:
    """Why a candidate stays: ``kind`` is ``reader:<id>``, ``file-name``, ``extension`` or
    ``directory``; ``source`` the kept file (relative to the root) that gave the evidence."""

    kind: str
    source: str
    reason: str


@dataclass
class _Named:
    """What one distribution's locating code names, each with the first file naming it:
    ``names``: every path component of a literal; ``files``: literals that are a bare file
    name; ``paths``: file name -> the literals that name it with directories
    (``"csrc/utils.h"``), as component tuples; ``extensions``: ``"*.pyx"``/``".pyx"``."""

    names: dict[str, str]
    files: dict[str, str]
    paths: dict[str, dict[tuple[str, ...], str]]
    extensions: dict[str, str]


def _add_names(data: bytes, where: str, found: _Named, words: frozenset[str]) -> None:
    """Record every path component, file name and extension glob that a string literal in
    ``data`` names. A bare word (no dot, no separator) is recorded only when it is one of
    ``words`` (the matched directories, and the candidates' file names without a dot)."""
    for a, b in _LITERAL.findall(data):
        raw = a or b
        if b"." not in raw and b"/" not in raw and b"\\" not in raw:
            word = raw.decode("utf-8", "replace").strip()
            if word in words:
                found.names.setdefault(word, where)
                found.files.setdefault(word, where)
            continue
        text = raw.decode("utf-8", "replace").strip()
        parts = [p.strip() for p in _SPLIT.split(text)]
        parts = [p for p in parts if p and p not in (".", "..")]
        if not parts:
            continue
        for part in parts:
            found.names.setdefault(part, where)
            m = _EXTENSION.match(part)
            if m is not None:
                found.extensions.setdefault(m.group(1).lower(), where)
        # The literal's tail of plain components (an f-string's "{d}/" or a "%s/" before it
        # stands for a directory nobody can know statically).
        tail: list[str] = []
        for part in reversed(parts):
            if any(ch in part for ch in "{}%*<> "):
                break
            tail.append(part)
        if not tail:
            continue
        tail.reverse()
        if len(tail) == 1 and len(parts) == 1:
            found.files.setdefault(tail[0], where)
        else:
            found.paths.setdefault(tail[-1], {}).setdefault(tuple(tail), where)


def find_evidence(
    candidates: Sequence[Candidate],
    code: Mapping[str, Sequence[tuple[str, str]]],
    read: Callable[[str], bytes],
    readers: Iterable[SiblingReader] = (),
) -> dict[int, Evidence]:
    """Which candidates the owners' kept code reads at run time.

    :param candidates: files evidence-gated rules would remove.
    :param code: distribution -> its kept source files that may locate data, as (path
        relative to the root, path relative to the site); only distributions that own a
        candidate are asked about.
    :param read: the bytes of a file (relative to the root); empty when unreadable.
    :param readers: sibling readers from the knowledge base.
    :returns: index in ``candidates`` -> the evidence that keeps it (absent: none found).
    """
    owners = {c.owner for c in candidates if c.owner}
    words = frozenset(c.anchor.rpartition("/")[2] for c in candidates if c.anchor) | frozenset(
        name for name in (c.sub.rpartition("/")[2] for c in candidates) if "." not in name)
    readers = tuple(readers)
    locators = LOCATORS + tuple(r.call.encode() for r in readers)
    named: dict[str, _Named] = {}
    # Sibling files a reader reads, in site terms: sub -> (reader, the calling file).
    siblings: dict[str, tuple[SiblingReader, str]] = {}
    for owner in sorted(owners):
        found = _Named({}, {}, {}, {})
        for path, sub in code.get(owner, ()):
            data = read(path)
            # The caller's grep is only a filter: a file that cannot locate data is no evidence.
            if not data or not any(loc in data for loc in locators):
                continue
            for r in readers:
                if r.call.encode() in data and sub.endswith(".py"):
                    siblings.setdefault(sub[:-3] + r.suffix, (r, path))
            _add_names(data, path, found, words)
        named[owner] = found

    out: dict[int, Evidence] = {}
    for i, c in enumerate(candidates):
        ev = _evidence_for(c, named.get(c.owner), siblings)
        if ev is not None:
            out[i] = ev
    return out


def _evidence_for(c: Candidate, named: Optional[_Named],
                  siblings: Mapping[str, tuple[SiblingReader, str]]) -> Optional[Evidence]:
    hit = siblings.get(c.sub)
    if hit is not None:
        r, caller = hit
        return Evidence(f"reader:{r.id}", caller,
                        f"{caller} calls {r.call}(), which reads {posixpath.basename(c.sub)} beside it: "
                        f"{r.reason} (knowledge:{r.id}; {r.source})")
    if named is None or not c.owner or not (named.names or named.files or named.paths or named.extensions):
        return None
    name = c.sub.rpartition("/")[2]
    where = named.files.get(name) if name not in GENERIC_NAMES else None
    if where is not None:
        return Evidence("file-name", where, f"{c.owner}'s code names {name!r} ({where})")
    tails = named.paths.get(name) if name not in GENERIC_NAMES else None
    if tails:
        # A literal with directories names the file only where the candidate's path ends so.
        parts = tuple(c.sub.split("/"))
        for tail, where in sorted(tails.items()):
            if parts[-len(tail):] == tail:
                return Evidence("file-name", where, f"{c.owner}'s code names {'/'.join(tail)!r} ({where})")
    if not c.anchor:
        # A file-type rule (*.pyi, *.h): the owner's code names that type of file.
        stem, dot, ext = name.rpartition(".")
        suffix = "." + ext.lower()
        where = named.extensions.get(suffix) if dot and stem and suffix not in _GENERIC_EXTENSIONS else None
        if where is not None:
            return Evidence("extension", where, f"{c.owner}'s code names files '*.{ext}' ({where})")
        return None
    # A directory rule (docs/, share/icons/): the owner's code names the directory it matched.
    # A data file's type or a subdirectory's name (data, images) says nothing of which
    # directory is meant, and a test suite's name is named to run or skip it.
    directory = c.anchor.rpartition("/")[2]
    if directory not in _NO_DIRECTORY_EVIDENCE:
        where = named.names.get(directory)
        if where is not None:
            return Evidence("directory", where, f"{c.owner}'s code names the directory {directory!r} ({where})")
    return None
