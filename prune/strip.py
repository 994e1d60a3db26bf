"""Safe debug-symbol stripping of ELF shared objects.

Stripping is the largest byte win left after pruning files, and the one that can break an
environment silently: ``strip`` on a library that patchelf rewrote can produce a file the
loader rejects (``ELF load command address/offset not page-aligned``; pypa/manylinux issue
119, pypa/auditwheel issue 716, NixOS/patchelf issue 10). So this module only ever strips a
*copy*, and only of files that were not vendored or patched by auditwheel/delocate:

1. :func:`find_strip_candidates` reads ELF headers (pyelftools) and says, per ``*.so`` /
   ``*.so.N`` file, whether it is worth stripping or why it is skipped.
2. :func:`strip_copy` runs ``strip --strip-unneeded -o DST SRC`` and checks the result's load
   segments are still aligned.
3. :func:`check_loads` dlopens the copy and, for an extension module, imports it under its
   real name in the target interpreter.

The caller (the transactional apply) swaps the copy in only after all three agree. Nothing
here writes into the environment: the copy goes where the caller says, the checks run with
``-B``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from . import _tmp
from ._signals import signal_name
from .errors import PruneError, UnsafePath, UsageError

__all__ = [
    "SKIP_LINK",
    "SKIP_NOTHING",
    "SKIP_NOT_ELF",
    "SKIP_NOT_SHARED",
    "SKIP_PATCHED",
    "SKIP_VENDORED",
    "StripCandidate",
    "StripError",
    "check_loads",
    "check_loads_many",
    "elf_module_name",
    "find_strip_candidates",
    "is_shared_object_name",
    "strip_available",
    "strip_copy",
    "strip_executable",
]

SKIP_LINK = "symlink"
SKIP_NOT_ELF = "not-elf"
SKIP_NOT_SHARED = "not-shared-object"
SKIP_VENDORED = "vendored"
SKIP_PATCHED = "patched"
SKIP_NOTHING = "nothing-to-strip"

# ``foo.so``, ``libfoo.so.6``, ``libgfortran-040039e1-0352e75f.so.5.0.0``.
_SO_NAME = re.compile(r"\.so(?:\.\d+)*$")
# auditwheel renames a grafted library ``base.ext`` to ``base-<8 hex digits>.ext`` (the first
# 8 hex digits of its sha256), e.g. ``libopenblas64_p-r0-0cf96a72.3.23.dev.so``; a library
# repaired twice carries two (numpy's ``libgfortran-040039e1-0352e75f.so.5.0.0``).
_AUDITWHEEL_NAME = re.compile(r"-[0-9a-f]{8}\.(?:.*\.)?so(?:\.|$)")
# Extension module file names PEP 3149 / importlib.machinery.EXTENSION_SUFFIXES accept.
_EXT_MODULE = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\.(?:cpython-\d+[a-z]*(?:-[A-Za-z0-9_]+)*|abi3|pypy\d*-pp\d+(?:-[A-Za-z0-9_]+)*))?"
    r"\.so$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REMOVABLE_SECTION = re.compile(r"^(?:\.symtab|\.strtab|\.z?debug_.*)$")


class StripError(PruneError, RuntimeError):
    """``strip`` is missing, failed, or produced a file the loader would reject."""

    exit_code = 1


@dataclass(frozen=True)
class StripCandidate:
    """One shared object and what stripping it would do.

    ``path`` is POSIX, relative to the root given to :func:`find_strip_candidates`.
    ``size`` is the file's size; ``removable`` estimates the bytes ``strip --strip-unneeded``
    would remove (``.symtab``, ``.strtab``, ``.debug_*`` sections; the real saving is known
    only after :func:`strip_copy`). ``module`` is the extension module's dotted name when the
    file exports ``PyInit_<name>``, else None. ``skip_reason`` is None when the file should be
    stripped, otherwise one of the ``SKIP_*`` codes; ``detail`` says why in words either way.
    """

    path: str
    size: int
    removable: int
    module: str | None
    skip_reason: str | None
    detail: str

    @property
    def strippable(self) -> bool:
        """True when nothing argues against stripping this file."""
        return self.skip_reason is None


def _tag_text(tag: object, name: str) -> str:
    """A string attribute pyelftools sets on a dynamic tag at run time (untyped in its stubs)."""
    return str(getattr(tag, name))


def is_shared_object_name(relpath: str) -> bool:
    """True for ``*.so`` and ``*.so.N[.M...]`` file names."""
    return bool(_SO_NAME.search(relpath.rsplit("/", 1)[-1]))


def elf_module_name(relpath: str) -> str | None:
    """The dotted module name an extension file would import as, or None.

    ``relpath`` is POSIX, relative to a site-packages directory, or to an environment root (in
    which case everything up to the last ``site-packages``/``dist-packages`` component is
    dropped): ``pkg/sub/_x.cpython-311-x86_64-linux-gnu.so`` -> ``pkg.sub._x``. Returns None
    when the name is not an extension module name (``libfoo.so.1``, a directory that is not
    an identifier such as ``numpy.libs``). The name alone does not prove the file is an
    extension; :func:`find_strip_candidates` also checks it exports ``PyInit_<name>``.
    """
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            parts = parts[len(parts) - parts[::-1].index(marker):]
    if not parts:
        return None
    m = _EXT_MODULE.match(parts[-1])
    if not m or not all(_IDENTIFIER.match(p) for p in parts[:-1]):
        return None
    return ".".join([*parts[:-1], m.group("name")])


def _inside(root: Path, rel: str) -> Path:
    """``root / rel`` after checking ``rel`` cannot climb out of ``root`` (invariant 1)."""
    if rel.startswith("/") or ".." in rel.split("/"):
        raise UnsafePath(f"{rel}: path leaves the environment root; pass paths relative to it")
    return root / rel


def _dynamic_tags(elf: ELFFile) -> tuple[list[str], list[str], str | None]:
    """(NEEDED names, RPATH+RUNPATH entries, SONAME) of an ELF file."""
    needed: list[str] = []
    search: list[str] = []
    soname: str | None = None
    for section in elf.iter_sections():
        if not isinstance(section, DynamicSection):
            continue
        for tag in section.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                needed.append(_tag_text(tag, "needed"))
            elif tag.entry.d_tag == "DT_RPATH":
                search.extend(_tag_text(tag, "rpath").split(":"))
            elif tag.entry.d_tag == "DT_RUNPATH":
                search.extend(_tag_text(tag, "runpath").split(":"))
            elif tag.entry.d_tag == "DT_SONAME":
                soname = _tag_text(tag, "soname")
    return needed, search, soname


def _layout_anomaly(elf: ELFFile) -> str | None:
    """Why the section layout looks rewritten by patchelf, or None.

    A linker lays out every allocated section (code, data, .dynsym, .dynstr, .dynamic) before
    the non-allocated ones (.comment, .symtab, .strtab, .shstrtab) and puts the section header
    table last. patchelf, when a new RPATH or NEEDED does not fit, moves .dynstr/.dynsym/
    .dynamic to a new load segment at the end of the file (NixOS/patchelf issue 10): exactly
    the files ``strip`` has corrupted (pypa/manylinux issue 119). No system library on Debian
    12 shows either pattern; every patched numpy extension does.
    """
    sections = [
        s for s in list(elf.iter_sections())[1:]
        if s["sh_type"] != "SHT_NOBITS" and s["sh_size"] > 0
    ]
    alloc = [s for s in sections if s["sh_flags"] & SH_FLAGS.SHF_ALLOC]
    other = [s for s in sections if not s["sh_flags"] & SH_FLAGS.SHF_ALLOC]
    if not alloc:
        return None
    last_alloc = max(alloc, key=lambda s: s["sh_offset"])
    if other:
        first_other = min(other, key=lambda s: s["sh_offset"])
        if last_alloc["sh_offset"] > first_other["sh_offset"]:
            return (
                f"section layout rewritten by patchelf ({last_alloc.name} lies after "
                f"{first_other.name})"
            )
    if elf["e_shoff"] and last_alloc["sh_offset"] > elf["e_shoff"]:
        return (
            f"section layout rewritten by patchelf ({last_alloc.name} lies after the section "
            "header table)"
        )
    return None


def _patched_reason(needed: Sequence[str], search: Sequence[str], soname: str | None) -> str | None:
    for entry in search:
        if ("$ORIGIN" in entry or "${ORIGIN}" in entry) and any(
            p.endswith(".libs") or p == ".dylibs" for p in entry.split("/")
        ):
            return f"RPATH {entry} set by auditwheel with patchelf"
    for name in [*needed, *([soname] if soname else [])]:
        if _AUDITWHEEL_NAME.search(name):
            return f"links {name}, a library renamed by auditwheel with patchelf"
    return None


def _exports_pyinit(elf: ELFFile, name: str) -> bool:
    dynsym = elf.get_section_by_name(".dynsym")
    if not isinstance(dynsym, SymbolTableSection):
        return False
    return bool(dynsym.get_symbol_by_name(f"PyInit_{name}"))


def _inspect(root: Path, rel: str) -> StripCandidate:
    path = _inside(root, rel)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return StripCandidate(rel, st.st_size, 0, None, SKIP_LINK, "a symlink; its target is "
                              "considered on its own")
    if not stat.S_ISREG(st.st_mode):
        return StripCandidate(rel, st.st_size, 0, None, SKIP_NOT_ELF, "not a regular file")
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                return StripCandidate(rel, st.st_size, 0, None, SKIP_NOT_ELF,
                                      "not an ELF file (a linker script or another format)")
            fh.seek(0)
            elf = ELFFile(fh)
            if elf["e_type"] != "ET_DYN":
                return StripCandidate(rel, st.st_size, 0, None, SKIP_NOT_SHARED,
                                      f"ELF {elf['e_type']}, not a shared object")
            removable = sum(
                s["sh_size"] for s in elf.iter_sections() if _REMOVABLE_SECTION.match(s.name)
            )
            needed, search, soname = _dynamic_tags(elf)
            module = elf_module_name(rel)
            if module and not _exports_pyinit(elf, module.rsplit(".", 1)[-1]):
                module = None
            parts = rel.split("/")[:-1]
            if any(p.endswith(".libs") or p == ".dylibs" for p in parts):
                return StripCandidate(rel, st.st_size, removable, module, SKIP_VENDORED,
                                      "vendored by auditwheel/delocate (in a .libs directory)")
            reason = _patched_reason(needed, search, soname) or _layout_anomaly(elf)
            if reason:
                return StripCandidate(rel, st.st_size, removable, module, SKIP_PATCHED, reason)
            if removable == 0:
                return StripCandidate(rel, st.st_size, 0, module, SKIP_NOTHING,
                                      "no symbol table or debug sections")
            return StripCandidate(rel, st.st_size, removable, module, None,
                                  "carries a symbol table or debug sections")
    except (ELFError, ValueError, OSError, KeyError) as exc:
        return StripCandidate(rel, st.st_size, 0, None, SKIP_NOT_ELF, f"unreadable ELF: {exc}")


def find_strip_candidates(root: Path, paths: Iterable[str]) -> tuple[StripCandidate, ...]:
    """Inspect every shared object among ``paths`` and say whether to strip it.

    :param root: the environment root the paths are relative to.
    :param paths: POSIX paths relative to ``root`` (e.g. an inventory's files); those not
        named like a shared object (``*.so``, ``*.so.N``) are ignored, as are missing ones.
    :returns: one :class:`StripCandidate` per shared object, sorted by path; read-only.
    :raises UnsafePath: a path is absolute or climbs out of ``root`` with ``..``.
    """
    out: list[StripCandidate] = []
    for rel in sorted(set(paths)):
        if not is_shared_object_name(rel):
            continue
        try:
            out.append(_inspect(root, rel))
        except FileNotFoundError:
            continue
    return tuple(out)


def strip_executable() -> str | None:
    """The ``strip`` program to use: ``$STRIP`` if set (cross builds), else ``strip`` on PATH."""
    configured = os.environ.get("STRIP")
    if configured:
        return shutil.which(configured)
    return shutil.which("strip")


def strip_available() -> bool:
    """True when a ``strip`` program can be run (see :func:`strip_executable`)."""
    return strip_executable() is not None


def _misaligned_load(path: Path) -> str | None:
    """The loader's own check (glibc ``_dl_map_segments``) done before any loader sees it."""
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            align = seg["p_align"]
            if align > 1 and (seg["p_vaddr"] - seg["p_offset"]) % align:
                return (
                    f"load segment at offset {seg['p_offset']:#x} / address "
                    f"{seg['p_vaddr']:#x} is not aligned to {align:#x}"
                )
    return None


def strip_copy(src: Path, dst: Path) -> int:
    """Write a stripped copy of ``src`` to ``dst`` and return the bytes it saves.

    Runs ``strip --strip-unneeded -o DST SRC``; ``src`` is never modified. ``dst`` gets
    ``src``'s permission bits. The result is checked the way the loader checks it (load
    segments aligned); a bad copy is deleted. The saving (``size(src) - size(dst)``) may be 0
    or negative, in which case the caller should keep the original.

    :raises UnsafePath: ``src`` is a symlink or not a regular file, or ``dst`` already exists.
    :raises StripError: no ``strip`` program, ``strip`` failed, or its output is misaligned.
    """
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{src}: not a regular file; only regular files are stripped")
    if os.path.lexists(dst):
        raise UnsafePath(f"{dst}: already exists; pass a new path for the stripped copy")
    tool = strip_executable()
    if tool is None:
        raise StripError("strip: not found; install binutils (apt-get install binutils) "
                         "or set STRIP, or run without --strip")
    proc = subprocess.run(
        [tool, "--strip-unneeded", "-o", os.fspath(dst), os.fspath(src)],
        capture_output=True, text=True, errors="replace", check=False,
    )
    if proc.returncode != 0 or not dst.is_file():
        _unlink(dst)
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise StripError(f"{src}: strip failed: {why}; the file is left unstripped")
    try:
        bad = _misaligned_load(dst)
    except (ELFError, ValueError, OSError) as exc:
        bad = f"unreadable result ({exc})"
    if bad:
        _unlink(dst)
        raise StripError(f"{src}: strip produced a broken file: {bad}; the file is left unstripped")
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    return st.st_size - os.stat(dst).st_size


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# Runs in the target interpreter (Python 3.8+, so no newer syntax). It dlopens the copy with
# RTLD_LAZY, as the brief and the loader's own error messages need (ctypes.CDLL forces
# RTLD_NOW), then imports it under its real name through a meta-path finder placed first, so
# the package's own imports of that module also get the copy and the original is never loaded
# (loading both would trip "cannot load module more than once per process" guards).
_CHECK = r"""
import ctypes, importlib, importlib.abc, importlib.machinery, importlib.util, json, os, sys
items = json.loads(sys.argv[1])
sys.path[:0] = sys.argv[2:]
def fail(msg):
    sys.stderr.write("\nVENV-PRUNE-CHECK: " + " ".join(str(msg).split()) + "\n")
    sys.exit(3)
libc = ctypes.CDLL(None)
libc.dlopen.restype = ctypes.c_void_p
libc.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.dlerror.restype = ctypes.c_char_p
for path, module in items:
    if not libc.dlopen(os.fsencode(path), os.RTLD_LAZY):
        err = libc.dlerror()
        fail("dlopen: " + (err.decode("utf-8", "replace") if err else "failed"))
copies = {module: path for path, module in items if module}
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, search=None, target=None):
        path = copies.get(fullname)
        if path is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, path)
        return importlib.util.spec_from_file_location(fullname, path, loader=loader)
sys.meta_path.insert(0, Finder())
for module, path in copies.items():
    try:
        mod = importlib.import_module(module)
    except BaseException as exc:
        fail("import %s: %s: %s" % (module, type(exc).__name__, exc))
    if os.path.realpath(getattr(mod, "__file__", "") or "") != os.path.realpath(path):
        fail("import %s: loaded %s, not the stripped copy" % (module, mod.__file__))
"""


def _library_path(origin: Path) -> list[str]:
    """Directories ``origin`` finds libraries in through ``$ORIGIN`` (and its own directory)."""
    dirs = [os.fspath(origin.parent)]
    try:
        with open(origin, "rb") as fh:
            _, search, _ = _dynamic_tags(ELFFile(fh))
    except (ELFError, ValueError, OSError):
        search = []
    for entry in search:
        expanded = entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", os.fspath(origin.parent))
        if "$" not in expanded and os.path.isabs(expanded):
            dirs.append(os.path.normpath(expanded))
    return dirs


def check_loads(
    python: Path | None,
    path: Path,
    module: str | None,
    *,
    origin: Path | None = None,
    sys_path: Sequence[Path] = (),
    timeout: float = 300.0,
) -> str | None:
    """Check that the (stripped) shared object at ``path`` still loads.

    In a fresh process of ``python`` (``-I -B``: isolated, writes no bytecode), dlopen ``path``
    with ``RTLD_LAZY``; if ``module`` is given, also import ``path`` as that module (its
    packages come from the interpreter's own site-packages plus ``sys_path``), with the real
    file never loaded. With ``python`` None (no runnable target interpreter), only the dlopen
    runs, in the interpreter running venv-prune.

    :param origin: the file ``path`` is a copy of. A copy outside the original's directory
        cannot find libraries through ``$ORIGIN``; the original's directory and its expanded
        ``$ORIGIN`` RPATH/RUNPATH entries are then put on ``LD_LIBRARY_PATH``.
    :returns: None if it loads, else one line saying what failed (the loader's or the import's
        error, a crash signal, or a time-out).
    """
    return check_loads_many(python, [(path, module, origin)], sys_path=sys_path, timeout=timeout)[0]


def check_loads_many(
    python: Path | None,
    items: Sequence[tuple[Path, str | None, Path | None]],
    *,
    sys_path: Sequence[Path] = (),
    timeout: float = 300.0,
) -> list[str | None]:
    """:func:`check_loads` for many ``(copy, module, origin)`` at once, one answer each.

    All copies are loaded in one process, every module name redirected to its copy. Stripping
    almost never breaks a file, so one process usually answers for the whole batch (an
    interpreter start with numpy imported costs about a second); when the batch fails, it is
    split in halves until each failure is pinned on one file, checked on its own.
    """
    if not items:
        return []
    err = _run_load_check(python, items, sys_path, timeout * len(items) if len(items) > 1 else timeout)
    if err is None:
        return [None] * len(items)
    if len(items) == 1:
        return [err]
    half = len(items) // 2
    return (check_loads_many(python, items[:half], sys_path=sys_path, timeout=timeout)
            + check_loads_many(python, items[half:], sys_path=sys_path, timeout=timeout))


def _run_load_check(
    python: Path | None, items: Sequence[tuple[Path, str | None, Path | None]],
    sys_path: Sequence[Path], timeout: float,
) -> str | None:
    """One interpreter loads every copy of ``items`` (:data:`_CHECK`); None when all load,
    else the first failure in one line."""
    interpreter = os.fspath(python) if python is not None else sys.executable
    pairs = [(os.fspath(path), module if (module and python is not None) else "") for path, module, _ in items]
    args = [interpreter, "-I", "-B", "-c", _CHECK, json.dumps(pairs), *(os.fspath(p) for p in sys_path)]
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    extra: list[str] = []
    for _, _, origin in items:
        if origin is not None:
            extra += [d for d in _library_path(origin) if d not in extra]
    if extra:
        if env.get("LD_LIBRARY_PATH"):
            extra.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(extra)
    name = items[0][0].name if len(items) == 1 else f"{len(items)} files"
    with _tmp.TemporaryDirectory("check") as cwd:
        try:
            proc = subprocess.run(
                args, cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                stdin=subprocess.DEVNULL, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return f"loading {name} timed out after {timeout:g} s"
        except OSError as exc:
            raise UsageError(f"{interpreter}: cannot run ({exc.strerror}); pass a working "
                             "--python") from exc
    if proc.returncode == 0:
        return None
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith("VENV-PRUNE-CHECK: "):
            return line[len("VENV-PRUNE-CHECK: "):]
    if proc.returncode < 0:
        return f"loading {name} crashed the interpreter ({signal_name(-proc.returncode)})"
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"loading {name} exited with status {proc.returncode}"
