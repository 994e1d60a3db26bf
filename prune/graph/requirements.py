"""Roots from files: the distributions a requirements file or a pyproject.toml names.

The one part of :mod:`prune.graph` that reads files; the graph and the decisions are pure.
Requirements and markers are parsed by :mod:`packaging`; the requirements-file reader is
hand-written, since no library we depend on reads pip's file format.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ..errors import UsageError
from .build import marker_holds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["project_name", "roots_from_requirements"]

_COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION_TAIL = re.compile(r"\s--?[A-Za-z]")
_EGG = re.compile(r"#.*?\begg=([A-Za-z0-9][A-Za-z0-9._-]*)")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc


def project_name(path: Path) -> str | None:
    """The canonical ``[project].name`` of a pyproject.toml, or None (requirements files,
    dynamic names). The CLI adds it to the roots when that project is itself installed.
    """
    if path.suffix != ".toml":
        return None
    name = _load_toml(path).get("project", {}).get("name")
    return canonicalize_name(name) if isinstance(name, str) else None


def _requirement_name(
    text: str, where: str, marker_env: Mapping[str, str] | None
) -> str | None:
    """The canonical name a requirement line installs; None when its marker excludes it."""
    egg = _EGG.search(text)
    if egg:
        return canonicalize_name(egg.group(1))
    try:
        req = Requirement(text)
    except InvalidRequirement:
        filename = text.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            if filename.endswith(".whl"):
                return canonicalize_name(parse_wheel_filename(filename)[0])
            return canonicalize_name(parse_sdist_filename(filename)[0])
        except (InvalidWheelFilename, InvalidSdistFilename):
            raise UsageError(
                f"{where}: cannot tell which distribution {text!r} installs; "
                "write it as 'NAME @ URL' or add '#egg=NAME'"
            ) from None
    if marker_env is not None and not marker_holds(req.marker, marker_env, ""):
        return None
    return canonicalize_name(req.name)


def _from_requirements_txt(path: Path, marker_env: Mapping[str, str] | None,
                           seen: set[Path]) -> list[str]:
    """The names a requirements file installs, in file order, following ``-r`` includes
    (each file once: ``seen`` holds the resolved paths read so far)."""
    real = path.resolve()
    if real in seen:
        return []
    seen.add(real)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from exc
    # pip's format: backslash joins lines, '#' after whitespace starts a comment.
    logical = re.sub(r"\\\r?\n", " ", text).splitlines()
    out: list[str] = []
    for number, raw in enumerate(logical, 1):
        line = _COMMENT.sub("", raw).strip()
        where = f"{path}:{number}"
        if not line:
            continue
        include = re.match(r"(?:-r|--requirement)(?:\s*=?\s*)(\S+)$", line)
        if include:
            out += _from_requirements_txt(path.parent / include.group(1), marker_env, seen)
            continue
        editable = re.match(r"(?:-e|--editable)(?:\s*=?\s*)(\S+)$", line)
        if editable:
            target = editable.group(1)
            egg = _EGG.search(target)
            if egg:
                out.append(canonicalize_name(egg.group(1)))
            else:
                local = path.parent / target
                # An editable install is always kept; its name only matters for the report.
                pyproject = local / "pyproject.toml"
                name = project_name(pyproject) if pyproject.is_file() else None
                if name:
                    out.append(name)
            continue
        if line.startswith("-"):
            continue  # -c constraints, -i/--index-url, -f, --hash on its own line, ...
        cut = _OPTION_TAIL.search(line)
        if cut:
            line = line[: cut.start()].strip()
        name = _requirement_name(line, where, marker_env)
        if name:
            out.append(name)
    return out


def roots_from_requirements(
    path: Path, extras: Sequence[str] = (), *, marker_env: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Root distribution names from a requirements file or a pyproject.toml.

    A requirements file: one requirement per line; comments, options and constraints files
    are skipped, ``-r FILE`` includes are followed (relative to the including file), ``-e``
    lines and URLs give their ``#egg=NAME`` (or a wheel/sdist file name, or ``NAME @ URL``).
    A pyproject.toml: ``[project].dependencies`` plus the ``[project.optional-dependencies]``
    groups named in ``extras``.

    :param marker_env: when given, requirements whose marker is false on the target are left
        out (``pywin32; sys_platform == "win32"`` is not installed on Linux).
    :returns: canonical names, in file order, without duplicates.
    :raises UsageError: unreadable file, invalid TOML, an unknown extra, ``extras`` given for
        a requirements file, a line whose distribution cannot be told, or a requirements file
        that names no distribution.
    """
    if path.suffix == ".toml":
        names = _from_pyproject(path, extras, marker_env)
    else:
        if extras:
            raise UsageError(f"--extra needs a pyproject.toml, not {path.name}")
        names = _from_requirements_txt(path, marker_env, set())
        if not names:
            # Silently falling back to what was installed by name would ignore the user's word.
            raise UsageError(
                f"{path}: names no distribution (empty, only comments or options, or every "
                "marker false on the target Python); list what the application needs, one "
                "per line, or leave out --requirements")
    return tuple(dict.fromkeys(names))


def _from_pyproject(path: Path, extras: Sequence[str],
                    marker_env: Mapping[str, str] | None) -> list[str]:
    """``[project].dependencies`` and the optional-dependencies groups ``extras`` names,
    without the project itself."""
    data = _load_toml(path)
    project = data.get("project")
    if not isinstance(project, dict):
        raise UsageError(f"{path}: has no [project] table; pass a requirements file or a "
                         "PEP 621 pyproject.toml")
    groups = project.get("optional-dependencies", {}) or {}
    by_canonical = {canonicalize_name(k): k for k in groups}
    base = project.get("dependencies", []) or []
    lines = [(f"{path} [project.dependencies]", r) for r in base]
    for extra in extras:
        key = by_canonical.get(canonicalize_name(extra))
        if key is None:
            available = ", ".join(sorted(groups)) or "none"
            raise UsageError(f"{path}: no optional-dependencies group {extra!r} "
                             f"(available: {available})")
        lines += [(f"{path} [project.optional-dependencies.{key}]", r) for r in groups[key]]
    own = project_name(path)
    names: list[str] = []
    for where, text in lines:
        name = _requirement_name(str(text), where, marker_env)
        if name and name != own:
            names.append(name)
    return names
