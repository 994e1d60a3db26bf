"""What keeps a file that a removal rule claimed: protections, keep rules, and evidence.

Protections, in order of precedence (the first that applies is reported): the virtual
environment's own skeleton, distribution metadata, ``.pth`` files and what they add to
``sys.path``, sourceless ``.pyc`` modules, ``.mo`` catalogs, the knowledge base, keep rules,
``--keep-module`` and traces (DESIGN.md, invariants 2 and 7). Keep always beats remove.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Optional

from packaging.utils import canonicalize_name

from .._match import FirstMatch, ProtectionMatcher
from ..evidence import HEADER_SUFFIXES, INCLUDING_SUFFIXES, LOCATORS, Candidate, find_evidence
from ..imports import is_evidence_file, is_test_harness
from ..model import Inventory
from ..profiles import Knowledge
from .rules import shallowest_match
from .sources import SourceReader
from .state import FileState, rule_removal, site_top_files

__all__ = ["LazyPaths", "Protections", "is_loose_pyc", "is_sourceless_pyc", "keep_for_environment_readers",
           "keep_header_distributions", "keep_kept_distributions_whole", "keep_on_evidence", "locators",
           "pth_directories", "pth_protected"]

_VENV_SKELETON = re.compile(r"^(pyvenv\.cfg|lib64|bin/(python[\d.]*|pypy[\d.]*|activate.*|Activate\.ps1))$")


def is_loose_pyc(path: str) -> bool:
    """``x.pyc`` outside ``__pycache__`` (not a cache: a module file of its own)."""
    return path.endswith(".pyc") and "/__pycache__/" not in path and not path.startswith("__pycache__/")


def is_sourceless_pyc(path: str, existing: Container[str]) -> bool:
    """``x.pyc`` outside ``__pycache__`` with no ``x.py`` beside it: a module of its own."""
    return is_loose_pyc(path) and path[:-1] not in existing


class LazyPaths:
    """The inventory's paths as a set, built on the first question: only a loose ``.pyc``
    (rare) asks whether its source exists."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._paths: Optional[frozenset[str]] = None

    def __contains__(self, path: object) -> bool:
        if self._paths is None:
            self._paths = frozenset(fe.path for fe in self._inventory.files)
        return path in self._paths


def pth_protected(inventory: Inventory, sources: SourceReader) -> set[str]:
    """Paths named by ``*.pth`` files (relative to their site), plus the .pth files.

    A .pth line that is not an ``import`` statement is a directory added to sys.path
    (site module semantics); editable installs use this to point at their source tree.
    The files are read through ``sources``, as UTF-8 (undecodable bytes replaced).
    """
    protected: set[str] = set()
    for site, path in site_top_files(inventory.files, inventory.env.site_packages):
        if not path.endswith(".pth"):
            continue
        protected.add(path)
        for line in sources.read_bytes(path).decode("utf-8", "replace").splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "import ", "import\t")):
                continue
            target = posixpath.normpath(posixpath.join(site, line)) if not line.startswith("/") else None
            if target and not target.startswith(".."):
                protected.add(target)
    return protected


def pth_directories(pth: frozenset[str]) -> tuple[str, ...]:
    """``pth`` paths as directory prefixes (``a/``), to test what lies below one."""
    return tuple(p + "/" for p in sorted(pth))


@dataclass(frozen=True)
class Protections:
    """Everything that keeps a claimed file, for one plan. ``kind``: the environment's kind;
    ``pth``: from :func:`pth_protected`; ``existing``:
    the inventory's paths; ``protect``/``protect_root``/``keep``: the rule set's matchers;
    ``keep_modules``: ``--keep-module`` names as paths (``a/b``); ``trace_kept``: what a
    trace reached."""

    kind: str
    pth: frozenset[str]
    existing: Container[str]
    protect: FirstMatch
    protect_root: FirstMatch
    keep: FirstMatch
    keep_modules: tuple[str, ...]
    trace_kept: frozenset[str]
    pth_below: tuple[str, ...] = ()  # the .pth paths as directories: pth_directories(pth)

    def keeper(self, st: FileState) -> Optional[tuple[str, str]]:
        """(saved_by, reason) of the first protection that keeps ``st``, or None."""
        path, sub, site = st.entry.path, st.sub, st.site
        if site is None and self.kind == "venv" and _VENV_SKELETON.match(path):
            return "environment", "part of the virtual environment itself (interpreter, activation, pyvenv.cfg)"
        if site is not None:
            top_end = sub.find("/")  # the first component ends there (or at the end)
            if sub.endswith((".dist-info", ".egg-info"), 0, top_end if top_end >= 0 else len(sub)):
                return "metadata", ("distribution metadata (METADATA, RECORD, entry_points.txt, top_level.txt) "
                                    "is read at run time by importlib.metadata; removed only with the distribution")
        if path in self.pth or path.startswith(self.pth_below):
            return "pth", "a .pth file, or a path a .pth file adds to sys.path (editable installs)"
        if path.endswith(".pyc") and is_sourceless_pyc(path, self.existing):
            return "sourceless-bytecode", "a .pyc module without its .py source: removing it removes the module"
        if path.endswith(".mo"):
            return "gettext-catalog", "compiled translations (.mo) are read at run time by gettext"
        return self._rules_keep(st)

    def _rules_keep(self, st: FileState) -> Optional[tuple[str, str]]:
        sub, site = st.sub, st.site
        protections = self.protect_root if site is None else self.protect
        if protections.matchers:
            protecting = protections.first(sub)
            if protecting is not None:
                assert isinstance(protecting, ProtectionMatcher)
                kb = protecting.protection
                return f"knowledge:{kb.id}", f"{kb.reason} ({kb.source})"
        keeping = self.keep.first(sub) if self.keep.matchers else None
        if keeping is not None:
            return f"keep:{keeping.rule.id}", keeping.rule.reason or "keep rule"
        if site is not None:
            for prefix in self.keep_modules:
                if sub == prefix + ".py" or sub.startswith(prefix + "/") or sub.startswith(prefix + "."):
                    return "keep-module", f"--keep-module {prefix.replace('/', '.')}"
        if st.entry.path in self.trace_kept:
            return "trace", "reached by a traced run (--keep-from)"
        return None

    def user_keeper(self, sub: str, path: str) -> Optional[str]:
        """What the user said to keep a file of a distribution the graph removes (a keep
        pattern, a trace, ``--keep-module``), or None: such a file keeps its distribution."""
        keeping = self.keep.first(sub)
        if keeping is not None:
            return f"keep rule {keeping.rule.id} ({', '.join(keeping.rule.patterns)})"
        if path in self.trace_kept:
            return "a trace (--keep-from)"
        return next((f"--keep-module {p.replace('/', '.')}" for p in self.keep_modules
                     if sub == p + ".py" or sub.startswith(p + "/")), None)


# --- evidence: kept code reads what an evidence-gated rule would remove ----------------------

def locators(knowledge: Knowledge) -> tuple[bytes, ...]:
    """What a source file that locates data on disk contains (see :mod:`prune.evidence`)."""
    return tuple(sorted(set(LOCATORS) | {r.call.encode() for r in knowledge.readers}))


def _evidence_gated(st: FileState) -> bool:
    """Whether ``st`` goes by the evidence-gated rule that claimed it (``evidence = true``)."""
    rule = st.remove_rule
    return rule is not None and rule.rule.evidence and st.gated_by_its_rule()


def _locating_code(states: Sequence[FileState], owners: Container[str], sources: SourceReader,
                   knowledge: Knowledge) -> dict[str, list[tuple[str, str]]]:
    """owner -> [(path, sub)] of the kept source files of ``owners`` that may locate data.

    Code only tests or builds run (tests/, conftest.py, setup.py) is no evidence of a read
    at run time: a kept test module names its own data, and a test harness shipped as a
    package names the suite it runs (sympy/testing/runtests.py kept 2.7 MB of sympy's tests),
    and a code generator the knowledge base lists (``writes_only``: torchgen) names what it
    writes.
    """
    writers = [w.spec for w in knowledge.writers]
    code_states = [st for st in states
                   if st.removal is None and st.owner in owners and st.site is not None
                   and st.entry.path.endswith(".py") and not st.entry.is_link
                   and is_evidence_file(st.entry.path) and not is_test_harness(st.entry.path)
                   and not any(w.match_file(st.sub) for w in writers)]
    maybe = set(sources.may_contain([st.entry.path for st in code_states], locators(knowledge)))
    code: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for st in code_states:
        if st.entry.path in maybe:
            code[st.owner].append((st.entry.path, st.sub))
    return code


def _candidates(gated: Sequence[FileState]) -> list[Candidate]:
    """The evidence question for each gated file, with the shallowest directory its rule
    matches (asked once per rule and directory)."""
    shallowest: dict[tuple[str, str], Optional[str]] = {}
    candidates: list[Candidate] = []
    for st in gated:
        rule = st.remove_rule
        assert rule is not None
        where = st.sub.rpartition("/")[0]
        memo = (rule.rule.id, where)
        if memo not in shallowest:
            shallowest[memo] = shallowest_match(rule, where)
        candidates.append(Candidate(st.sub, st.owner, rule.rule.id, shallowest[memo] or "", st.entry.path))
    return candidates


def keep_on_evidence(states: Sequence[FileState], sources: SourceReader,
                     knowledge: Knowledge) -> list[FileState]:
    """Keep the files that evidence-gated rules (stubs, C sources, docs, tests, share/) would
    remove but their distribution's kept code reads at run time (:mod:`prune.evidence`).

    Only the kept source files of distributions that own such a file are read, and of those
    only the ones that locate data (the reader may rule the rest out). A file saved here
    still loses its caches: the rule that matched before the gated one applies, as in the
    import check. When evidence keeps a file inside a directory that a directory rule matched
    (tests/, docs/), every Python module there stays too (:func:`_keep_whole_packages`).
    Returns the files kept here.
    """
    gated = [st for st in states if st.owner and _evidence_gated(st)]
    if not gated:
        return []
    code = _locating_code(states, {st.owner for st in gated}, sources, knowledge)
    # Every kind of evidence comes from the owner's code, or from a header that stays: a
    # distribution without either keeps nothing here (a generated 100k-file tree: none at all).
    optional = [o.spec for o in knowledge.read_optional]
    # Headers and C/C++ sources of any owner stay asked: a kept header may include them
    # (cysignals has no code that locates files, and its signals.pxd names struct_signals.h).
    gated = [st for st in gated if (st.owner in code or st.sub.lower().endswith(INCLUDING_SUFFIXES))
             and not (optional and st.site is not None and any(o.match_file(st.sub) for o in optional))]
    candidates = _candidates(gated)
    # Headers and C/C++ sources that stay for another reason (a protection, an environment-wide
    # reader): a compiler reads what they include (pythran's pythonic/include headers).
    kept_sources = [Candidate(st.sub, st.owner, "", "", st.entry.path) for st in states
                    if st.removal is None and st.saved_by and st.owner and st.site is not None
                    and not st.entry.is_link and st.sub.lower().endswith(INCLUDING_SUFFIXES)]
    whole: dict[tuple[str, str], str] = {}
    kept_now: list[FileState] = []
    found = find_evidence(candidates, code, sources.read_bytes, knowledge.readers, kept_sources)
    for i, ev in sorted(found.items()):
        st = gated[i]
        anchor = candidates[i].anchor
        if anchor:
            whole.setdefault((_scope_of(st), anchor), f"{st.sub}: {ev.reason}")
        if _keep_gated(st, f"evidence:{ev.kind}", ev.reason):
            kept_now.append(st)
    return kept_now + (_keep_whole_packages(states, whole) if whole else [])


def _keep_whole_packages(states: Sequence[FileState], whole: dict[tuple[str, str], str]) -> list[FileState]:
    """In a directory a directory rule matched (tests/, docs/) where evidence keeps a file,
    keep every Python module too: keeping part of a package while its modules go leaves
    half a package (twisted/test/__init__.py kept, its proto_helpers.py removed: importing
    the kept __init__ fails). Data nothing names still goes (torch/test's 85 MB of C++
    test binaries, where a literal names one of them). What the kept modules import is
    asked by the import check again. ``whole``: (scope, directory) -> why."""
    kept: list[FileState] = []
    for st in states:
        if not _evidence_gated(st) or not _is_module_file(st.sub):
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
            kept.append(st)
    return kept


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


def _scope_of(st: FileState) -> str:
    """Where a directory rule's match is one directory: its site-packages directory, or for
    files outside one (share/) the environment root and the owning distribution."""
    return f"site:{st.site}" if st.site is not None else f"root:{st.owner}"


def _keep_gated(st: FileState, saved_by: str, reason: str) -> bool:
    """Keep a file an evidence-gated rule would remove; False when an earlier rule that is not
    evidence-gated still removes it (saving a docs/ directory does not save its caches)."""
    earlier = st.fallback_rule
    if earlier is not None and not earlier.rule.evidence:
        st.remove_rule = earlier
        st.removal = rule_removal(earlier, st.owner)
        return False
    st.save(saved_by, reason)
    return True


def keep_for_environment_readers(states: Sequence[FileState], inventory: Inventory,
                                 removed_dists: Container[str], knowledge: Knowledge) -> None:
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
        if (not _evidence_gated(st) or st.site is None or st.owner in removed_dists
                or any(o.match_file(st.sub) for o in optional)):
            continue
        for er, names in active:
            if er.spec.match_file(st.sub):
                st.save(f"evidence:reads-environment:{er.id}",
                        f"{', '.join(names)} (kept) reads such files of every distribution: "
                        f"{er.reason} (knowledge:{er.id}; {er.source})")
                break


# What a distribution offers to import or to type-check; a kept distribution keeps at least one.
_MODULE_SUFFIXES = (".py", ".pyi", ".so", ".pyd", ".pyc")


_HEADER_LIBRARY = 20  # headers: fewer is a package shipping a header, not a header library


def keep_header_distributions(states: Sequence[FileState], removed_dists: Container[str]) -> None:
    """A kept distribution whose content is mostly C/C++ headers (nvidia-cuda-cccl: libcu++,
    CUB and Thrust, 2158 of its 2355 files) exists to be compiled against: its headers stay.
    Its public headers are often extensionless (``cuda/std/array``, libc++ style), which no
    rule matches, and they include the ``.h`` files the c-sources rule would take, leaving a
    header tree that cannot compile (a tester's finding, in every profile, safe included).
    Mostly: the headers rules would remove are at least half its bytes outside its metadata,
    and a library of them (20 or more), not a package that happens to ship a header or two."""
    total: dict[str, int] = defaultdict(int)
    headers: dict[str, list[FileState]] = defaultdict(list)
    for st in states:
        if not st.owner or st.site is None or st.owner in removed_dists or ".dist-info/" in st.sub:
            continue
        total[st.owner] += st.entry.size
        if _evidence_gated(st) and st.sub.lower().endswith(HEADER_SUFFIXES):
            headers[st.owner].append(st)
    for owner, group in headers.items():
        size = sum(st.entry.size for st in group)
        if size * 2 < total[owner] or len(group) < _HEADER_LIBRARY:
            continue
        for st in group:
            st.save("evidence:header-distribution",
                    f"{owner} is kept and is mostly C/C++ headers ({size:,} of {total[owner]:,} bytes): "
                    "it exists to be compiled against, and its headers include one another")


def keep_kept_distributions_whole(states: Sequence[FileState], removed_dists: Container[str]) -> None:
    """A distribution the graph keeps is never emptied by file-type rules: when rules marked
    ``evidence = true`` would remove every module and stub it has (``types-requests``: all of
    ``requests-stubs/*.pyi``), that is removing the distribution, which the graph has not
    decided; those files stay."""
    modules: dict[str, list[FileState]] = defaultdict(list)
    for st in states:
        if (st.owner and st.site is not None and st.owner not in removed_dists
                and st.sub.endswith(_MODULE_SUFFIXES) and ".dist-info/" not in st.sub):
            modules[st.owner].append(st)
    for owner, group in modules.items():
        if any(st.removal is None for st in group):
            continue
        for st in group:
            if _evidence_gated(st):
                rule_id = st.remove_rule.rule.id if st.remove_rule else ""
                st.save("evidence:kept-distribution",
                        f"{owner} is kept, and file-type rules would remove every module and stub "
                        f"it has ({rule_id}), which would remove it in effect; the dependency graph "
                        "has not decided that")
