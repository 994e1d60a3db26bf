"""Decide what goes: a pure function of (inventory, profile, options, sources).

Every decision carries its reason (rule id, pattern, profile, owning distribution). Keep
always beats remove: protections (metadata, .pth, sourceless bytecode, .mo catalogs, the
knowledge base), keep rules, traces and the import check are applied before any removal
rule can take a file. The only input read from disk is source code, through the
``SourceReader`` passed in (tests pass an in-memory one), so dry-run and real run share this
plan exactly.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import compress, groupby, repeat
from operator import getitem, itemgetter
from typing import Any, Optional, Protocol, cast

from packaging.utils import canonicalize_name

from ._gc import paused_gc
from ._grep import GrepHits
from ._match import FirstMatch as _FirstMatch
from ._match import Matcher as _Matcher
from ._match import ProtectionMatcher as _ProtectionMatcher
from .errors import UsageError
from .model import Action, Diagnostic, DistDecision, FileEntry, Inventory, Keep, Plan, within_any
from .profiles import Knowledge, Profile, Rule, load_knowledge, make_rule

__all__ = ["PlanOptions", "SourceReader", "DiskSources", "build_plan", "explain", "remove_pattern_lists",
           "root_distributions"]

_VENV_SKELETON = re.compile(r"^(pyvenv\.cfg|lib64|bin/(python[\d.]*|pypy[\d.]*|activate.*|Activate\.ps1))$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SourceReader(Protocol):
    """Where the planner gets source code from (the disk, or a fake in tests)."""

    def imports(self, path: str) -> frozenset[str]:
        """Absolute module names imported by the module at ``path`` (relative to the root)."""

    def required(self, path: str) -> frozenset[str]:
        """The imports whose absence breaks the module (no optional or TYPE_CHECKING ones)."""

    def contains(self, path: str, needles: tuple[bytes, ...]) -> bool:
        """Whether an import statement of the file mentions any of ``needles`` (identifiers).

        A cheap pre-filter: a False here means no import of those names can be in the file.
        """


@dataclass(frozen=True)
class PlanOptions:
    """What the user asked for beyond the profile. Distribution names are canonicalised.

    ``keep``/``remove``: extra gitwildmatch patterns (anchoring as in profiles).
    ``keep_modules``: dotted module names kept whole. ``roots``: explicit root distributions
    (None: REQUESTED ones). ``keep_dists``/``remove_dists``: overrides; ``force`` allows
    removing a distribution something requires. ``bytecode``: overrides the profile's.
    ``trace_paths``/``trace_modules``: files used and modules imported by traced runs
    (``--keep-from``); ``trace_dirs``: directories they listed (kept as directories).
    ``trace_commands``: the commands the traces ran, re-run as checks by verification.
    """

    keep: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    keep_modules: tuple[str, ...] = ()
    roots: Optional[tuple[str, ...]] = None
    keep_dists: tuple[str, ...] = ()
    remove_dists: tuple[str, ...] = ()
    force: bool = False
    bytecode: Optional[str] = None
    trace_paths: frozenset[str] = frozenset()
    trace_dirs: frozenset[str] = frozenset()
    trace_modules: frozenset[str] = frozenset()
    has_trace: bool = False
    trace_commands: tuple[tuple[str, ...], ...] = field(default=())


def check_strings(owner: str, **fields: object) -> None:
    """Refuse a field that should hold strings but holds a bare string or anything else (a
    tester's ``PlanOptions(keep="certifi/")`` kept every file named c, e, r, t, i or f, and
    ``PruneRequest(checks="python -c 1")`` ran ten one-letter shell commands).

    :raises UsageError: naming the field and what to pass instead.
    """
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, str):
            raise UsageError(f"{owner}({name}={value!r}) takes a tuple of strings, not one string; "
                             f"write {name}=({value!r},)")
        if not isinstance(value, (tuple, list, frozenset, set)) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{owner}({name}={value!r}) takes a tuple of strings")


def check_options(options: PlanOptions) -> None:
    """:raises UsageError: a pattern or name field of ``options`` is not a tuple of strings."""
    check_strings("PlanOptions", keep=options.keep, remove=options.remove, keep_modules=options.keep_modules,
                  roots=options.roots, keep_dists=options.keep_dists, remove_dists=options.remove_dists)


def remove_pattern_lists(patterns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """``--remove`` patterns as one ordered list, last match wins (``.gitignore``): a
    ``!pattern`` re-includes what earlier ``--remove`` patterns matched, so each earlier
    pattern's rule carries it (``--remove '*.md' --remove '!README.md'``). Returns (index,
    patterns) per positive pattern, so rule ids stay ``cli-remove-N`` by position.

    :raises UsageError: a negation with no earlier ``--remove`` pattern re-includes nothing
        (Serverless ``slimPatterns`` users write ``'!x'`` to keep x: that is ``--keep x``).
    """
    lists: list[tuple[int, list[str]]] = []
    for i, pat in enumerate(patterns):
        if pat.startswith("!"):
            if not lists:
                raise UsageError(f"--remove {pat!r}: a negation only re-includes what an earlier --remove "
                                 f"matched; to keep a path, write --keep {pat[1:]!r}")
            for _, pats in lists:
                pats.append(pat)
        else:
            lists.append((i, [pat]))
    return lists


# An import statement (with a parenthesised name list spanning lines), or a call of
# import_module()/__import__(). Used to pre-filter files before the full scan in imports.py.
_IMPORT_STMT = re.compile(
    rb"^[^\n#]*\b(?:import|import_module|__import__)\b(?:\s*\([^)]*\)|[^\n]*)", re.MULTILINE
)
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def _import_statements(data: bytes) -> list[bytes]:
    """``_IMPORT_STMT.findall(data)``, an order of magnitude faster.

    The pattern can only match at the start of a line that holds an import keyword, so it is
    tried there alone (located with ``bytes.find``), instead of at every position. On 67k real
    files (torch, the standard library, a dev venv) the results are identical and the time
    falls from 7.6 s to 0.6 s.
    """
    out: list[bytes] = []
    find = data.find
    i = find(b"import")
    while i != -1:
        m = _IMPORT_STMT.match(data, data.rfind(b"\n", 0, i) + 1)
        if m is not None:
            out.append(m.group())
            nl = find(b"\n", m.end())
        else:
            nl = find(b"\n", i)
        if nl == -1:
            break
        i = find(b"import", nl)
    return out


class DiskSources:
    """Reads sources from the environment on demand.

    Each file is read once for its *import tokens* (every identifier that appears in an
    import statement), which answers :meth:`contains` for any needle; the full import scan
    re-reads only the files that pass that filter. Reading every source file twice (once per
    question) dominated planning time on 100k-file environments.
    """

    def __init__(self, root: os.PathLike[str] | str, inventory: Optional[Inventory] = None) -> None:
        self._root = os.fspath(root)
        self._tokens: dict[str, frozenset[bytes]] = {}
        self._covered: dict[str, frozenset[bytes]] = {}
        self._hints: set[bytes] = set()
        self._asked_for: dict[tuple[bytes, ...], tuple[frozenset[bytes], tuple[bytes, ...]]] = {}
        self._imports: dict[str, frozenset[str]] = {}
        self._required: dict[str, frozenset[str]] = {}
        self._sites = inventory.env.site_packages if inventory else ("",)
        self._inventory = inventory
        self._grep: Optional[GrepHits] = None
        self._groups: list[tuple[frozenset[bytes], tuple[str, ...]]] = []
        self._group_greps: list[GrepHits] = []
        self._links: frozenset[str] = frozenset()

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

    def read_bytes(self, path: str) -> bytes:
        """The file's bytes (empty when it cannot be read): for sourceless ``.pyc`` modules."""
        return self._read(path)

    def hint(self, needles: Iterable[bytes]) -> None:
        """Needles later questions will ask about, so one read of a file answers them all."""
        self._hints |= set(needles)
        self._asked_for.clear()

    def hint_group(self, needles: Iterable[bytes], *, skip_dirs: Iterable[str] = ()) -> None:
        """Needles of a question of their own (:mod:`prune.evidence`'s locators), answered by
        a grep of their own: mixed into the hints, they would make every file that holds a
        hinted word a candidate for them, and the hinted questions read more. ``skip_dirs``:
        directory names whose files the question never asks about (test code)."""
        self._groups.append((frozenset(needles), tuple(skip_dirs)))

    def prefetch(self) -> None:
        """Start one grep for the hinted needles, and one per hinted group, over the
        site-packages directories, in the background: files a grep does not name are never
        read for its needles (see :mod:`prune._grep`). Needs the inventory (which files are
        symlinks)."""
        if self._inventory is None or self._grep is not None or self._group_greps:
            return
        if not self._hints and not self._groups:
            return
        files = self._inventory.files
        self._links = frozenset(compress(map(itemgetter(0), files), map(itemgetter(2), files)))
        if self._hints:
            self._grep = GrepHits(self._root, self._sites, _shortest(frozenset(self._hints)))
        self._group_greps = [GrepHits(self._root, self._sites, _shortest(words), skip_dirs=skip)
                             for words, skip in self._groups]

    def close(self) -> None:
        """Stop the greps started by :meth:`prefetch` whose answer was never needed."""
        for grep in ([self._grep] if self._grep is not None else []) + self._group_greps:
            grep.close()

    def _asked(self, needles: tuple[bytes, ...]) -> tuple[frozenset[bytes], tuple[bytes, ...]]:
        """Every needle a read of a file answers (the hints and ``needles``), and the
        shortest of them to search for: one set per question, not one per file."""
        found = self._asked_for.get(needles)
        if found is None:
            asked = frozenset(self._hints) | frozenset(needles)
            found = self._asked_for[needles] = (asked, _shortest(asked))
        return found

    def may_contain(self, paths: Sequence[str], needles: tuple[bytes, ...]) -> list[str]:
        """The ``paths`` for which :meth:`contains` may answer True: all of them, less those
        the background grep rules out (one set lookup each)."""
        found = list(paths)
        for grep in ([self._grep] if self._grep is not None else []) + self._group_greps:
            found = grep.possible(found, needles, self._links)  # each rules out only what it covers
        return found

    def contains(self, path: str, needles: tuple[bytes, ...]) -> bool:
        if self._grep is not None and not self._grep.possible((path,), needles, self._links):
            return False
        tokens = self._tokens.get(path)
        covered = self._covered.get(path)
        if tokens is None or (covered is not None and not covered.issuperset(needles)):
            data = self._read(path)
            asked, shortest = self._asked(needles)
            # memmem first (C speed): most files mention none of the needles anywhere, and
            # only those that do pay for the import-statement regex.
            if data and any(n in data for n in shortest):
                tokens = frozenset(_WORD.findall(b"\n".join(_import_statements(data))))
                self._covered.pop(path, None)
            else:
                tokens = frozenset()
                self._covered[path] = asked
            self._tokens[path] = tokens
        return any(n in tokens for n in needles)

    def _scan(self, path: str, required: bool) -> frozenset[str]:
        from .imports import imported_modules, module_name_for, required_modules

        sub = _site_relative(path, self._sites)
        named = module_name_for(sub[1]) if sub else None
        if named is None:
            return frozenset()
        fn = required_modules if required else imported_modules
        return frozenset(fn(self._read(path), named[0], named[1]))

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
        """The modules and programs the file runs or looks up by name
        (:func:`prune.imports.run_references`), when its bytes hold one of ``names``."""
        from .imports import run_references

        data = self._read(path)
        if not any(n in data for n in names):
            return frozenset()
        return run_references(data)


def _shortest(needles: frozenset[bytes]) -> tuple[bytes, ...]:
    """The needles that contain no other needle: a text holds some needle exactly when it
    holds one of these (``test`` answers for ``tests`` and ``testing`` too)."""
    return tuple(sorted(n for n in needles if not any(o != n and o in n for o in needles)))


def _site_relative(path: str, sites: Sequence[str]) -> Optional[tuple[str, str]]:
    """(site, path relative to it) for a path inside a site-packages dir, else None."""
    for site in sites:
        if not site:
            return "", path
        if path.startswith(site + "/"):
            return site, path[len(site) + 1:]
    return None


class _FileState:
    """What the planner has decided about one file so far (one per file: slotted)."""

    __slots__ = ("entry", "site", "sub", "owner", "remove_rule", "fallback_rule", "remove_key",
                 "saved_by", "saved_reason")

    def __init__(self, entry: FileEntry, site: Optional[str], sub: str, owner: str) -> None:
        self.entry = entry
        self.site = site
        self.sub = sub
        self.owner = owner
        self.remove_rule: Optional[_Matcher] = None
        self.fallback_rule: Optional[_Matcher] = None  # the last non-import-checked rule that matched
        self.remove_key: Optional[tuple[str, str, str, str, bool]] = None
        self.saved_by = ""
        self.saved_reason = ""


class _LazyPaths:
    """The inventory's paths as a set, built on the first question: only a loose ``.pyc``
    (rare) asks whether its source exists."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._paths: Optional[frozenset[str]] = None

    def __contains__(self, path: object) -> bool:
        if self._paths is None:
            self._paths = frozenset(fe.path for fe in self._inventory.files)
        return path in self._paths


def _pth_protected(inv: Inventory, sources_root: str) -> set[str]:
    """Paths named by ``*.pth`` files (relative to their site), plus the .pth files.

    A .pth line that is not an ``import`` statement is a directory added to sys.path
    (site module semantics); editable installs use this to point at their source tree.
    """
    protected: set[str] = set()
    for site, path in _site_top_files(inv.files, inv.env.site_packages):
        if not path.endswith(".pth"):
            continue
        protected.add(path)
        try:
            with open(os.path.join(sources_root, path), encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if not line or line.startswith(("#", "import ", "import\t")):
                continue
            target = posixpath.normpath(posixpath.join(site, line)) if not line.startswith("/") else None
            if target and not target.startswith(".."):
                protected.add(target)
    return protected


def _indexes(items: list[Any], value: object) -> list[int]:
    """The positions of ``value`` in ``items``, found by list.index (a C loop): for values
    that are rare, in lists as long as the inventory."""
    found: list[int] = []
    with contextlib.suppress(ValueError):
        while True:
            found.append(items.index(value, found[-1] + 1 if found else 0))
    return found


def _site_top_files(files: Sequence[FileEntry], sites: Sequence[str]) -> list[tuple[str, str]]:
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
            path = files[i][0]
            if not path.startswith(prefix):
                break
            head, below, _ = path[len(prefix):].partition("/")
            if below:
                i = bisect_left(files, (f"{prefix}{head}0",), i, n)
            else:
                found.append((site, path))
                i += 1
    return found


def _split_sites(files: Sequence[FileEntry], sites: Sequence[str]) -> tuple[list[Optional[str]], list[str]]:
    """Each file's site-packages directory (None outside one) and its path relative to it:
    :func:`_site_relative` for every file.

    Files are sorted by path, so a site's files are one slice of them, found by bisection
    (see :func:`_site_top_files`) and cut without a Python statement per file.
    """
    n = len(files)
    site_of: list[Optional[str]] = [None] * n
    subs = list(map(itemgetter(0), files))  # FileEntry.path
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
    """(site, top-level name) -> owning distribution, to attribute files RECORD omits.
    ``site_of`` and ``subs`` are each file's site and path in it (:func:`_split_sites`)."""
    owner: dict[tuple[str, str], str] = {}
    for fe, site, sub in zip(files, site_of, subs):
        if fe.owner is None or site is None or "/" not in sub:
            continue
        top = sub.split("/", 1)[0]
        if top.endswith((".dist-info", ".egg-info")):
            continue
        owner.setdefault((site, top), fe.owner)
    return owner


def _decide_distributions(
    inv: Inventory, profile: Profile, options: PlanOptions, knowledge: Knowledge,
    sources: SourceReader, sizes: Mapping[str, int],
) -> tuple[DistDecision, ...]:
    """Ask the graph which distributions go (pip/setuptools/wheel, dev tools, unreachable)."""
    explicit = bool(options.roots) or bool(options.remove_dists)
    if not profile.remove_distributions and not profile.remove_dev_tools and not explicit:
        return ()
    from .graph import decide_distributions

    # A distribution whose RECORD could not be read is never removed whole: which files are
    # its own is unknown (issue 16: --remove-dist six left six.py behind, silently).
    unreadable = {d.name: d.record_error for d in inv.distributions if d.record_error}
    for name in options.remove_dists:
        reason = unreadable.get(canonicalize_name(name))
        if reason:
            dist = inv.distribution(canonicalize_name(name))
            where = f"{dist.metadata_dir}/RECORD" if dist else "its RECORD"
            raise UsageError(f"--remove-dist {name}: {where} cannot be read ({reason}); venv-prune "
                             "cannot tell which files are its own; make it readable and run again")
    keep_whole = sorted(set(options.keep_dists) | set(unreadable))

    def decide(imports: Mapping[str, Sequence[tuple[str, str]]],
               runs: Mapping[str, Sequence[tuple[str, str, str]]]) -> tuple[DistDecision, ...]:
        decision = decide_distributions(
            inv.distributions,
            marker_env=inv.env.marker_environment(),
            roots=list(options.roots) if options.roots else None,
            removable=list(profile.remove_distributions),
            dev_tools=dict(knowledge.dev_tools) if profile.remove_dev_tools else None,
            keep=keep_whole,
            remove=list(options.remove_dists),
            force=options.force,
            imports=imports,
            sizes=sizes,
            dev_extras=knowledge.dev_extras,
            runs=runs,
            lists_remove_requested=profile.lists_remove_requested,
        )
        return tuple(decision.decisions)

    # Imports can only keep distributions, never remove them: so a first pass without
    # them bounds the set whose modules the (costly) source scan has to look for.
    first = decide({}, {})
    maybe = {d.name for d in first if d.remove}
    if not maybe:
        return first
    # Only a kept distribution's imports keep anything (the graph follows them from kept
    # distributions only), so only kept distributions' files are scanned: first those kept
    # without any import evidence, then, round by round, those the evidence kept. The
    # result is what scanning every file gives, without parsing the files of development
    # tools that go (flaskdev: 689 files of pytest, mypy and friends importing each other).
    decided = first
    evidence: dict[str, list[tuple[str, str]]] = {}
    run_evidence: dict[str, list[tuple[str, str, str]]] = {}
    scanned: set[str] = set()
    while True:
        kept = {d.name for d in decided if not d.remove} - scanned
        found, ran = _distribution_imports(inv, sources, maybe, kept) if kept else ({}, {})
        scanned |= kept
        if not found and not ran:
            return decided
        evidence.update(found)
        run_evidence.update(ran)
        decided = decide(evidence, run_evidence)


def _distribution_imports(
    inv: Inventory, sources: SourceReader, maybe: set[str], owners: Container[str],
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str, str]]]]:
    """What the files of the distributions in ``owners`` need of the distributions in
    ``maybe`` (those that might be removed):

    - imports: distribution -> [(imported module, file)], for imports of their top-level
      modules, and of modules they provide on the target (``distutils`` from setuptools on
      Python 3.12+, :func:`prune.graph.provided_modules`);
    - runs: distribution -> [(needed distribution, what, file)], for kept code that runs one
      of their modules or console scripts, or looks one up (``[sys.executable, "-m",
      "pip"]``, ``find_spec("pip")``, ``shutil.which("black")``:
      :func:`prune.imports.run_references`; issue 15, kind C).

    Each source file is first checked for those names as bytes (cheap) and parsed only on
    a hit. Test directories, ``conftest.py`` and ``setup.py`` files are skipped: code that only
    tests or builds imports does not keep a distribution.
    """
    from .graph import provided_modules

    candidates: dict[str, str] = {}
    programs: dict[str, str] = {}
    for dist in inv.distributions:
        if dist.name not in maybe:
            continue
        for top in _dist_top_levels(dist, inv.env.site_packages):
            candidates.setdefault(top, dist.name)
        for script in dist.console_scripts:
            programs.setdefault(script, dist.name)
    for module, provider in provided_modules(inv.env.marker_environment()).items():
        if provider in maybe:
            candidates.setdefault(module, provider)
    if not candidates and not programs:
        return {}, {}
    from .imports import is_evidence_file

    needles = tuple(sorted({t.encode() for t in candidates}))
    result: dict[str, list[tuple[str, str]]] = defaultdict(list)
    hint = getattr(sources, "hint", None)
    if hint is not None:
        hint(needles)  # one read of each file answers this question and the import check's
    # A sourceless module's bytecode may come from another Python version, so it is not
    # unmarshalled: a candidate's name among its bytes counts as an import (keeping a
    # distribution costs bytes; removing a needed one breaks the module).
    read = getattr(sources, "read_bytes", None)
    existing = {fe.path for fe in inv.files} if read is not None else set()
    for fe in inv.files:
        if fe.owner is None or fe.owner not in owners:
            continue
        if fe.path.endswith("-nspkg.pth"):
            result[fe.owner].append(("pkg_resources", fe.path))
        elif fe.is_link:
            continue
        elif read is not None and _is_sourceless_pyc(fe.path, existing):
            data = read(fe.path)
            for top, dist_name in candidates.items():
                if dist_name != fe.owner and top.encode() in data:
                    result[fe.owner].append((top, fe.path))
        elif fe.path.endswith(".py") and is_evidence_file(fe.path) and sources.contains(fe.path, needles):
            # Only imports whose absence breaks the module count (not try/except ImportError,
            # not TYPE_CHECKING): werkzeug's guarded `import pkg_resources` must not keep
            # setuptools. The full dotted name goes to the graph (google.protobuf is
            # protobuf's, not every google-* distribution's).
            for mod in sources.required(fe.path):
                owner = candidates.get(mod.split(".", 1)[0])
                if owner is not None and owner != fe.owner:
                    result[fe.owner].append((mod, fe.path))
    return ({k: sorted(set(v)) for k, v in result.items()},
            _distribution_runs(inv, sources, candidates, programs, owners))


def distribution_runs(inventory: Inventory) -> dict[str, list[tuple[str, str, str]]]:
    """distribution -> ``(needed distribution, what, file)`` for every distribution's kept
    code that runs or looks up a module or console script of another one (the ``runs``
    evidence of :func:`prune.graph.decide_distributions`, over all distributions: what the
    ``graph`` command shows)."""
    from .graph import provided_modules

    modules: dict[str, str] = {}
    programs: dict[str, str] = {}
    for dist in inventory.distributions:
        for top in _dist_top_levels(dist, inventory.env.site_packages):
            modules.setdefault(top, dist.name)
        for script in dist.console_scripts:
            programs.setdefault(script, dist.name)
    for module, provider in provided_modules(inventory.env.marker_environment()).items():
        modules.setdefault(module, provider)
    owners = {d.name for d in inventory.distributions}
    return _distribution_runs(inventory, DiskSources(inventory.env.root, inventory), modules,
                              programs, owners)


# Words a file that runs a module or a program by name must contain (run_references).
_RUN_MARKERS = (b'"-m"', b"'-m'", b" -m ", b"which(", b"find_spec(", b"find_loader(",
                b"get_loader(", b"find_executable(", b"subprocess", b"system(", b"popen(",
                b"spawnlp(", b"spawnvp(", b"execlp(", b"execvp(", b"run_command(")


def _distribution_runs(
    inv: Inventory, sources: SourceReader, modules: Mapping[str, str],
    programs: Mapping[str, str], owners: Container[str],
) -> dict[str, list[tuple[str, str, str]]]:
    """distribution -> [(needed distribution, what, file)]: kept files (of ``owners``) that
    run or look up a module (top-level name in ``modules``) or a program (console script in
    ``programs``) of another distribution."""
    refs = getattr(sources, "runs", None)
    if refs is None:
        return {}
    from .graph import SEEDED
    from .imports import is_evidence_file

    # The installers running each other (setuptools' develop command and build-egg fetcher
    # run `python -m pip`) is build work: it does not keep pip for a kept setuptools.
    # Test helpers shipped as packages (torch/testing/_internal, pandas/_testing) run pip
    # and pytest for test suites: test work, as tests/ is.
    paths = [fe.path for fe in inv.files
             if fe.owner is not None and fe.owner in owners and fe.owner not in SEEDED
             and not fe.is_link and fe.path.endswith(".py") and is_evidence_file(fe.path)
             and "/testing/" not in fe.path and "/_testing/" not in fe.path]
    may = getattr(sources, "may_contain", None)
    if may is not None:
        paths = may(paths, _RUN_MARKERS)
    owner_of = {fe.path: fe.owner for fe in inv.files if fe.owner is not None}
    names = tuple({n.encode() for n in modules} | {n.encode() for n in programs})
    result: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for path in paths:
        found = refs(path, names)
        if not found:
            continue
        user = owner_of[path]
        for kind, name in found:
            if kind == "module":
                needed = modules.get(name.split(".", 1)[0])
                what = f"runs python -m {name} or looks the module up"
            else:
                needed = programs.get(name)
                what = f"runs or looks up the program {name}"
            if needed is not None and needed != user:
                result[user].add((needed, what, path))
    return {k: sorted(v) for k, v in result.items()}


def _dist_top_levels(dist: object, sites: Sequence[str]) -> set[str]:
    from .model import Distribution

    assert isinstance(dist, Distribution)
    tops = set(dist.top_level)
    for f in dist.files:
        found = _site_relative(f, sites)
        if found is None:
            continue
        first = found[1].split("/", 1)[0]
        if first.endswith((".dist-info", ".egg-info", ".pth")) or first == "__pycache__":
            continue
        name = first[:-3] if first.endswith(".py") else first.split(".", 1)[0]
        if _IDENT.match(name):
            tops.add(name)
    return tops


def _module_of(dir_sub: str) -> Optional[str]:
    parts = dir_sub.strip("/").split("/")
    if not all(_IDENT.match(p) for p in parts):
        return None
    return ".".join(parts)


def build_plan(
    inventory: Inventory,
    profile: Profile,
    options: PlanOptions = PlanOptions(),
    *,
    sources: Optional[SourceReader] = None,
    knowledge: Optional[Knowledge] = None,
) -> Plan:
    """Plan a prune. Deterministic: the same inputs give the same plan.

    :param inventory: from :func:`prune.scan.scan`.
    :param profile: from :func:`prune.profiles.load_profile`.
    :param options: command-line additions (patterns, roots, overrides, traces).
    :param sources: how to read source code for the import checks (default: the disk).
    :param knowledge: the knowledge base (default: the built-in one).
    :raises UsageError: the profile needs a trace and none was given; an unknown distribution
        name was passed; a required distribution was named for removal without ``force``.
    """
    check_options(options)
    with paused_gc():
        return _build_plan(inventory, profile, options, sources, knowledge)


def _build_plan(inventory: Inventory, profile: Profile, options: PlanOptions,
                sources: Optional[SourceReader], knowledge: Optional[Knowledge]) -> Plan:
    if profile.requires_trace and not options.has_trace:
        raise UsageError(
            f"profile {profile.name!r} removes everything no trace reached, so it needs a trace; "
            "record one with 'venv-prune trace PATH -o trace.json -- CMD' and pass --keep-from trace.json"
        )
    knowledge = knowledge or load_knowledge()
    own: Optional[DiskSources] = None
    if sources is None:
        disk = DiskSources(inventory.env.root, inventory)
        # Directory names the import check will ask about (tests, docs, ...), taken from the
        # import-checked rules' plain "name/" patterns.
        disk.hint(p.strip("/").encode() for r in profile.rules if r.import_check for p in r.patterns
                  if re.fullmatch(r"[A-Za-z_]\w*/", p))
        if any(r.evidence for r in profile.rules) or knowledge.readers:
            # Test code is never evidence (prune/imports.py is_evidence_file): not searched.
            disk.hint_group(_locators(knowledge), skip_dirs=("tests", "test"))
        if profile.remove_distributions or profile.remove_dev_tools or options.remove_dists:
            # What kept code runs keeps distributions (kind C); test code is no evidence.
            disk.hint_group(_RUN_MARKERS, skip_dirs=("tests", "test"))
        disk.prefetch()
        sources = own = disk
    # Keep beats removing a whole distribution too: a distribution with a file that a keep
    # pattern, --keep-module or a trace protects, or that code kept by the import check
    # needs, is kept, and the plan is made again (the graph then keeps what it requires).
    extra_keep: dict[str, str] = {}
    try:
        for _ in range(8):
            plan, needed = _plan_once(inventory, profile, options, sources, knowledge, extra_keep)
            if needed.keys() <= extra_keep.keys():
                break
            extra_keep = {**needed, **extra_keep}
        _refuse_removing_everything_named(plan, options)
        return plan
    finally:
        if own is not None:
            own.close()


def _refuse_removing_everything_named(plan: Plan, options: PlanOptions) -> None:
    """Refuse a plan that removes every distribution the user installed by name (issue 15,
    kind D: a profile list took jupyter-kernel-gateway and ipykernel, 81 of 81
    distributions). Explicit roots are the user's word on what stays; ``--force`` overrides.

    :raises UsageError: listing those distributions, their sizes and the ways out.
    """
    if options.force or options.roots:
        return
    from .graph import every_requested_removed

    named = every_requested_removed(plan.distributions, options.remove_dists)
    if named:
        listed = ", ".join(f"{d.name} {d.version} ({d.bytes / 2**20:.1f} MiB)" for d in named)
        raise UsageError(
            f"the plan removes every distribution installed by name (REQUESTED): {listed}; "
            f"keep one with --keep-dist {named[0].name}, name what the application needs with "
            "--root NAME, or add --force to remove them anyway")


def _plan_once(
    inventory: Inventory, profile: Profile, options: PlanOptions, sources: SourceReader,
    knowledge: Knowledge, extra_keep: Mapping[str, str],
) -> tuple[Plan, dict[str, str]]:
    """One planning pass. ``extra_keep`` maps distributions an earlier pass found needed
    (a kept file inside them) to the reason; the pass returns the same for itself."""
    from dataclasses import replace as _replace

    named = set(options.keep_dists)
    if extra_keep:
        options = _replace(options, keep_dists=tuple(sorted(named | set(extra_keep))))
    env = inventory.env
    needed: dict[str, str] = {}
    diagnostics: list[Diagnostic] = list(inventory.diagnostics)
    bytecode = options.bytecode or profile.bytecode

    extra_rules: list[Rule] = []
    for i, pat in enumerate(options.keep):
        extra_rules.append(make_rule(f"cli-keep-{i + 1}", "keep", [pat], "--keep on the command line",
                                     profile="command line"))
    for i, pats in remove_pattern_lists(options.remove):
        extra_rules.append(make_rule(f"cli-remove-{i + 1}", "remove", pats, "--remove on the command line",
                                     profile="command line"))
    rules = [r for r in profile.rules if not (r.id == "bytecode" and bytecode == "keep")]
    rules += extra_rules
    remove_matchers = [_Matcher(r) for r in rules if r.action == "remove"]
    keep_matchers = [_Matcher(r) for r in rules if r.action == "keep"]
    installed = {d.name for d in inventory.distributions}
    protections = [_ProtectionMatcher(p) for p in knowledge.protect
                   if not p.when or any(canonicalize_name(w) in installed for w in p.when)]
    # Protections of files outside site-packages (share/jupyter) match paths from the root.
    root_protections = [m for m in protections if m.protection.scope == "root"]
    protections = [m for m in protections if m.protection.scope != "root"]
    # Last match wins among removal rules (as in .gitignore): scanned from the last rule
    # back. A rule's scope says whether it applies inside site-packages, outside, or both.
    first_remove = {
        True: _FirstMatch(m for m in reversed(remove_matchers) if m.rule.scope != "root"),
        False: _FirstMatch(m for m in reversed(remove_matchers) if m.rule.scope != "site"),
    }
    # When an import-checked rule (tests/) wins, the rule that applies if the import check
    # saves the directory: the first earlier rule that is not import-checked.
    first_fallback = {
        in_site: _FirstMatch(m for m in first_remove[in_site].matchers if not m.rule.import_check)
        for in_site in (True, False)
    }
    first_keep = _FirstMatch(keep_matchers)
    first_protection = _FirstMatch(protections)
    first_root_protection = _FirstMatch(root_protections)

    # Distribution decisions first: a removed distribution takes all its files.
    # A distribution's files lie mostly together in path order: summed run by run, with
    # the per-file steps in C (groupby, map).
    sizes: dict[str, int] = defaultdict(int)
    for owner, run in groupby(inventory.files, key=itemgetter(3)):  # FileEntry.owner
        if owner:
            sizes[owner] += sum(map(itemgetter(1), run))  # FileEntry.size
    dist_decisions = _decide_distributions(inventory, profile, options, knowledge, sources, sizes)
    if extra_keep:
        dist_decisions = tuple(
            _replace(d, reason=extra_keep[d.name]) if d.name in extra_keep and d.name not in named else d
            for d in dist_decisions
        )
    removed_dists = {d.name: d for d in dist_decisions if d.remove}
    if not options.roots:
        from .graph import SEEDED

        for d in dist_decisions:
            # Installed by name, removed by a profile list: allowed (aggressive), never silent.
            if d.remove and d.requested and d.name not in SEEDED and d.name not in options.remove_dists:
                diagnostics.append(Diagnostic(
                    "warning", "requested-removed",
                    f"{d.name} {d.version} ({d.bytes / 2**20:.1f} MiB) was installed by name "
                    f"(REQUESTED) and is removed: "
                    f"{d.reason.replace('removed: ', '', 1).split(' (installed by name')[0]}; "
                    f"--keep-dist {d.name} keeps it"))

    pth_protected = _pth_protected(inventory, os.fspath(env.root))
    pth_below = tuple(p + "/" for p in sorted(pth_protected))
    # Files RECORD omits are attributed by their top-level name; most environments have
    # none in a package directory, so the map is built only when one turns up.
    top_owners: list[dict[tuple[str, str], str]] = []
    existing = _LazyPaths(inventory)
    meta_dirs = {d.metadata_dir for d in inventory.distributions}

    keep_module_prefixes = tuple(m.replace(".", "/") for m in options.keep_modules)
    trace_kept = _trace_keep_set(options, inventory) if options.has_trace else frozenset()
    # minimal never takes a root's untraced top-level module without a word (issue 15, case 8).
    roots = root_distributions(inventory, dist_decisions, options.roots, profile.remove_distributions,
                               dev_tools=[p for p, _ in knowledge.dev_tools] if profile.remove_dev_tools else ())
    root_tops, root_files = (_untraced_root_tops(inventory, options, removed_dists, sources, roots)
                             if profile.trace_minimal and options.has_trace else ({}, {}))

    in_prefix = env.kind == "prefix"
    gated = options.has_trace and (profile.optional_data or profile.trace_minimal)
    rule_in_site, rule_outside = first_remove[True].first, first_remove[False].first
    fallback_of = {True: first_fallback[True].first, False: first_fallback[False].first}
    files = inventory.files
    site_of, subs = _split_sites(files, env.site_packages)
    owners: list[Optional[str]] = list(map(itemgetter(3), files))  # FileEntry.owner
    # A file RECORD omits is attributed by its top-level name (most environments have none
    # in a package directory, so the map is built only when one turns up).
    for i in _indexes(owners, None) + _indexes(owners, ""):
        site, sub, owner = site_of[i], subs[i], ""
        if site is not None and "/" in sub:
            if not top_owners:
                top_owners.append(_top_level_owner(files, site_of, subs))
            owner = top_owners[0].get((site, sub.split("/", 1)[0]), "")
        owners[i] = owner
    states = list(map(_FileState, files, site_of, subs, cast("list[str]", owners)))
    # Every file's removal rule, asked without a Python statement per file: a file nothing
    # claims (often nearly half of them) then costs the loop below one test.
    claims = list(map(rule_in_site, subs))
    for i in _indexes(site_of, None):
        claims[i] = rule_outside(subs[i])
    links = list(map(itemgetter(2), files))  # FileEntry.is_link
    for st, rule, owner, link in zip(states, claims, cast("list[str]", owners), links):
        if rule is None and not link and not gated and owner not in removed_dists:
            continue
        fe, site, sub = st.entry, st.site, st.sub
        # In a prefix (/usr/local) only site-packages and the scripts in bin/ are ours: other
        # prefix directories (share/, include/) may belong to the system.
        if in_prefix and site is None and not fe.path.startswith("bin/"):
            continue

        if owner in removed_dists:
            if site is not None and owner not in needed:
                keeping = first_keep.first(sub)
                keeper = (f"keep rule {keeping.rule.id} ({', '.join(keeping.rule.patterns)})"
                          if keeping is not None else None)
                if keeper is None and fe.path in trace_kept:
                    keeper = "a trace (--keep-from)"
                if keeper is None:
                    keeper = next((f"--keep-module {p.replace('/', '.')}" for p in keep_module_prefixes
                                   if sub == p + ".py" or sub.startswith(p + "/")), None)
                if keeper is not None:
                    needed[owner] = f"kept: {keeper} keeps {sub}"
            st.remove_key = ("distribution", owner, "profile" if owner in profile.remove_distributions
                             else "graph", owner, False)
            continue

        # Which removal rule claims the file?
        if link:
            # A symlink to a directory matches directory patterns ("tests/") as the link
            # itself: only the link is ever removed, never what it points at.
            _claim_link(st, first_remove[site is not None].matchers)
        else:
            st.remove_rule = rule
            if rule is not None and rule.rule.import_check:
                st.fallback_rule = fallback_of[site is not None](sub)

        if st.remove_rule is None and not (gated and site is not None):
            continue
        # Protections, in order of precedence; the first that applies is reported.
        reason = _protection(st, env.kind, meta_dirs, pth_protected, pth_below, existing,
                             first_root_protection if site is None else first_protection,
                             first_keep, keep_module_prefixes, trace_kept)
        if reason:
            st.saved_by, st.saved_reason = reason
            continue
        if st.remove_rule is None and options.has_trace and site is not None:
            _trace_gated(st, profile, options, knowledge, trace_kept, root_tops, root_files)
            continue
        if st.remove_rule is not None:
            st.remove_key = (st.remove_rule.rule.id, "", st.remove_rule.rule.profile, owner, False)

    # Entry points are imports too: plugin discovery loads them by module name at run time
    # (networkx names networkx.classes.tests.dispatch_interface as a backend).
    ep_modules = {ep.value.split(":", 1)[0].strip() for d in inventory.distributions
                  if d.name not in removed_dists for ep in d.entry_points}
    _import_check(states, sources, diagnostics, frozenset(ep_modules))
    kept_on_evidence = _keep_on_evidence(states, sources, knowledge)
    if kept_on_evidence:
        # What evidence kept is kept code: its imports may save another matched directory.
        _import_check(states, sources, diagnostics, seeds=kept_on_evidence)
    _keep_for_environment_readers(states, inventory, removed_dists, knowledge)
    _keep_kept_distributions_whole(states, removed_dists)
    if removed_dists:
        # The graph's static scan skips test directories (code only tests run does not keep a
        # distribution). A test file that stays after all (kept code imports it, a keep
        # pattern, a protection or a trace saves it) is evidence again: its imports may need a
        # distribution the graph was about to remove, and the plan is made again.
        owner_of_top = {top: d.name for d in inventory.distributions if d.name in removed_dists
                        for top in _dist_top_levels(d, env.site_packages)}
        _staying_test_code_needs(states, sources, owner_of_top, needed)

    if root_tops or (profile.trace_minimal and options.has_trace):
        _drop_orphaned_scripts(states, inventory, removed_dists, profile.name)
    actions = _collapse(states, inventory, removed_dists, env.site_packages, options.trace_dirs)
    kept = tuple(
        Keep(st.entry.path, st.entry.size,
             st.remove_rule.rule.id if st.remove_rule is not None else "minimal-untraced",
             st.saved_by, st.saved_reason, st.owner)
        for st in states
        if st.saved_by and (st.remove_rule is not None or (profile.trace_minimal and options.has_trace
                                                           and st.site is not None))
    )
    records = _records_after(inventory, actions, removed_dists)
    opts = (
        ("bytecode", bytecode),
        ("strip", "yes" if profile.strip else "no"),
        ("trace", "yes" if options.has_trace else "no"),
    )
    return Plan(
        inventory=inventory,
        profile=profile.name,
        actions=actions,
        kept=kept,
        distributions=dist_decisions,
        records=records,
        diagnostics=tuple(diagnostics),
        options=opts,
        roots=tuple(sorted(roots)),
    ), needed


def _claim_link(st: _FileState, in_order: Sequence[_Matcher]) -> None:
    """The removal rule (and fallback) for a symlink, which also matches as ``link/``.

    ``in_order``: the removal rules of the link's scope, last rule first.
    """
    sub = st.sub
    for m in in_order:
        if m.match(sub) or m.match(sub + "/"):
            if st.remove_rule is None:
                st.remove_rule = m
                if not m.rule.import_check:
                    return
            elif not m.rule.import_check:
                st.fallback_rule = m
                return


def _protection(
    st: _FileState, kind: str, meta_dirs: set[str], pth_protected: set[str], pth_below: tuple[str, ...],
    existing: Container[str],
    protections: _FirstMatch, keeps: _FirstMatch,
    keep_module_prefixes: tuple[str, ...], trace_kept: frozenset[str],
) -> Optional[tuple[str, str]]:
    path, sub, site = st.entry.path, st.sub, st.site
    if site is None and kind == "venv" and _VENV_SKELETON.match(path):
        return "environment", "part of the virtual environment itself (interpreter, activation, pyvenv.cfg)"
    if site is not None:
        top_end = sub.find("/")  # the first component ends there (or at the end)
        if sub.endswith((".dist-info", ".egg-info"), 0, top_end if top_end >= 0 else len(sub)):
            return "metadata", ("distribution metadata (METADATA, RECORD, entry_points.txt, top_level.txt) "
                                "is read at run time by importlib.metadata; removed only with the distribution")
    if path in pth_protected or path.startswith(pth_below):
        return "pth", "a .pth file, or a path a .pth file adds to sys.path (editable installs)"
    if path.endswith(".pyc") and _is_sourceless_pyc(path, existing):
        return "sourceless-bytecode", "a .pyc module without its .py source: removing it removes the module"
    if path.endswith(".mo"):
        return "gettext-catalog", "compiled translations (.mo) are read at run time by gettext"
    if protections.matchers:
        protecting = protections.first(sub)
        if protecting is not None:
            assert isinstance(protecting, _ProtectionMatcher)
            kb = protecting.protection
            return f"knowledge:{kb.id}", f"{kb.reason} ({kb.source})"
    keeping = keeps.first(sub) if keeps.matchers else None
    if keeping is not None:
        return f"keep:{keeping.rule.id}", keeping.rule.reason or "keep rule"
    if site is not None:
        for prefix in keep_module_prefixes:
            if sub == prefix + ".py" or sub.startswith(prefix + "/") or sub.startswith(prefix + "."):
                return "keep-module", f"--keep-module {prefix.replace('/', '.')}"
    if path in trace_kept:
        return "trace", "reached by a traced run (--keep-from)"
    return None


def _top_name(sub: str) -> str:
    """The top-level module a site-relative path belongs to (``a/b.py``, ``a.py``,
    ``a.cpython-312-x86_64-linux-gnu.so`` -> ``a``)."""
    first, _, rest = sub.partition("/")
    if first == "__pycache__":  # a top-level module's cache: __pycache__/six.cpython-312.pyc
        return rest.split(".", 1)[0]
    if rest:
        return first
    return first[:-3] if first.endswith(".py") else first.split(".", 1)[0]


def root_distributions(inventory: Inventory, decisions: Sequence[DistDecision],
                       named: Optional[Sequence[str]], removable: Iterable[str] = (), *,
                       dev_tools: Iterable[str] = ()) -> frozenset[str]:
    """The distributions the user chose: named with ``--root``, else installed by name.

    Installed by name: those the graph's ``decisions`` mark so and keep
    (:func:`prune.graph.installed_by_name`: where uv or a full lock marked the dependencies
    REQUESTED too, only the marked distributions nothing else requires); without decisions,
    the same rule applied here. Minus ``removable`` (pip, setuptools and wheel, marked
    REQUESTED by a venv's seeding, not by the user) and ``dev_tools`` (names or fnmatch
    patterns: a profile that removes development tools never takes them as roots, as the
    graph does not). Empty when nothing is marked REQUESTED.
    """
    if named:
        return frozenset(str(canonicalize_name(r)) for r in named)
    if decisions:
        chosen = {d.name for d in decisions if d.requested and not d.remove}
    else:
        chosen = _installed_by_name(inventory)
    skip = {str(canonicalize_name(r)) for r in removable}
    patterns = [str(canonicalize_name(t)) for t in dev_tools]
    return frozenset(n for n in chosen if n not in skip and not any(fnmatchcase(n, t) for t in patterns))


def _installed_by_name(inventory: Inventory) -> set[str]:
    """:func:`prune.graph.installed_by_name` without a graph: the REQUESTED distributions,
    but where uv installed one or every distribution is marked, only those no other
    installed distribution requires (an extra's requirements excepted)."""
    from packaging.requirements import InvalidRequirement, Requirement

    dists = inventory.distributions
    marked = [d for d in dists if d.requested]
    everything = len(marked) == len(dists)
    required: set[str] = set()
    for dist in dists:
        for text in dist.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            name = str(canonicalize_name(req.name))
            if name != dist.name and (req.marker is None or "extra" not in str(req.marker)):
                required.add(name)
    return {d.name for d in marked
            if not ((everything or d.installer.lower() == "uv") and d.name in required)}


def _untraced_root_tops(
    inventory: Inventory, options: PlanOptions, removed: Container[str], sources: SourceReader,
    roots: Container[str] = frozenset(),
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """What minimal keeps of the root distributions beyond what the traces reached:
    (root -> {top-level module: why it is kept whole}, {path: why it is kept}).

    Roots are the distributions named with ``--root``, else those installed by name
    (REQUESTED). A root's top-level module that no trace imported is kept whole: a trace
    licenses removing what a run did not reach inside what it used, not a root the user
    installed for a reason the trace never exercised (issue 15, case 8: a trace of a Flask app
    let minimal remove gunicorn, whose bin/gunicorn then pointed at a missing module). A
    console or GUI script of a root whose module no trace imported keeps that module. What
    the modules kept this way import (statically, transitively, package ``__init__`` chains
    included) is kept too; verification then imports the root's modules and loads its
    scripts' entry points, so a dynamic import the static scan missed rolls back.
    ``roots``: from :func:`root_distributions`.
    """
    sites = inventory.env.site_packages
    tops: dict[str, dict[str, str]] = {}
    scripts: dict[str, str] = {}  # untraced script module -> why
    for dist in inventory.distributions:
        if dist.name not in roots or dist.name in removed:
            continue
        # Reached: a trace used one of the root's own files there (a namespace package such
        # as google/ is shared, so the top-level name alone says nothing).
        reached = set()
        for path in dist.files:
            if path in options.trace_paths:
                found = _site_relative(path, sites)
                if found is not None:
                    reached.add(_top_name(found[1]))
        why: dict[str, str] = {}
        for top in sorted(_dist_top_levels(dist, sites)):
            if top not in reached:
                why[top] = (f"root {dist.name}: no trace imported {top}, so minimal keeps it whole; "
                            f"trace what uses it, or pass --remove-dist {dist.name}")
        if why:
            tops[dist.name] = why
            for path in dist.files:
                found = _site_relative(path, sites)
                if found is None or _top_name(found[1]) not in why:
                    continue
                module = _module_name_of(found[1])
                if module is not None:
                    scripts.setdefault(module, f"root {dist.name} keeps {module.split('.', 1)[0]} "
                                               "whole, and it imports this")
        for ep in dist.entry_points:
            module = ep.value.split(":", 1)[0].strip()
            if (ep.group in ("console_scripts", "gui_scripts") and module
                    and module not in options.trace_modules and module.split(".", 1)[0] not in why):
                scripts.setdefault(module, f"root {dist.name}: its script {ep.name} runs {module}, which "
                                           "no trace ran; kept with what it imports")
    files: dict[str, str] = {}
    if scripts:
        files = _import_closure(inventory, sources, scripts)
    return tops, files


def _module_name_of(sub: str) -> Optional[str]:
    """The dotted module a site-relative ``.py`` or extension file defines, or None."""
    if not sub.endswith((".py", ".so", ".pyd")):
        return None
    stem = sub[:-3] if sub.endswith(".py") else sub.split(".", 1)[0]
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts and all(_IDENT.match(x) for x in parts):
        return ".".join(parts)
    return None


def _drop_orphaned_scripts(states: Sequence[_FileState], inventory: Inventory,
                           removed: Container[str], profile_name: str) -> None:
    """Under minimal, a console or GUI script whose module a trace licensed removing goes with
    it, said in the report, instead of staying behind pointing at a missing module (issue 15,
    case 8). A root's scripts never get here: minimal keeps their modules."""
    env = inventory.env
    if not env.scripts_dir:
        return
    by_path = {st.entry.path: st for st in states}
    for dist in inventory.distributions:
        if dist.name in removed:
            continue
        for ep in dist.entry_points:
            if ep.group not in ("console_scripts", "gui_scripts"):
                continue
            module = ep.value.split(":", 1)[0].strip()
            script = by_path.get(f"{env.scripts_dir}/{ep.name}")
            if not module or script is None or script.remove_key is not None or script.owner != dist.name:
                continue
            rel = module.replace(".", "/")
            files = [by_path.get(f"{site}/{rel}{tail}" if site else f"{rel}{tail}")
                     for site in env.site_packages for tail in (".py", "/__init__.py")]
            found = [st for st in files if st is not None]
            if found and all(st.remove_key is not None and st.remove_key[4] for st in found):
                script.remove_key = ("minimal-untraced", f"(script {ep.name}: no trace ran {module}, "
                                     "which minimal removes)", profile_name, dist.name, True)


def _import_closure(inventory: Inventory, sources: SourceReader,
                    start: Mapping[str, str]) -> dict[str, str]:
    """path -> why, for the files of the modules in ``start`` (module -> why), of the modules
    they import (statically, transitively) and of every package ``__init__`` above them."""
    sites = inventory.env.site_packages
    module_file: dict[str, str] = {}
    for fe in inventory.files:
        found = _site_relative(fe.path, sites)
        module = _module_name_of(found[1]) if found is not None else None
        if module is not None:
            module_file.setdefault(module, fe.path)
    out: dict[str, str] = {}
    todo = list(start.items())
    seen: set[str] = set()
    while todo:
        module, why = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen:
                continue
            seen.add(name)
            path = module_file.get(name)
            if path is None:
                continue
            out.setdefault(path, why)
            if path.endswith(".py"):
                todo.extend((m, why) for m in sources.imports(path))
    return out


def _trace_keep_set(options: PlanOptions, inventory: Inventory) -> frozenset[str]:
    """Every path a trace reached, plus each imported module's source and __init__ chain."""
    kept = set(options.trace_paths)
    sites = inventory.env.site_packages
    existing = {fe.path for fe in inventory.files}
    for path in list(kept):
        found = _site_relative(path, sites)
        if found is None:
            continue
        site, sub = found
        # A reached module keeps its source and every package __init__ above it.
        base = sub
        if "/__pycache__/" in f"/{sub}":
            head, _, tail = sub.rpartition("__pycache__/")
            base = head + tail.split(".", 1)[0] + ".py"
        parts = base.split("/")
        for i in range(1, len(parts)):
            init = "/".join(parts[:i]) + "/__init__.py"
            kept.add(f"{site}/{init}" if site else init)
        if base.endswith((".py", ".pyc")):
            src = base[:-1] if base.endswith(".pyc") else base
            kept.add(f"{site}/{src}" if site else src)
        if base != sub:
            # A cache the run happened to read is still only a cache: the bytecode choice
            # (drop/keep/compile) decides about it, not the trace.
            kept.discard(path)
    for mod in options.trace_modules:
        rel = mod.replace(".", "/")
        for site in sites:
            for cand in (f"{rel}.py", f"{rel}/__init__.py"):
                full = f"{site}/{cand}" if site else cand
                if full in existing:
                    kept.add(full)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                init = "/".join(parts[:i]) + "/__init__.py"
                kept.add(f"{site}/{init}" if site else init)
    return frozenset(kept)


def _trace_gated(
    st: _FileState, profile: Profile, options: PlanOptions, knowledge: Knowledge,
    trace_kept: frozenset[str],
    root_tops: Optional[Mapping[str, Mapping[str, str]]] = None,
    root_files: Optional[Mapping[str, str]] = None,
) -> None:
    """Optional data (aggressive) and everything unreached (minimal), given a trace."""
    sub = st.sub
    if profile.optional_data:
        for opt in knowledge.optional:
            if not sub.startswith(opt.under):
                continue
            unit = sub[len(opt.under):].split("/", 1)[0]
            if not unit or unit in opt.keep or unit + "/" in opt.keep:
                return
            unit_prefix = (f"{st.site}/" if st.site else "") + opt.under + unit
            if any(p == unit_prefix or p.startswith(unit_prefix + "/") for p in options.trace_paths):
                return
            st.remove_key = (f"optional:{opt.id}", opt.under + "*", profile.name, st.owner, True)
            return
    if profile.trace_minimal:
        if st.entry.path.endswith(".pth") or sub.endswith(".pth"):
            return
        why = (root_tops or {}).get(st.owner, {}).get(_top_name(sub)) or (root_files or {}).get(st.entry.path)
        if why is not None:
            st.saved_by, st.saved_reason = "root", why
            return
        name = sub.rsplit("/", 1)[-1]
        if st.entry.executable and ".so" not in name and not name.endswith((".py", ".pyc", ".pyd")):
            # A program inside a package (torch/bin/torch_shm_manager) is started by native
            # code with exec, where no audit hook sees it: a trace cannot vouch for it.
            st.saved_by, st.saved_reason = ("executable", "a program the package may start from native code "
                                            "(exec is invisible to a trace)")
            return
        st.remove_key = ("minimal-untraced", "(not reached by any trace)", profile.name, st.owner, True)


def _locators(knowledge: Knowledge) -> tuple[bytes, ...]:
    """What a source file that locates data on disk contains (see :mod:`prune.evidence`)."""
    from .evidence import LOCATORS

    return tuple(sorted(set(LOCATORS) | {r.call.encode() for r in knowledge.readers}))


def _keep_on_evidence(states: Sequence[_FileState], sources: SourceReader,
                      knowledge: Knowledge) -> list[_FileState]:
    """Keep the files that evidence-gated rules (stubs, C sources, docs, tests, share/) would
    remove but their distribution's kept code reads at run time (:mod:`prune.evidence`).

    Only the kept source files of distributions that own such a file are read, and of those
    only the ones that locate data (the reader's grep rules the rest out). A file saved here
    still loses its caches: the rule that matched before the gated one applies, as in the
    import check. When evidence keeps a file inside a directory that a directory rule matched
    (tests/, docs/), every Python module there stays too: evidence never splits a package.
    Returns the files kept here.
    """
    from .evidence import Candidate, find_evidence
    from .imports import is_evidence_file

    read = getattr(sources, "read_bytes", None)
    if read is None:
        return []
    gated: list[_FileState] = []
    sources_kept: list[_FileState] = []
    for st in states:
        key = st.remove_key
        if key is None:
            if st.owner and st.site is not None and st.entry.path.endswith(".py") and not st.entry.is_link:
                sources_kept.append(st)
            continue
        rule = st.remove_rule
        if rule is not None and rule.rule.evidence and st.owner and key[0] == rule.rule.id:
            gated.append(st)
    if not gated:
        return []
    owners = {st.owner for st in gated}
    # Code only tests or builds run (tests/, conftest.py, setup.py) is no evidence of a read
    # at run time: a kept test module names its own data.
    code_states = [st for st in sources_kept if st.owner in owners and is_evidence_file(st.entry.path)]
    locators = _locators(knowledge)
    may_contain = getattr(sources, "may_contain", None)
    paths = [st.entry.path for st in code_states]
    maybe = set(may_contain(paths, locators)) if may_contain is not None else set(paths)
    code: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for st in code_states:
        if st.entry.path in maybe:
            code[st.owner].append((st.entry.path, st.sub))
    # Every kind of evidence comes from the owner's code: a distribution without a file that
    # locates data keeps nothing here (a generated 100k-file tree: none at all).
    optional = [o.spec for o in knowledge.read_optional]
    gated = [st for st in gated if st.owner in code
             and not (optional and st.site is not None and any(o.match_file(st.sub) for o in optional))]
    shallowest: dict[tuple[str, str], Optional[str]] = {}
    candidates: list[Candidate] = []
    for st in gated:
        rule = st.remove_rule
        assert rule is not None
        where = st.sub.rpartition("/")[0]
        memo = (rule.rule.id, where)
        if memo not in shallowest:
            shallowest[memo] = _shallowest_match(rule, where)
        candidates.append(Candidate(st.sub, st.owner, rule.rule.id, shallowest[memo] or ""))
    # In a directory a directory rule matched (tests/, docs/) where evidence keeps a file,
    # every Python module stays too: keeping part of a package while its modules go leaves
    # half a package (twisted/test/__init__.py kept, its proto_helpers.py removed: importing
    # the kept __init__ fails). Data nothing names still goes (torch/test's 85 MB of C++
    # test binaries, where a literal names one of them). What the kept modules import is
    # asked by the import check again.
    whole: dict[tuple[str, str], str] = {}
    kept_now: list[_FileState] = []
    for i, ev in sorted(find_evidence(candidates, code, read, knowledge.readers).items()):
        st = gated[i]
        anchor = candidates[i].anchor
        if anchor:
            whole.setdefault((_scope_of(st), anchor), f"{st.sub}: {ev.reason}")
        if _keep_gated(st, f"evidence:{ev.kind}", ev.reason):
            kept_now.append(st)
    if whole:
        for st in states:
            rule = st.remove_rule
            key = st.remove_key
            if (key is None or rule is None or not rule.rule.evidence or key[0] != rule.rule.id
                    or not _is_module_file(st.sub)):
                continue
            scope = _scope_of(st)
            why = None
            where = st.sub.rpartition("/")[0]
            while where and why is None:
                why = whole.get((scope, where))
                where = where.rpartition("/")[0]
            if why is not None and _keep_gated(
                    st, "evidence:same-package",
                    f"a Python module beside a file evidence keeps (no half packages): {why}"):
                kept_now.append(st)
    return kept_now


_EXTENSION_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.(?:[^/]*\.)?(?:so|pyd)$")


def _is_module_file(sub: str) -> bool:
    """Whether a file can be imported as a module: ``.py``, a loose ``.pyc`` (outside
    ``__pycache__``), an extension module (``_c.cpython-312-x86_64-linux-gnu.so``, ``x.pyd``)."""
    name = sub.rpartition("/")[2]
    if name.endswith(".py"):
        return True
    if name.endswith(".pyc"):
        return "__pycache__" not in sub.split("/")
    return _EXTENSION_MODULE.match(name) is not None


def _scope_of(st: _FileState) -> str:
    """Where a directory rule's match is one directory: its site-packages directory, or for
    files outside one (share/) the environment root and the owning distribution."""
    return f"site:{st.site}" if st.site is not None else f"root:{st.owner}"


def _keep_gated(st: _FileState, saved_by: str, reason: str) -> bool:
    """Keep a file an evidence-gated rule would remove; False when an earlier rule that is not
    evidence-gated still removes it (saving a docs/ directory does not save its caches)."""
    earlier = st.fallback_rule
    if earlier is not None and not earlier.rule.evidence:
        st.remove_rule = earlier
        st.remove_key = (earlier.rule.id, "", earlier.rule.profile, st.owner, False)
        return False
    st.remove_key = None
    st.saved_by = saved_by
    st.saved_reason = reason
    return True


def _keep_for_environment_readers(states: Sequence[_FileState], inventory: Inventory,
                                  removed_dists: Mapping[str, Any], knowledge: Knowledge) -> None:
    """Keep, in every kept distribution, the files a kept environment-wide reader reads
    (knowledge ``reads_environment``: mypy reads every ``.pyi`` and ``py.typed``, Cython every
    ``.pxd`` and the headers under ``get_include()``) from rules marked ``evidence = true``.
    """
    if not knowledge.environment_readers:
        return
    kept = {canonicalize_name(d.name): d.name for d in inventory.distributions if d.name not in removed_dists}
    active = [(er, [kept[canonicalize_name(r)] for r in er.when if canonicalize_name(r) in kept])
              for er in knowledge.environment_readers]
    active = [(er, names) for er, names in active if names]
    if not active:
        return
    # A read the reader copes without (jedi's bundled typeshed) keeps nothing here either.
    optional = [o.spec for o in knowledge.read_optional]
    for st in states:
        rule = st.remove_rule
        if (st.remove_key is None or rule is None or not rule.rule.evidence or st.site is None
                or st.remove_key[0] != rule.rule.id or st.owner in removed_dists
                or any(o.match_file(st.sub) for o in optional)):
            continue
        for er, names in active:
            if er.spec.match_file(st.sub):
                st.remove_key = None
                st.saved_by = f"evidence:reads-environment:{er.id}"
                st.saved_reason = (f"{', '.join(names)} (kept) reads such files of every distribution: "
                                   f"{er.reason} (knowledge:{er.id}; {er.source})")
                break


# What a distribution offers to import or to type-check; a kept distribution keeps at least one.
_MODULE_SUFFIXES = (".py", ".pyi", ".so", ".pyd", ".pyc")


def _keep_kept_distributions_whole(states: Sequence[_FileState], removed_dists: Mapping[str, Any]) -> None:
    """A distribution the graph keeps is never emptied by file-type rules: when rules marked
    ``evidence = true`` would remove every module and stub it has (``types-requests``: all of
    ``requests-stubs/*.pyi``), that is removing the distribution, which the graph has not
    decided; those files stay."""
    modules: dict[str, list[_FileState]] = defaultdict(list)
    for st in states:
        if (st.owner and st.site is not None and st.owner not in removed_dists
                and st.sub.endswith(_MODULE_SUFFIXES) and ".dist-info/" not in st.sub):
            modules[st.owner].append(st)
    for owner, group in modules.items():
        if any(st.remove_key is None for st in group):
            continue
        gated = [st for st in group if st.remove_rule is not None and st.remove_rule.rule.evidence
                 and st.remove_key is not None and st.remove_key[0] == st.remove_rule.rule.id]
        for st in gated:
            st.remove_key = None
            st.saved_by = "evidence:kept-distribution"
            st.saved_reason = (f"{owner} is kept, and file-type rules would remove every module and stub "
                               f"it has ({st.remove_rule.rule.id if st.remove_rule else ''}), which would remove "
                               "it in effect; the dependency graph has not decided that")


def _staying_test_code_needs(states: Sequence[_FileState], sources: SourceReader,
                             owner_of_top: Mapping[str, str], needed: dict[str, str]) -> None:
    """Add to ``needed`` the removed distributions that test code which stays imports.

    The graph's import scan skips test code (files under tests/ and test/, conftest.py,
    setup.py: see prune/imports.py). A file in a test directory that stays after all (kept
    code imports it, or a keep pattern, a protection or a trace saves it) is evidence again.
    A conftest.py or setup.py that stays is evidence only when kept code imports it: pytest
    and build tools load those, rarely the application.
    """
    from .imports import is_evidence_file, module_name_for

    def needs(st: _FileState) -> list[tuple[str, str]]:
        found = []
        for mod in sources.required(st.entry.path):
            dep = owner_of_top.get(mod.split(".", 1)[0])
            if dep is not None and dep != st.owner and dep not in needed:
                found.append((dep, mod))
        return found

    staying = [st for st in states if st.remove_key is None and st.entry.path.endswith(".py")
               and not st.entry.is_link and st.site is not None]
    hooks: dict[str, tuple[_FileState, list[tuple[str, str]]]] = {}
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


def _is_loose_pyc(path: str) -> bool:
    """``x.pyc`` outside ``__pycache__`` (not a cache: a module file of its own)."""
    return path.endswith(".pyc") and "/__pycache__/" not in path and not path.startswith("__pycache__/")


def _is_sourceless_pyc(path: str, existing: Container[str]) -> bool:
    """``x.pyc`` outside ``__pycache__`` with no ``x.py`` beside it: a module of its own."""
    return _is_loose_pyc(path) and path[:-1] not in existing


def _shallowest_match(rule: _Matcher, directory: str) -> Optional[str]:
    """The shallowest of ``directory`` and its ancestors that ``rule`` matches as a
    directory, or None."""
    parts = directory.split("/") if directory else []
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if rule.match(d + "/"):
            return d
    return None


def _is_sourceless(st: _FileState) -> bool:
    """A loose ``x.pyc`` (outside ``__pycache__``) that stays: protected as a sourceless
    module, or matched by no rule at all (then counted even with an ``x.py`` beside it, which
    costs at most a kept tests directory)."""
    return _is_loose_pyc(st.entry.path) and (st.saved_by == "sourceless-bytecode" or st.remove_rule is None)


def _sourceless_mentions(st: _FileState, sources: SourceReader,
                         modules: Mapping[str, tuple[str, str]]) -> set[str]:
    """The candidate modules a sourceless ``.pyc`` may import.

    Its bytecode may come from another Python version than ours, so it is not unmarshalled:
    a candidate counts as imported when its dotted name appears in the file's bytes, or its
    last part does and the candidate is in the same top-level package (``from . import
    tests`` stores only ``tests``). Over-keeping a tests directory costs bytes; missing one
    breaks the module.
    """
    read = getattr(sources, "read_bytes", None)
    if read is None:
        return set(modules)
    data = read(st.entry.path)
    top = st.sub.split("/", 1)[0]
    return {mod for mod in modules
            if mod.encode() in data
            or (mod.split(".", 1)[0] == top and mod.rsplit(".", 1)[-1].encode() in data)}


def _import_check(states: list[_FileState], sources: SourceReader, diagnostics: list[Diagnostic],
                  entry_point_modules: frozenset[str] = frozenset(),
                  seeds: Optional[Sequence[_FileState]] = None) -> None:
    """Keep directories matched by import-checked rules (tests/, docs/) that kept code imports.

    The module name of each candidate directory is compared with the imports of every
    Python file that stays (a static scan: see prune/imports.py); a directory saved this way
    contributes its own imports, so the check runs to a fixpoint. Verification catches
    dynamic imports this cannot see. ``seeds``: when given, only these staying files are
    scanned first (files kept since the last check, by evidence).
    """
    candidates: dict[tuple[str, str], list[_FileState]] = defaultdict(list)
    # The shallowest directory the rule matches depends only on the file's directory (and,
    # for a symlink, the link itself): asked once per rule and directory.
    shallowest: dict[tuple[str, str], Optional[str]] = {}
    for st in states:
        rule = st.remove_rule
        if st.remove_key is None or rule is None or not rule.rule.import_check or st.site is None:
            continue
        # A symlink named like the directory (app/tests -> elsewhere) is itself a candidate.
        where = st.sub if st.entry.is_link else st.sub.rpartition("/")[0]
        memo = (rule.rule.id, where)
        if memo in shallowest:
            d = shallowest[memo]
        else:
            d = shallowest[memo] = _shallowest_match(rule, where)
        if d is not None:
            candidates[(st.site, d)].append(st)
    if not candidates:
        return
    modules: dict[str, tuple[str, str]] = {}
    for site, d in candidates:
        mod = _module_of(d)
        if mod:
            modules[mod] = (site, d)
    if not modules:
        return
    needles = tuple(sorted({m.rsplit(".", 1)[-1].encode() for m in modules}))
    in_candidate = {id(st) for group in candidates.values() for st in group}
    # Cheapest tests first: most files go (a removal key) or are not Python.
    pending = [st for st in (states if seeds is None else seeds)
               if st.remove_key is None and st.site is not None
               and (st.entry.path.endswith(".py") or _is_sourceless(st)) and id(st) not in in_candidate
               and not st.entry.is_link]
    saved: set[tuple[str, str]] = set()
    first = True
    # A reader may rule most files out at once (DiskSources: the files grep did not name).
    may_contain = getattr(sources, "may_contain", None)
    while pending or first:
        imported: set[str] = set(entry_point_modules) if first else set()
        first = False
        maybe = (set(may_contain([st.entry.path for st in pending], needles))
                 if may_contain is not None else None)
        for st in pending:
            if st.entry.path.endswith(".pyc"):
                imported |= _sourceless_mentions(st, sources, modules)
            elif (maybe is None or st.entry.path in maybe) and sources.contains(st.entry.path, needles):
                imported |= sources.imports(st.entry.path)
        newly: list[_FileState] = []
        for mod, key in sorted(modules.items()):
            if key in saved:
                continue
            if any(i == mod or i.startswith(mod + ".") for i in imported):
                saved.add(key)
                for st in candidates[key]:
                    # Saving the directory does not save its caches or C sources: the last
                    # rule that matched before the import-checked one still applies.
                    earlier = st.fallback_rule
                    if earlier is not None and not st.saved_by:
                        st.remove_rule = earlier
                        st.remove_key = (earlier.rule.id, "", earlier.rule.profile, st.owner, False)
                        continue
                    st.remove_key = None
                    st.saved_by = "imported"
                    st.saved_reason = f"kept code imports {mod}"
                    if st.entry.path.endswith(".py"):
                        newly.append(st)
        pending = newly


def _collapse(
    states: list[_FileState], inv: Inventory, removed_dists: Mapping[str, DistDecision],
    sites: Sequence[str], listed: frozenset[str] = frozenset(),
) -> tuple[Action, ...]:
    """Turn per-file decisions into actions; a directory whose every file goes (for one rule
    and one owner) becomes a single action."""
    total: dict[str, int] = defaultdict(int)
    keys: dict[str, set[tuple[str, str, str, str, bool]]] = defaultdict(set)
    removed: dict[str, int] = defaultdict(int)
    rbytes: dict[str, int] = defaultdict(int)
    structural = {""}
    for s in sites:
        parts = s.split("/") if s else []
        for i in range(len(parts) + 1):
            structural.add("/".join(parts[:i]))
    structural |= {"bin", "lib", "lib64", "include", "share"} if inv.env.kind == "prefix" else {"bin", "lib", "lib64"}
    for dist in inv.distributions:
        if dist.name not in removed_dists:
            structural.add(dist.metadata_dir)
    # Count each file in its own directory, then add every directory's counts into its
    # parent, deepest first (one pass per directory rather than one per file and ancestor).
    parents = [st.entry.path.rpartition("/")[0] for st in states]
    total.update(Counter(parents))
    # The matcher of each rule a removal key names (for its pattern and directory test).
    matcher_for: dict[str, _Matcher] = {}
    for st, parent in zip(states, parents):
        key = st.remove_key
        if key is None:
            continue
        removed[parent] += 1
        rbytes[parent] += st.entry.size
        keys[parent].add(key)
        rule = st.remove_rule
        if rule is not None and key[0] not in matcher_for and key[0] == rule.rule.id:
            matcher_for[key[0]] = rule
    every = set(total)
    for d in list(total):
        while d and "/" in d:
            d = d.rsplit("/", 1)[0]
            if d in every:
                break
            every.add(d)
    every.add("")
    for d in sorted(every, key=lambda x: -x.count("/") if x else 1):
        if not d:
            continue
        parent = d.rsplit("/", 1)[0] if "/" in d else ""
        total[parent] += total[d]
        if removed.get(d):
            removed[parent] += removed[d]
            rbytes[parent] += rbytes[d]
            keys[parent] |= keys[d]

    whole: set[str] = set()
    for d in sorted(total, key=lambda x: x.count("/")):
        if d in structural or not d:
            continue
        if removed[d] == total[d] and len(keys[d]) > 1:
            # An untraced directory whose files go under several rules goes whole, as
            # minimal-untraced: leaving it empty would keep an importable namespace package.
            untraced = [k for k in keys[d] if k[0] == "minimal-untraced"]
            if untraced:
                keys[d] = {untraced[0]}
        if len(keys[d]) == 1 and next(iter(keys[d]))[0] == "minimal-untraced" and d in listed:
            # A directory a traced run listed must still exist afterwards, even empty
            # (knowledge-base optional data units are the exception: they go whole).
            continue
        if removed[d] == total[d] and len(keys[d]) == 1 and _dir_goes_whole(d, next(iter(keys[d])), matcher_for, sites):
            parent = d.rsplit("/", 1)[0] if "/" in d else ""
            if parent in whole:
                continue
            # an ancestor already taken?
            anc = parent
            covered = False
            while anc:
                if anc in whole:
                    covered = True
                    break
                anc = anc.rsplit("/", 1)[0] if "/" in anc else ""
            if not covered:
                whole.add(d)

    covered_by_whole = within_any(whole)  # whole is complete from here on
    actions: list[Action] = []
    for d in sorted(whole):
        (key,) = keys[d]
        actions.append(_action(d, "dir", rbytes[d], removed[d], key, matcher_for, removed_dists, d))
    for st, parent in zip(states, parents):
        if st.remove_key is None or covered_by_whole(parent):
            continue
        kind = "link" if st.entry.is_link else "file"
        actions.append(_action(st.entry.path, kind, st.entry.size, 1, st.remove_key, matcher_for,
                               removed_dists, st.sub))
    actions.sort(key=lambda a: a.path)
    return tuple(actions)


def _dir_goes_whole(
    d: str, key: tuple[str, str, str, str, bool], matcher_for: Mapping[str, _Matcher], sites: Sequence[str]
) -> bool:
    """Whether a directory whose files all go may itself go.

    Yes when its whole distribution goes, when trace-gated data or minimal removes it, or
    when the rule's pattern matches the directory itself ("tests/", "__pycache__/"). A
    directory emptied by file patterns ("*.pc") stays: an empty directory is still an
    importable namespace package, and entry points may name it (numpy's
    ``numpy._core.lib.pkgconfig`` entry point taught us this).
    """
    rule_id = key[0]
    if rule_id == "distribution" or rule_id.startswith("optional:") or rule_id == "minimal-untraced":
        return True
    m = matcher_for.get(rule_id)
    if m is None:
        return False
    found = _site_relative(d, sites)
    sub = found[1] if found else d
    return m.match(sub + "/")


def _action(
    path: str, kind: str, nbytes: int, nfiles: int, key: tuple[str, str, str, str, bool],
    matcher_for: Mapping[str, _Matcher], removed_dists: Mapping[str, DistDecision], sub: str,
) -> Action:
    rule_id, pattern, profile, owner, traced = key
    if rule_id == "distribution":
        dec = removed_dists[owner]
        return Action(path, kind, nbytes, nfiles, "distribution", f"{dec.name} {dec.version}",
                      profile, owner, dec.reason, False)
    m = matcher_for.get(rule_id)
    if m is not None and not pattern:
        probe = sub + "/" if kind == "dir" else sub
        site_sub = probe
        pattern = m.pattern_for(site_sub)
        reason = m.rule.reason
    else:
        reason = {
            "minimal-untraced": "not reached by any trace (profile minimal)",
        }.get(rule_id, "optional data no trace reached")
    return Action(path, kind, nbytes, nfiles, rule_id, pattern, profile, owner, reason, traced)


def _records_after(
    inv: Inventory, actions: Sequence[Action], removed_dists: Mapping[str, DistDecision]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For each kept distribution that loses files: its RECORD path and the removed entries
    (paths relative to the root), so apply can rewrite RECORD to list what remains."""
    by_owner: dict[str, list[str]] = defaultdict(list)
    for a in actions:
        if a.distribution and a.distribution not in removed_dists:
            by_owner[a.distribution].append(a.path)
    out: list[tuple[str, tuple[str, ...]]] = []
    for dist in inv.distributions:
        gone = by_owner.get(dist.name)
        if not gone or not dist.has_record:
            continue
        prefixes = tuple(sorted(gone))
        out.append((f"{dist.metadata_dir}/RECORD", prefixes))
    return tuple(out)


def _explained_path(plan: Plan, path: str) -> str:
    """``path`` relative to the root: given absolute, relative to the root, or relative to the
    current directory when only that names something under the root."""
    root = str(plan.inventory.env.root)
    if not os.path.isabs(path) and not os.path.lexists(os.path.join(root, path)) and os.path.lexists(path):
        path = os.path.abspath(path)
    if os.path.isabs(path):
        path = os.path.relpath(os.path.realpath(path) if not os.path.islink(path) else path, root)
    return path.replace(os.sep, "/").strip("/")


def in_environment(plan: Plan, path: str) -> bool:
    """Whether ``path`` (as :func:`explain` takes it) names a file or directory the scan saw."""
    rel = _explained_path(plan, path)
    return bool(rel) and not rel.startswith("../") and (
        any(f.path == rel or f.path.startswith(rel + "/") for f in plan.inventory.files)
        or any(a.path == rel for a in plan.actions) or any(k.path == rel for k in plan.kept))


def explain(plan: Plan, path: str) -> str:
    """Why ``path`` (relative to the root, or absolute under it) goes or stays, in one
    paragraph: the action and rule that remove it, or what saves it."""
    root = str(plan.inventory.env.root)
    rel = _explained_path(plan, path)
    for a in plan.actions:
        if rel == a.path or rel.startswith(a.path + "/"):
            what = "is removed" if rel == a.path else f"is removed with {a.path}/"
            trace = " (trace-driven)" if a.trace else ""
            owner = f", owned by {a.distribution}" if a.distribution else ""
            return (f"{rel} {what}: rule '{a.rule}' (pattern {a.pattern!r}, profile {a.profile}"
                    f"{owner}){trace}: {a.reason}")
    for k in plan.kept:
        if rel == k.path or k.path.startswith(rel + "/"):
            return (f"{rel} stays: rule '{k.rule}' matched it, but it is protected by "
                    f"{k.saved_by}: {k.reason}")
    found = _site_relative(rel, plan.inventory.env.site_packages)
    if found is None:
        for prot in load_knowledge().protect:
            if prot.scope == "root" and (prot.spec.match_file(rel) or prot.spec.match_file(rel + "/")):
                return (f"{rel} stays: protected by knowledge:{prot.id} (no profile removes it): "
                        f"{prot.reason} ({prot.source})")
    if found is not None:
        for prot in load_knowledge().protect:
            if prot.scope == "root":
                continue
            if prot.spec.match_file(found[1]):
                return (f"{rel} stays: protected by knowledge:{prot.id} (no profile removes it): "
                        f"{prot.reason} ({prot.source})")
        if found[1].split("/", 1)[0].endswith((".dist-info", ".egg-info")):
            return f"{rel} stays: distribution metadata, removed only with its distribution"
        if rel.endswith(".mo"):
            return f"{rel} stays: compiled translations (.mo) are always protected"
    for d in plan.distributions:
        inv_dist = plan.inventory.distribution(d.name)
        if inv_dist and not d.remove and any(f == rel or f.startswith(rel + "/") for f in inv_dist.files):
            return f"{rel} stays: owned by {d.name} {d.version}, which is kept ({d.reason})"
    known = any(f.path == rel or f.path.startswith(rel + "/") for f in plan.inventory.files)
    if not known:
        return f"{rel} is not in the environment (paths are relative to {root})"
    return f"{rel} stays: no rule of profile {plan.profile!r} removes it"


def iter_paths(actions: Iterable[Action]) -> Iterable[str]:
    for a in actions:
        yield a.path
