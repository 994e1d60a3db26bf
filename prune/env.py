"""Locate what a user pointed venv-prune at: a venv, a Python prefix, or a site-packages dir.

Everything downstream works with paths that are POSIX and relative to ``Environment.root``;
this module is the one place where a user's path becomes that root.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import EnvironmentNotFound, UsageError

__all__ = ["Environment", "locate"]

_LIB_DIR = re.compile(r"^(?:python|pypy)(\d+)\.(\d+)t?$")


@dataclass(frozen=True)
class Environment:
    """A Python environment on disk.

    ``root`` is absolute and resolved; ``kind`` is ``"venv"``, ``"prefix"`` or
    ``"site-packages"``. ``site_packages`` are POSIX paths relative to ``root`` (``""`` when
    the root itself is the site-packages or ``--target`` directory).
    ``python`` is the interpreter that runs this environment, or None when there is none.
    ``walk`` lists the directories (relative to root) that venv-prune may prune inside;
    for a prefix that is only its site-packages, never the standard library.
    """

    root: Path
    kind: str
    site_packages: tuple[str, ...]
    python: Optional[Path]
    python_version: Optional[tuple[int, int]]
    scripts_dir: Optional[str]
    walk: tuple[str, ...]

    def site_paths(self) -> list[Path]:
        """Absolute site-packages directories."""
        return [self.root / s if s else self.root for s in self.site_packages]

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values for the *target* interpreter.

        The Python version comes from the environment's files (pyvenv.cfg or its
        ``lib/pythonX.Y`` directory), not from the interpreter running venv-prune; the
        platform is this machine's, since venv-prune runs where the environment was built.
        """
        major, minor = self.python_version or sys.version_info[:2]
        return {
            "implementation_name": sys.implementation.name,
            "implementation_version": f"{major}.{minor}.0",
            "os_name": os.name,
            "platform_machine": platform.machine(),
            "platform_python_implementation": platform.python_implementation(),
            "platform_release": platform.release(),
            "platform_system": platform.system(),
            "platform_version": platform.version(),
            "python_full_version": f"{major}.{minor}.0",
            "python_version": f"{major}.{minor}",
            "sys_platform": sys.platform,
        }


def _read_pyvenv_cfg(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def _lib_site_dirs(root: Path) -> list[tuple[str, tuple[int, int]]]:
    """``lib/pythonX.Y/site-packages`` (and dist-packages) under root, without lib64 twins."""
    found: list[tuple[str, tuple[int, int]]] = []
    seen: set[str] = set()
    for libname in ("lib", "lib64"):
        lib = root / libname
        if not lib.is_dir():
            continue
        try:
            entries = sorted(os.listdir(lib))
        except OSError:
            continue
        for entry in entries:
            m = _LIB_DIR.match(entry)
            if not m:
                continue
            for leaf in ("site-packages", "dist-packages"):
                candidate = lib / entry / leaf
                if candidate.is_dir() and not candidate.is_symlink():
                    real = os.path.realpath(candidate)
                    if real in seen:
                        continue
                    seen.add(real)
                    rel = os.path.relpath(real, root).replace(os.sep, "/")
                    if rel.startswith("../"):
                        continue
                    found.append((rel, (int(m.group(1)), int(m.group(2)))))
    return found


def _version_from_cfg(cfg: dict[str, str]) -> Optional[tuple[int, int]]:
    for key in ("version_info", "version"):
        m = re.match(r"(\d+)\.(\d+)", cfg.get(key, ""))
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _find_python(root: Path, version: Optional[tuple[int, int]]) -> Optional[Path]:
    names = ["python", "python3"]
    if version:
        names.insert(0, f"python{version[0]}.{version[1]}")
    for name in names:
        exe = root / "bin" / name
        # os.access and isfile answer False where the link's target cannot be reached (EACCES
        # for another user); Path.exists raised PermissionError there.
        if os.access(exe, os.X_OK) and os.path.isfile(exe):
            return exe
    return None


def _looks_like_site_packages(path: Path) -> bool:
    if path.name in ("site-packages", "dist-packages"):
        return True
    try:
        with os.scandir(path) as it:
            return any(e.name.endswith((".dist-info", ".egg-info")) for e in it)
    except OSError:
        return False


def _checked_root(given: Path) -> Path:
    """``given`` resolved, once it is known to be a directory other than the filesystem root.

    :raises EnvironmentNotFound: missing, or a file.
    :raises UsageError: the filesystem root.
    """
    if not os.path.lexists(given):
        raise EnvironmentNotFound(
            f"{given}: no such directory; pass the root of a virtual environment, "
            "a Python prefix or a site-packages directory"
        )
    if not given.is_dir():
        raise EnvironmentNotFound(
            f"{given}: is a file, not a directory; pass the environment's root directory "
            "(the one holding pyvenv.cfg)"
        )
    root = given.resolve()
    if root == Path(root.anchor):
        raise UsageError(
            f"{given}: refusing to prune the filesystem root; pass the environment's root "
            "directory, e.g. /opt/venv"
        )
    return root


def locate(path: str | os.PathLike[str], *, python: str | os.PathLike[str] | None = None) -> Environment:
    """Work out what kind of Python environment ``path`` is.

    :param path: a venv root, a Python prefix such as ``/usr/local``, or a site-packages /
        ``pip install --target`` directory.
    :param python: an interpreter to use for verification where the environment has none.
    :raises EnvironmentNotFound: the path is missing, a file, or not a Python environment.
    :raises UsageError: the path is the filesystem root.
    """
    given = Path(path)
    root = _checked_root(given)
    explicit_python = Path(python) if python is not None else None
    if explicit_python is not None and not (
        explicit_python.exists() and os.access(explicit_python, os.X_OK)
    ):
        raise UsageError(f"--python {explicit_python}: not an executable; pass a Python interpreter")

    cfg_path = root / "pyvenv.cfg"
    sites = _lib_site_dirs(root)
    if cfg_path.is_file():
        cfg = _read_pyvenv_cfg(cfg_path)
        version = _version_from_cfg(cfg) or (sites[0][1] if sites else None)
        if not sites:
            raise EnvironmentNotFound(
                f"{given}: has pyvenv.cfg but no lib/pythonX.Y/site-packages; "
                "is the virtual environment complete?"
            )
        return Environment(
            root=root,
            kind="venv",
            site_packages=tuple(s for s, _ in sites),
            python=explicit_python or _find_python(root, version),
            python_version=version,
            scripts_dir="bin",
            walk=("",),
        )
    if sites:
        version = sites[0][1]
        return Environment(
            root=root,
            kind="prefix",
            site_packages=tuple(s for s, _ in sites),
            python=explicit_python or _find_python(root, version),
            python_version=version,
            scripts_dir="bin",
            walk=tuple(s for s, _ in sites),
        )
    if _looks_like_site_packages(root):
        m = _LIB_DIR.match(root.parent.name)
        version = (int(m.group(1)), int(m.group(2))) if m else None
        return Environment(
            root=root,
            kind="site-packages",
            site_packages=("",),
            python=explicit_python,
            python_version=version,
            scripts_dir="bin" if (root / "bin").is_dir() else None,
            walk=("",),
        )
    raise EnvironmentNotFound(
        f"{given}: not a Python environment (no pyvenv.cfg, no lib/pythonX.Y/site-packages, "
        "no *.dist-info); pass a venv root, a prefix or a site-packages directory"
    )
