"""An environment held in memory, for planner tests that run in milliseconds.

:class:`MemoryEnv` builds the :class:`~prune.model.Inventory` that ``scan`` would build from
the same files (the layout and dist-info of :mod:`synth`), and a
:class:`~prune.plan.MemorySources` over their bytes: the planner then reads nothing from
disk. Use a real tree (synth, conftest's venvs) for what scanning or applying does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from synth import SITE

from prune.env import Environment
from prune.model import Distribution, EntryPoint, FileEntry, Inventory, Plan
from prune.plan import MemorySources, PlanOptions, build_plan
from prune.profiles import load_profile

__all__ = ["MemoryEnv", "SITE"]


class MemoryEnv:
    """A venv-shaped environment in memory (``pyvenv.cfg``, ``bin/python``, one site-packages
    directory ``SITE``). ``files`` maps each path relative to the root to its bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"pyvenv.cfg": b"include-system-site-packages = false\n"}
        self.links = {"bin/python"}
        self.executable: set[str] = set()
        self.owner: dict[str, str] = {}
        self.dists: list[Distribution] = []

    def add_dist(self, name: str, files: dict[str, str | bytes], *, version: str = "1.0",
                 requires: tuple[str, ...] = (), requested: bool = True, scripts: tuple[str, ...] = (),
                 top_level: Optional[tuple[str, ...]] = None) -> MemoryEnv:
        """A distribution as :func:`synth.add_dist` installs it: its files (relative to
        site-packages), a dist-info, and a console script per name in ``scripts``."""
        info = f"{name.replace('-', '_')}-{version}.dist-info"
        tops = top_level if top_level is not None else tuple(sorted({
            f.split("/")[0].removesuffix(".py") for f in files}))
        own = {f"{SITE}/{rel}": data.encode() if isinstance(data, str) else data for rel, data in files.items()}
        meta = {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
                "top_level.txt": "\n".join(tops) + "\n", "INSTALLER": "pip\n", "RECORD": ""}
        if requested:
            meta["REQUESTED"] = ""
        entry_points = tuple(EntryPoint("console_scripts", s, f"{tops[0]}:main") for s in scripts)
        if scripts:
            meta["entry_points.txt"] = "[console_scripts]\n" + "".join(f"{s} = {tops[0]}:main\n" for s in scripts)
        own.update({f"{SITE}/{info}/{n}": text.encode() for n, text in meta.items()})
        for s in scripts:
            own[f"bin/{s}"] = b"#!/usr/bin/python\nimport sys\n"
            self.executable.add(f"bin/{s}")
        self.files.update(own)
        self.owner.update(dict.fromkeys(own, name))
        self.dists.append(Distribution(
            name=name, display_name=name, version=version, metadata_dir=f"{SITE}/{info}", site=SITE,
            files=tuple(sorted(own)), top_level=tops, requires=requires, extras=(),
            entry_points=entry_points, requested=requested, editable=False, installer="pip"))
        return self

    def inventory(self) -> Inventory:
        minor = int(SITE.split("/")[1].split(".")[1])
        env = Environment(root=Path("/memory/venv"), kind="venv", site_packages=(SITE,), python=None,
                          python_version=(sys.version_info[0], minor), scripts_dir="bin", walk=("",))
        paths = sorted(set(self.files) | self.links)
        files = tuple(FileEntry(p, 0 if p in self.links else len(self.files[p]), p in self.links,
                                self.owner.get(p), p in self.executable) for p in paths)
        dirs = sorted({p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)})
        return Inventory(env=env, distributions=tuple(sorted(self.dists, key=lambda d: d.name)),
                         files=files, dirs=tuple(dirs))

    def sources(self) -> MemorySources:
        return MemorySources(self.files, (SITE,))

    def plan(self, profile: str = "standard", **options: object) -> Plan:
        """The plan, made entirely in memory."""
        return build_plan(self.inventory(), load_profile(profile), PlanOptions(**options),  # type: ignore[arg-type]
                          sources=self.sources())
