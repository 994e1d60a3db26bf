"""Shared libraries an environment needs but does not carry: ``venv-prune libs PATH``.

A wheel's extensions either carry their libraries (auditwheel grafts them into ``*.libs/``) or
expect the system to provide them: psycopg2 built from source needs ``libpq.so.5``, opencv
needs ``libGL.so.1``. The builder stage has them, the slim runtime stage often does not, and the
failure shows only at import time. This module reads every ELF file's DT_NEEDED entries
(pyelftools), drops what the environment carries and what the base image provides
(:data:`BASE_IMAGE_LIBRARIES`), and reports the rest, each with the files that need it and,
where this machine can tell, where it resolves and which Debian package provides it.

Only DT_NEEDED is read: libraries a package opens itself with ``dlopen``/``ctypes`` at run
time are not seen (verification and tracing catch those).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from .env import Environment

__all__ = [
    "BASE_IMAGE_LIBRARIES",
    "ElfNeeds",
    "MissingLibrary",
    "debian_packages",
    "known_packages",
    "missing_libraries",
    "resolve_library",
    "scan_needs",
]

# What ``python:3.x-slim`` (Debian 12 bookworm and 13 trixie) provides, as soname patterns
# (fnmatch) mapped to the Debian package that ships them. Three sources:
#  - glibc (libc6) and the libraries every Debian base image has because dpkg and apt need
#    them (Priority: required): libgcc-s1, libstdc++6, libcrypt1, zlib1g;
#  - what the official image keeps for CPython's own extension modules (its Dockerfile marks
#    every package that ``ldd /usr/local/...`` resolves to as manual, tkinter excluded);
#  - libpython itself, built with --enable-shared into /usr/local/lib.
# Sonames are the bookworm/trixie ones (libssl.so.3, libffi.so.8): an extension built against
# older ones (libssl.so.1.1) is reported, correctly, as missing. Pass ``base=`` for another
# runtime image (distroless, ubuntu, a -slim of another release).
BASE_IMAGE_LIBRARIES: Mapping[str, str] = {
    "linux-vdso.so.1": "(kernel)",
    "linux-gate.so.1": "(kernel)",
    "ld-linux*.so.*": "libc6",
    "ld64.so.*": "libc6",
    "libc.so.6": "libc6",
    "libm.so.6": "libc6",
    "libmvec.so.1": "libc6",
    "libpthread.so.0": "libc6",
    "libdl.so.2": "libc6",
    "librt.so.1": "libc6",
    "libutil.so.1": "libc6",
    "libresolv.so.2": "libc6",
    "libanl.so.1": "libc6",
    "libnss_*.so.2": "libc6",
    "libthread_db.so.1": "libc6",
    "libBrokenLocale.so.1": "libc6",
    "libgcc_s.so.1": "libgcc-s1",
    "libstdc++.so.6": "libstdc++6",
    "libcrypt.so.1": "libcrypt1",
    "libz.so.1": "zlib1g",
    "libbz2.so.1.0": "libbz2-1.0",
    "liblzma.so.5": "liblzma5",
    "libffi.so.8": "libffi8",
    "libssl.so.3": "libssl3",
    "libcrypto.so.3": "libssl3",
    "libsqlite3.so.0": "libsqlite3-0",
    "libexpat.so.1": "libexpat1",
    "libuuid.so.1": "libuuid1",
    "libncursesw.so.6": "libncursesw6",
    "libpanelw.so.6": "libncursesw6",
    "libmenuw.so.6": "libncursesw6",
    "libformw.so.6": "libncursesw6",
    "libtinfo.so.6": "libtinfo6",
    "libreadline.so.8": "libreadline8",
    "libgdbm.so.6": "libgdbm6",
    "libgdbm_compat.so.4": "libgdbm-compat4",
    "libdb-5.3.so": "libdb5.3",
    "libpython3*.so*": "(python image, /usr/local/lib)",
}

_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")


@dataclass(frozen=True)
class ElfNeeds:
    """One ELF file in the environment: its DT_NEEDED names, SONAME and ELF class (32/64)."""

    path: str
    needed: tuple[str, ...]
    soname: str | None
    bits: int


@dataclass(frozen=True)
class MissingLibrary:
    """A library that files in the environment need and neither it nor the base image has.

    ``needed_by`` are POSIX paths relative to the environment root, sorted. ``resolved`` is
    where this machine's loader cache finds it (None: not installed here either), and
    ``package`` the Debian package that provides it (None when unknown): ``package_from``
    says how it is known, ``"dpkg"`` (``dpkg-query -S`` on this machine's file) or
    ``"table"`` (:func:`known_packages`, Debian 12 bookworm, for a library not installed here).
    """

    name: str
    needed_by: tuple[str, ...]
    resolved: str | None = None
    package: str | None = None
    package_from: str | None = None

    @property
    def resolvable(self) -> bool:
        """True when this machine can load it (so the builder stage has it)."""
        return self.resolved is not None



def _tag_text(tag: object, name: str) -> str:
    """A string attribute pyelftools sets on a dynamic tag at run time (untyped in its stubs)."""
    return str(getattr(tag, name))


def _may_be_elf(name: str, mode: int) -> bool:
    return ".so" in name or bool(mode & 0o111)


def _read_needs(path: Path, rel: str) -> ElfNeeds | None:
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                return None
            fh.seek(0)
            elf = ELFFile(fh)
            needed: list[str] = []
            soname: str | None = None
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(_tag_text(tag, "needed"))
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = _tag_text(tag, "soname")
            return ElfNeeds(rel, tuple(needed), soname, elf.elfclass)
    except (ELFError, ValueError, OSError, KeyError):
        return None


def scan_needs(root: Path, walk: Sequence[str] = ("",)) -> tuple[tuple[ElfNeeds, ...], frozenset[str]]:
    """Read the ELF files under ``root`` (within the ``walk`` directories, relative to root).

    Symlinks are never followed, but their names count as carried (``libfoo.so.1`` ->
    ``libfoo.so.1.2.3`` is how a soname is usually provided).

    :returns: (every ELF file's needs, sorted by path; every file name and SONAME present).
    """
    elves: list[ElfNeeds] = []
    carried: set[str] = set()
    for area in walk:
        top = root / area if area else root
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                carried.add(name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or not _may_be_elf(name, st.st_mode):
                    continue
                rel = full.relative_to(root).as_posix()
                needs = _read_needs(full, rel)
                if needs is not None:
                    elves.append(needs)
                    if needs.soname:
                        carried.add(needs.soname)
            # Symlinked directories are not walked (os.walk default), but their names may
            # be sonames too (rare; harmless to count).
    return tuple(sorted(elves, key=lambda e: e.path)), frozenset(carried)


def _ldconfig() -> str | None:
    return shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(p, os.X_OK)), None
    )


def _loader_cache() -> dict[str, list[tuple[str, str]]]:
    """``ldconfig -p``: soname -> [(flags, path)], in cache order."""
    tool = _ldconfig()
    if tool is None:
        return {}
    try:
        out = subprocess.run([tool, "-p"], capture_output=True, text=True, errors="replace",
                             env={**os.environ, "LC_ALL": "C"}, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    cache: dict[str, list[tuple[str, str]]] = {}
    for line in out.splitlines():
        left, sep, path = line.strip().partition(" => ")
        if not sep:
            continue
        name, _, flags = left.partition(" (")
        cache.setdefault(name.strip(), []).append((flags.rstrip(")"), path.strip()))
    return cache


def resolve_library(name: str, bits: int = 64,
                    cache: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> str | None:
    """Where this machine's loader finds ``name`` for an ELF file of ``bits`` (32/64), or None.

    Uses the loader cache (``ldconfig -p``), then the default library directories (and their
    multiarch subdirectories). ``LD_LIBRARY_PATH`` is ignored: the runtime stage will not have it.
    """
    entries = (cache if cache is not None else _loader_cache()).get(name, ())
    for flags, path in entries:
        if ("64" in flags) == (bits == 64):
            return path
    for base in _LIB_DIRS:
        candidates = [Path(base) / name]
        try:
            candidates += [Path(base) / d / name for d in sorted(os.listdir(base))
                           if d.endswith("-linux-gnu")]
        except OSError:
            continue
        for candidate in candidates:
            if candidate.exists():
                return os.fspath(candidate)
    return None


def _path_variants(path: str) -> list[str]:
    """A path as dpkg may have recorded it: as is, resolved, and across the /usr merge."""
    out = [path, os.path.realpath(path)]
    for p in list(out):
        if p.startswith("/usr/"):
            out.append(p[len("/usr"):])
        else:
            out.append("/usr" + p)
    return list(dict.fromkeys(out))


def debian_packages(paths: Iterable[str]) -> dict[str, str]:
    """Which Debian package owns each path (``dpkg-query -S``); paths it cannot tell are absent.

    Returns an empty mapping on systems without dpkg. Architecture qualifiers are dropped
    (``libyaml-0-2:amd64`` -> ``libyaml-0-2``); several owners are joined with ``", "``.
    """
    tool = shutil.which("dpkg-query")
    wanted = {p: _path_variants(p) for p in paths}
    if tool is None or not wanted:
        return {}
    queries = sorted({v for variants in wanted.values() for v in variants})
    try:
        out = subprocess.run([tool, "-S", *queries], capture_output=True, text=True,
                             errors="replace", env={**os.environ, "LC_ALL": "C"},
                             timeout=120, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    owners: dict[str, str] = {}
    for line in out.splitlines():
        pkgs, sep, path = line.partition(": ")
        if not sep or pkgs.startswith("diversion by"):
            continue
        names = ", ".join(p.strip().split(":", 1)[0] for p in pkgs.split(","))
        owners.setdefault(path.strip(), names)
    result: dict[str, str] = {}
    for path, variants in wanted.items():
        for v in variants:
            if v in owners:
                result[path] = owners[v]
                break
    return result


@lru_cache(maxsize=1)
def known_packages() -> Mapping[str, str]:
    """soname -> Debian 12 (bookworm) package, for libraries wheels commonly link without
    carrying them (``profiles/sonames.toml``, each entry with its packages.debian.org file
    list). Used when this machine cannot say (``dpkg-query -S`` needs the file installed)."""
    from .profiles import _builtin_toml

    data = _builtin_toml("sonames.toml") or {}
    return {str(e["soname"]): str(e["package"]) for e in data.get("library", [])
            if isinstance(e, dict) and "soname" in e and "package" in e}


def _in_base(name: str, base: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in base)


def missing_libraries(
    env: Environment,
    *,
    base: Iterable[str] = tuple(BASE_IMAGE_LIBRARIES),
    resolve: bool = True,
) -> tuple[MissingLibrary, ...]:
    """Libraries that ELF files in ``env`` need (DT_NEEDED) and that are neither carried by
    the environment (any file name or SONAME under it, ``*.libs/`` included) nor matched by
    ``base`` (soname patterns; default :data:`BASE_IMAGE_LIBRARIES`, python:3.x-slim).

    :param resolve: also look each library up on this machine (``ldconfig -p``) and its Debian
        package (``dpkg-query -S``); False keeps this a pure read of the environment.
    :returns: sorted by library name; each lists the files that need it. Read-only.
    """
    patterns = tuple(base)
    elves, carried = scan_needs(env.root, env.walk)
    needers: dict[str, list[str]] = {}
    bits: dict[str, int] = {}
    for elf in elves:
        for name in elf.needed:
            if name in carried or _in_base(name, patterns):
                continue
            needers.setdefault(name, []).append(elf.path)
            bits.setdefault(name, elf.bits)
    resolved: dict[str, str | None] = {}
    packages: dict[str, str] = {}
    if resolve and needers:
        cache = _loader_cache()
        resolved = {n: resolve_library(n, bits[n], cache) for n in needers}
        packages = debian_packages(p for p in resolved.values() if p)
    known = known_packages() if resolve else {}
    result = []
    for name in sorted(needers):
        package = packages.get(resolved[name] or "") if resolved.get(name) else None
        origin = "dpkg" if package else None
        if package is None and name in known:
            package, origin = known[name], "table"
        result.append(MissingLibrary(name=name, needed_by=tuple(sorted(set(needers[name]))),
                                     resolved=resolved.get(name), package=package, package_from=origin))
    return tuple(result)
