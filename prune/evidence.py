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
``sys.prefix``, ``sysconfig``, ``#include`` (code writing C++ for a compiler: inductor's
``cpp_template.py`` splices ``#include <c10/util/Unroll.h>``) or a knowledge-base reader, outside test code (tests/,
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
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["GENERIC_NAMES", "HEADER_SUFFIXES", "HEADER_TYPES", "INCLUDING_SUFFIXES", "LOCATORS", "Candidate",
           "Evidence", "SiblingReader", "find_evidence"]

#: Byte strings at least one of which a source file that locates data on disk contains.
LOCATORS: tuple[bytes, ...] = (
    b"__file__", b"__path__", b"resources", b"get_data", b"resource_", b"sys.prefix",
    b"sysconfig", b"jupyter_path", b"#include",
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
#: C and C++ header types: a compiler reads them through ``#include``, so the ones kept code
#: needs are the closure of the files it names, not every file of the type.
HEADER_TYPES: frozenset[str] = frozenset({".h", ".hh", ".hpp", ".hxx", ".h++", ".cuh", ".inc", ".inl", ".tcc"})
#: Types whose ``#include`` lines the closure follows: headers, the C/C++ sources kept code
#: compiles (inductor's ``aoti_runtime/interface.cpp``), and Cython's .pxd/.pyx/.pxi.
_INCLUDING_TYPES = HEADER_TYPES | frozenset({".c", ".cc", ".cpp", ".cxx", ".cu", ".pxd", ".pyx", ".pxi"})
#: The same, for ``str.endswith``.
INCLUDING_SUFFIXES: tuple[str, ...] = tuple(sorted(_INCLUDING_TYPES))
HEADER_SUFFIXES: tuple[str, ...] = tuple(sorted(HEADER_TYPES))
# What may stand between two literals Python joins: blanks, newlines, a backslash
# continuation, the next literal's prefix.
_ADJACENT = re.compile(rb"[ \t\r\n\\]*[rRbBuUfF]{0,2}")
_INCLUDED = re.compile(r'#[ \t]*include[ \t]*[<"]([^<>"]{1,300})[>"]')
# A function that hands the distribution's headers to compilers, by the convention numpy,
# pybind11, pythran and pyarrow follow (``get_include()``) and torch's cpp_extension
# (``include_paths()``), nanobind (``include_dir()``).
_PUBLISHES = re.compile(rb"^[ \t]*def[ \t]+(get_include\w*|get_includes?|include_paths?|include_dirs?)[ \t]*\(", re.M)
# C's #include, and Cython's `cdef extern from "x.h"` (a .pxd's header: cysignals' signals.pxd
# names struct_signals.h beside it) and `include "x.pxi"`.
_INCLUDE = re.compile(rb'^[ \t]*(?:#[ \t]*include[ \t]*[<"]|cdef[ \t]+extern[ \t]+from[ \t]+["\']|include[ \t]+["\'])'
                      rb'([^<>"\'\r\n]{1,300})[>"\']', re.M)


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
    directory (like ``sub``) that a directory rule matched, or "" for a file-type rule;
    ``path``: its path relative to the root, for reading it ("" when ``sub`` is that path).
    """

    sub: str
    owner: str
    rule: str
    anchor: str = ""
    path: str = ""


@dataclass(frozen=True)
class Evidence:
    """Why a candidate stays: ``kind`` is ``reader:<id>``, ``file-name``, ``extension``,
    ``directory``, ``publishes-headers``, ``header-directory`` or ``include``; ``source`` the
    kept file (relative to the root) that gave the evidence."""

    kind: str
    source: str
    reason: str


@dataclass
class _Named:
    """What one distribution's locating code names, each with the first file naming it:
    ``names``: every path component of a literal; ``files``: literals that are a bare file
    name; ``paths``: file name -> the literals that name it with directories
    (``"csrc/utils.h"``), as component tuples; ``extensions``: ``"*.pyx"``/``".pyx"``;
    ``scopes``: header extension -> {each file naming it: for each literal naming it, the
    plain directories before the name (``()``: none)}, to narrow the type to where it is built."""

    names: dict[str, str]
    files: dict[str, str]
    paths: dict[str, dict[tuple[str, ...], str]]
    extensions: dict[str, str]
    scopes: dict[str, dict[str, list[tuple[str, ...]]]] = field(default_factory=dict)


def _add_names(data: bytes, where: str, found: _Named, words: frozenset[str]) -> None:
    """Record every path component, file name and extension glob that a string literal in
    ``data`` names. A bare word (no dot, no separator) is recorded only when it is one of
    ``words`` (the matched directories, and the candidates' file names without a dot).
    Adjacent literals are one, as Python reads them (``"torch/csrc/inductor/" f"{d}.h"``),
    and a literal holding ``#include <x/y.h>`` (code writing C++ for a compiler: torch's
    ``load_inline`` prepends ``#include <torch/extension.h>``) names ``x/y.h``."""
    for raw in _joined_literals(data):
        if b"." not in raw and b"/" not in raw and b"\\" not in raw:
            word = raw.decode("utf-8", "replace").strip()
            if word in words:
                found.names.setdefault(word, where)
                found.files.setdefault(word, where)
            continue
        text = raw.decode("utf-8", "replace").strip()
        texts = _INCLUDED.findall(text) if "include" in text else []
        for one in texts or [text]:
            _add_literal(one, where, found)


def _joined_literals(data: bytes) -> list[bytes]:
    """The bodies of the one-line string literals in ``data``, adjacent ones joined."""
    out: list[bytes] = []
    end = -1
    for m in _LITERAL.finditer(data):
        body = m.group(1) or m.group(2)
        if out and _ADJACENT.fullmatch(data, end, m.start()) is not None:
            out[-1] += body
        else:
            out.append(body)
        end = m.end()
    return out


def _add_literal(text: str, where: str, found: _Named) -> None:
    """Record what one literal's text names (see :func:`_add_names`). A header type named
    after plain directories (``torch/csrc/inductor/{kind}/{d}.h``) is scoped to them; named
    bare (``f"{name}.h"``) it is not (:attr:`_Named.scopes`)."""
    parts = [p.strip() for p in _SPLIT.split(text)]
    parts = [p for p in parts if p and p not in (".", "..")]
    for part in parts:
        found.names.setdefault(part, where)
        m = _EXTENSION.match(part)
        if m is not None:
            ext = m.group(1).lower()
            found.extensions.setdefault(ext, where)
            if ext in HEADER_TYPES:
                head: list[str] = []
                for p in parts[:-1]:
                    if _placeholder(p):
                        break
                    head.append(p)
                found.scopes.setdefault(ext, {}).setdefault(where, []).append(tuple(head))
    # The literal's tail of plain components (an f-string's "{d}/" or a "%s/" before it
    # stands for a directory nobody can know statically).
    tail: list[str] = []
    for part in reversed(parts):
        if _placeholder(part):
            break
        tail.append(part)
    if not tail:
        return
    tail.reverse()
    if len(tail) == 1 and len(parts) == 1:
        found.files.setdefault(tail[0], where)
    else:
        found.paths.setdefault(tail[-1], {}).setdefault(tuple(tail), where)


def _placeholder(part: str) -> bool:
    """Whether a path component is not plain (a glob, a format placeholder, markup)."""
    return any(ch in part for ch in "{}%*<> ")


def find_evidence(
    candidates: Sequence[Candidate],
    code: Mapping[str, Sequence[tuple[str, str]]],
    read: Callable[[str], bytes],
    readers: Iterable[SiblingReader] = (),
    kept_sources: Sequence[Candidate] = (),
) -> dict[int, Evidence]:
    """Which candidates the owners' kept code reads at run time.

    :param candidates: files evidence-gated rules would remove.
    :param code: distribution -> its kept source files that may locate data, as (path
        relative to the root, path relative to the site); only distributions that own a
        candidate are asked about.
    :param read: the bytes of a file (relative to the root); empty when unreadable.
    :param readers: sibling readers from the knowledge base.
    :param kept_sources: headers and C/C++ sources that stay for another reason (a
        protection, a keep pattern, an environment-wide reader): what they ``#include``
        stays too.
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
    publishers: dict[str, tuple[str, str]] = {}  # owner -> (the function, the file defining it)
    for owner in sorted(owners):
        found = _Named({}, {}, {}, {})
        for path, sub in code.get(owner, ()):
            data = read(path)
            # The caller's grep is only a filter: a file that cannot locate data is no evidence.
            if not data or not any(loc in data for loc in locators):
                continue
            published = _PUBLISHES.search(data)
            if published is not None and owner not in publishers:
                publishers[owner] = (published.group(1).decode(), path)
            for r in readers:
                if r.call.encode() in data and sub.endswith(".py"):
                    siblings.setdefault(sub[:-3] + r.suffix, (r, path))
            _add_names(data, path, found, words)
        named[owner] = found

    out: dict[int, Evidence] = {}
    for i, c in enumerate(candidates):
        ev = _evidence_for(c, named.get(c.owner), siblings)
        # Published headers are the ones a file-type rule matches, not a test suite's.
        if (c.owner in publishers and not c.anchor and _suffix(c.sub) in HEADER_TYPES
                and (ev is None or ev.kind == "extension")):
            function, where = publishers[c.owner]
            ev = Evidence("publishes-headers", where,
                          f"{c.owner}'s code hands its headers to compilers ({function}() in {where}): "
                          "code compiled at run time may include any of them")
        if ev is not None:
            out[i] = ev
    _narrow_header_types(candidates, out, named)
    _follow_includes(candidates, out, read, kept_sources)
    return out


def _suffix(sub: str) -> str:
    name = sub.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    return "." + ext.lower() if dot and stem else ""


def _under(sub: str, directory: tuple[str, ...]) -> bool:
    """Whether ``directory``'s components appear, in order and adjacent, among the directories
    of ``sub`` (``torch/csrc/inductor`` is under ``torch/include/torch/csrc/inductor/x/y.h``)."""
    parts = sub.split("/")[:-1]
    n = len(directory)
    return any(tuple(parts[i:i + n]) == directory for i in range(len(parts) - n + 1))


def _narrow_header_types(candidates: Sequence[Candidate], out: dict[int, Evidence],
                         named: Mapping[str, _Named]) -> None:
    """Narrow "the owner's code names files '*.h'" to the headers under the directories that
    the naming code also names (and, through :func:`_follow_includes`, what those include).

    A header type is named to build a header's name (torch's inductor: ``"torch/csrc/inductor/"
    f"{kind}/{device}.h"``), and a compiler then reads what that header includes, not every
    header of the distribution: keeping all of them kept 31 MB of torch's headers where the
    inductor and ``cpp_extension`` need about 17 MB. A name built under plain directories
    keeps the headers under them (none, where those directories are not in this wheel:
    inductor's ``c10/metal/{header}.h`` on a CPU build); one built with no directory before
    it (``f"{name}.h"``) could be any header, and then every header of the type stays.
    """
    by_owner: dict[tuple[str, str], list[int]] = {}
    for i, ev in out.items():
        c = candidates[i]
        if ev.kind == "extension" and _suffix(c.sub) in HEADER_TYPES:
            by_owner.setdefault((c.owner, _suffix(c.sub)), []).append(i)
    for (owner, ext), hits in sorted(by_owner.items()):
        found = named.get(owner)
        scopes = found.scopes.get(ext, {}) if found is not None else {}
        heads = {(head, where) for where, listed in scopes.items() for head in listed}
        if not heads or any(not head for head, _ in heads):
            continue  # a name built with no directory before it: every header may be meant
        for i in hits:
            c = candidates[i]
            inside = min(((h, w) for h, w in heads if _under(c.sub, h)), default=None)
            if inside is None:
                del out[i]
            else:
                head, where = inside
                out[i] = Evidence("header-directory", where,
                                  f"{owner}'s code builds '*{ext}' names under {'/'.join(head)!r} ({where})")


def _follow_includes(candidates: Sequence[Candidate], out: dict[int, Evidence],
                     read: Callable[[str], bytes], kept_sources: Sequence[Candidate] = ()) -> None:
    """Keep what kept headers and C/C++ sources ``#include``, to a fixpoint: a compiler reads
    the whole closure (torch's ``cpp_prefix.h`` needs ``c10/util/hash.h``).

    An include is resolved against the candidates by path suffix (``<c10/util/hash.h>`` is
    every candidate whose path ends so), the including file's own distribution first, then
    any; ``#if`` is not evaluated, so every branch counts (which can only keep more).
    """
    headers: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        if _suffix(c.sub) in _INCLUDING_TYPES:
            headers.setdefault(c.sub.rpartition("/")[2], []).append(i)
    # Files that stay for another reason take negative indexes: -1 is kept_sources[0].
    every = {**{-1 - k: c for k, c in enumerate(kept_sources)}, **dict(enumerate(candidates))}
    todo = [i for i in out if _suffix(candidates[i].sub) in _INCLUDING_TYPES]
    # Each kept file's first kept ancestor that is no include: what the report names as the
    # start of the chain (torch/extension.h, named by cpp_extension.py).
    origin = {i: f"{candidates[i].sub.rpartition('/')[2]}, kept by {out[i].source}" for i in todo}
    for k, c in enumerate(kept_sources):
        origin[-1 - k] = f"{c.sub.rpartition('/')[2]}, which stays"
        todo.append(-1 - k)
    done: set[int] = set()
    while todo:
        i = todo.pop()
        if i in done:
            continue
        done.add(i)
        c = every[i]
        via = c.path or c.sub
        for raw in _INCLUDE.findall(read(via)):
            name = raw.decode("utf-8", "replace").strip()
            wanted = posixpath.normpath(posixpath.join(posixpath.dirname(c.sub), name))
            tail = "/" + "/".join(p for p in name.split("/") if p not in (".", ".."))
            hits = [j for j in headers.get(name.rpartition("/")[2], ())
                    if candidates[j].sub == wanted or ("/" + candidates[j].sub).endswith(tail)]
            own = [j for j in hits if candidates[j].owner == c.owner]
            for j in own or hits:
                if j not in out:
                    out[j] = Evidence("include", via,
                                      f"#include <{name}> in {via}, which stays (from {origin[i]})")
                    origin[j] = origin[i]
                    todo.append(j)


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
