#!/usr/bin/env python3
"""Build ``venv-prune.pyz``: one file that any Python 3.9+ runs with nothing installed.

    python tools/build_pyz.py -o dist/venv-prune.pyz
    python3 dist/venv-prune.pyz /opt/venv --profile aggressive

Steps: build the project's wheel (``pip wheel``, from a scratch copy of the checkout so no
``build/`` or egg-info lands in it), download its runtime dependencies as pure-Python wheels for
Python 3.9 (``--python-version 3.9 --implementation py --only-binary :all:``, so every Python
3.9+ can run them; tomli is added explicitly because pip evaluates the ``python_version <
"3.11"`` marker against the interpreter running pip), install both with ``pip install
--target`` and zip the result with a ``__main__.py`` that calls ``prune._launch:main``. Because the
zipapp holds exactly what the wheel installs (``prune.profile_data`` data included, as pyproject
maps it), the pyz and ``pip install venv-prune`` cannot drift apart. pip ships ``pip.pyz`` the
same way.

Reproducible: entries sorted, every timestamp 1980-01-01, fixed permissions, no bytecode, no
``bin/`` scripts, no RECORD/INSTALLER files; the same sources and dependency versions give the
same bytes. Pin the dependency versions with ``--constraint FILE`` for release builds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINT = "prune._launch:main"
TARGET_PYTHON = "3.9"
_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", "bin"}
_SKIP_SUFFIXES = (".pyc", ".pyo")

MAIN = f'''\
# venv-prune as a zipapp: runs on any Python {TARGET_PYTHON}+ with nothing installed.
import sys

if sys.version_info < (3, 9):
    sys.exit("venv-prune needs Python 3.9 or newer (this is %d.%d)" % sys.version_info[:2])

from {ENTRY_POINT.split(":")[0]} import {ENTRY_POINT.split(":")[1]} as _main

sys.exit(_main())
'''


_EXTRA_REQUIREMENTS = ("tomli",)  # needed below 3.11; pip drops it by marker on 3.11+
_PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")
_TARGET = ("--python-version", TARGET_PYTHON, "--implementation", "py",
           "--only-binary", ":all:")


def _pip(*args: str) -> None:
    subprocess.run([*_PIP, *args], check=True)


def copy_source(source: Path, dest: Path) -> Path:
    """Copy what a wheel build reads: top-level files, and top-level directories that are
    Python packages (hold ``__init__.py``) other than tests. Never the 2 GB benchmarks, the
    venv or .git."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith(".egg-info"):
            continue
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
        elif entry.is_dir() and (entry / "__init__.py").is_file() and entry.name != "tests":
            shutil.copytree(entry, dest / entry.name, ignore=ignore)
    if not any(dest.glob("README*")):
        # pyproject names README.md; a checkout without one still builds.
        (dest / "README.md").write_text("venv-prune\n", encoding="utf-8")
    return dest


def build_wheel(source: Path, wheels: Path) -> Path:
    """``pip wheel`` the project (no dependencies) into ``wheels``; returns the wheel."""
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", os.fspath(wheels), os.fspath(source))
    found = sorted(wheels.glob("*.whl"))
    if len(found) != 1:
        raise SystemExit(f"build_pyz: expected one wheel in {wheels}, found {len(found)}")
    return found[0]


def install_tree(wheel: Path, wheels: Path, target: Path,
                 constraint: Path | None = None) -> None:
    """Download pure-Python 3.9 wheels of the dependencies, then ``pip install --target``
    the project and them from that directory only (so nothing else can slip in)."""
    pins = ["--constraint", os.fspath(constraint)] if constraint is not None else []
    _pip("download", "--quiet", "--dest", os.fspath(wheels), *_TARGET, *pins,
         os.fspath(wheel), *_EXTRA_REQUIREMENTS)
    _pip("install", "--quiet", "--no-compile", "--no-index", "--find-links", os.fspath(wheels),
         "--target", os.fspath(target), *_TARGET, *pins, os.fspath(wheel),
         *_EXTRA_REQUIREMENTS)


def _files(top: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(_SKIP_SUFFIXES):
                yield Path(dirpath) / name


def collect(tree: Path) -> dict[str, bytes]:
    """Archive name -> content for everything the zipapp holds (except ``__main__.py``)."""
    entries: dict[str, bytes] = {}
    for path in _files(tree):
        rel = path.relative_to(tree).as_posix()
        if rel.endswith((".dist-info/RECORD", ".dist-info/INSTALLER", ".dist-info/REQUESTED",
                         ".dist-info/direct_url.json")):
            continue  # they describe the pip install --target run, not the zipapp
        entries[rel] = path.read_bytes()
    return entries


def write_zipapp(output: Path, entries: dict[str, bytes],
                 interpreter: str = "/usr/bin/env python3") -> None:
    """Write a deterministic zipapp: shebang, then a zip with sorted, fixed-date members."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with open(tmp, "wb") as raw:
        raw.write(f"#!{interpreter}\n".encode())
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for arcname in sorted({**entries, "__main__.py": b""}):
                data = MAIN.encode() if arcname == "__main__.py" else entries[arcname]
                info = zipfile.ZipInfo(arcname, date_time=_DATE)
                info.external_attr = 0o644 << 16
                info.create_system = 3  # Unix, whatever builds it
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data, compresslevel=9)
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)


def build(output: Path, *, source: Path = ROOT, constraint: Path | None = None) -> Path:
    """Build the zipapp at ``output`` from the checkout at ``source``; returns ``output``."""
    with tempfile.TemporaryDirectory(prefix="venv-prune-pyz-") as tmp:
        scratch = Path(tmp)
        wheels = scratch / "wheels"
        wheel = build_wheel(copy_source(source, scratch / "src"), wheels)
        install_tree(wheel, wheels, scratch / "tree", constraint)
        write_zipapp(output, collect(scratch / "tree"))
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build venv-prune.pyz, a single-file zipapp runnable by any Python 3.9+.",
        epilog="example: python tools/build_pyz.py -o dist/venv-prune.pyz",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("dist/venv-prune.pyz"),
                        help="zipapp to write (default: dist/venv-prune.pyz)")
    parser.add_argument("--constraint", type=Path, default=None,
                        help="pip constraints file pinning the dependency versions")
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="project checkout to build from (default: this one)")
    args = parser.parse_args(argv)
    try:
        out = build(args.output, source=args.source, constraint=args.constraint)
    except subprocess.CalledProcessError as exc:
        print(f"build_pyz: pip failed (exit {exc.returncode}); see its output above",
              file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
