"""Build small synthetic environments on disk: a venv-shaped tree with real dist-info.

Synthetic trees are for properties and edge cases; real venvs (conftest) are the ground truth.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path
from typing import Optional

SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_venv_tree(root: Path, *, python: bool = True) -> Path:
    """A minimal venv layout; bin/python links to the running interpreter when asked."""
    (root / SITE).mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    v = sys.version_info
    (root / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(sys.executable)}\ninclude-system-site-packages = false\n"
        f"version = {v[0]}.{v[1]}.{v[2]}\n"
    )
    if python and not (root / "bin" / "python").exists():
        os.symlink(os.path.realpath(sys.executable), root / "bin" / "python")
    return root


def add_dist(root: Path, name: str, files: dict[str, str | bytes], *, version: str = "1.0",
             requires: tuple[str, ...] = (), requested: bool = True, scripts: tuple[str, ...] = (),
             top_level: Optional[tuple[str, ...]] = None, site: str = SITE) -> Path:
    """Install a fake distribution: its files (relative to site-packages) plus a dist-info
    with METADATA, RECORD (hashes and sizes), top_level.txt and entry points."""
    base = root / site if site else root
    norm = name.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    records: list[str] = []
    for rel, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        records.append(f"{rel},{_hash(data)},{len(data)}")
    for s in scripts:
        sp = root / "bin" / s
        sp.parent.mkdir(parents=True, exist_ok=True)
        sp.write_text(f"#!{root}/bin/python\nimport sys\n")
        sp.chmod(0o755)
        rel = os.path.relpath(sp, base).replace(os.sep, "/")
        records.append(f"{rel},,")
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    md = base / info
    md.mkdir(parents=True, exist_ok=True)
    (md / "METADATA").write_text("\n".join(meta) + "\n")
    tops = top_level if top_level is not None else tuple(sorted({
        f.split("/")[0].removesuffix(".py") for f in files if not f.startswith(info)
    }))
    (md / "top_level.txt").write_text("\n".join(tops) + "\n")
    (md / "INSTALLER").write_text("pip\n")
    if requested:
        (md / "REQUESTED").write_text("")
    if scripts:
        (md / "entry_points.txt").write_text(
            "[console_scripts]\n" + "".join(f"{s} = {tops[0]}:main\n" for s in scripts)
        )
    for extra in ("METADATA", "top_level.txt", "INSTALLER") + (("REQUESTED",) if requested else ()) + (
            ("entry_points.txt",) if scripts else ()):
        data = (md / extra).read_bytes()
        records.append(f"{info}/{extra},{_hash(data)},{len(data)}")
    records.append(f"{info}/RECORD,,")
    (md / "RECORD").write_text("\n".join(records) + "\n")
    return md
