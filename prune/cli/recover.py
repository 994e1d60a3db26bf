"""``venv-prune recover PATH``: finish or undo a run that was interrupted."""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["recover_command"]


@click.command("recover")
@click.argument("path", type=click.Path(path_type=str))
def recover_command(path: str) -> None:
    """Finish or undo a run that was interrupted (crash, SIGKILL, power loss).

    \b
    Examples:
      venv-prune recover /opt/venv
    """
    from ..apply import recover
    from ..bytecode import finish_pending
    from ..env import locate
    from ..output import clean_stale as clean_partial_outputs

    # An --output run killed before DIR was complete left only its partial copy beside DIR
    # (or inside an empty mount point): removing it is all there is to recover.
    out = Path(os.path.abspath(path))
    partials = clean_partial_outputs(out) + (clean_partial_outputs(out, inside=True) if out.is_dir() else [])
    for p in partials:
        click.echo(f"venv-prune: removed {p}, the partial --output copy of an interrupted run", err=True)
    if partials and not (out / "pyvenv.cfg").exists() and not any(out.iterdir() if out.is_dir() else ()):
        click.echo(f"venv-prune: {path}: nothing else to recover (the copy was never completed)", err=True)
        return
    env = locate(path)
    settled = finish_pending(env)
    if settled:
        click.echo(f"venv-prune: {settled}", err=True)
    res = recover(env)
    click.echo(f"venv-prune: {res.message}", err=True)
