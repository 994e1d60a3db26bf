"""``venv-prune pack PATH -o FILE``: a reproducible archive of an environment (or any tree)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..pack import pack

__all__ = ["pack_command"]


@click.command(
    "pack",
    epilog="""\b
Examples:
  venv-prune pack /opt/venv -o venv.tar.gz
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) venv-prune pack /opt/venv -o venv.tar
  venv-prune pack /opt/venv -o venv.tar.gz --prefix opt/venv   # then: ADD venv.tar.gz /
""",
)
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Archive to write: FILE.tar or FILE.tar.gz (.tgz).")
@click.option("--epoch", type=int, default=None,
              help="Clamp mtimes to this Unix time (default: $SOURCE_DATE_EPOCH, else 0).")
@click.option("--prefix", default="", metavar="DIR",
              help="Store entries under DIR inside the archive (e.g. opt/venv).")
def pack_command(path: Path, output: Path | None, epoch: int | None, prefix: str) -> None:
    """Write a reproducible .tar or .tar.gz of the environment at PATH.

    Entries are sorted, owned by 0:0 with no user names, modes normalised (exec bit kept),
    symlinks stored as links, mtimes clamped to SOURCE_DATE_EPOCH (or 0), and the gzip header
    carries no name or time: packing the same tree twice gives identical bytes.
    """
    if output is None:
        raise UsageError("pack: no output file; pass -o FILE.tar.gz (or FILE.tar)")
    result = pack(path, output, epoch=epoch, prefix=prefix)
    click.echo(
        f"wrote {result.output}: {result.entries} entries, {result.bytes} bytes of files, "
        f"{result.archive_bytes} bytes archived, sha256 {result.sha256}"
    )
    if result.stale_bytecode:
        click.echo(
            f"warning: {len(result.stale_bytecode)} timestamp-based .pyc files will look stale "
            "with the archive's mtimes and be recompiled at import; prune with "
            "--bytecode compile (unchecked-hash) or --bytecode drop before packing",
            err=True,
        )
