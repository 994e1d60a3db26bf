"""``venv-prune libs PATH``: system libraries the environment's extensions need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..env import locate

if TYPE_CHECKING:
    from ..libs import MissingLibrary

__all__ = ["libs_command", "render_json", "render_text"]


def render_text(missing: tuple[MissingLibrary, ...]) -> str:
    """The human report: one block per library, then the apt-get line for the runtime stage."""
    if not missing:
        return ("No missing libraries: the environment carries every shared library its "
                "extensions link, beyond what python:3.x-slim provides.\n")
    lines = [(f"{len(missing)} shared librar{'y' if len(missing) == 1 else 'ies'} needed but "
             "not carried by the environment (nor in python:3.x-slim):")]
    width = max(len(m.name) for m in missing)
    for m in missing:
        if m.package_from == "table":
            where = f"{m.package}  (Debian 12 bookworm; not installed on this machine)"
        elif m.resolved:
            where = f"{m.package or 'package unknown'}  ({m.resolved})"
        else:
            where = "package unknown; not found on this machine either"
        lines.append(f"  {m.name:<{width}}  {where}")
        for path in m.needed_by:
            lines.append(f"  {'':<{width}}    needed by {path}")
    packages = sorted({p.strip() for m in missing if m.package for p in m.package.split(",")})
    if packages:
        lines.append("In the runtime stage: apt-get install -y --no-install-recommends "
                     + " ".join(packages))
    return "\n".join(lines) + "\n"


def render_json(missing: tuple[MissingLibrary, ...]) -> str:
    """The machine report: stable keys, sorted lists."""
    doc = {
        "missing": [
            {"name": m.name, "needed_by": list(m.needed_by), "resolved": m.resolved,
             "package": m.package, "package_from": m.package_from}
            for m in missing
        ],
        "packages": sorted({p.strip() for m in missing if m.package
                            for p in m.package.split(",")}),
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


@click.command(
    "libs",
    epilog="""\b
Examples:
  venv-prune libs /opt/venv
  venv-prune libs /opt/venv --format json | jq -r '.packages[]'
""",
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
def libs_command(path: Path, fmt: str) -> None:
    """List shared libraries that extensions in PATH need but the environment does not carry.

    Reads every ELF file's DT_NEEDED entries and leaves out what the environment ships
    (including auditwheel's *.libs directories) and what python:3.x-slim provides (glibc,
    libstdc++, and CPython's own dependencies). On Debian-like systems each library is
    traced to the package that provides it, so the runtime stage installs exactly those.
    """
    from ..libs import missing_libraries  # pyelftools, imported only for this command

    missing = missing_libraries(locate(path))
    click.echo(render_json(missing) if fmt == "json" else render_text(missing), nl=False)
