"""What every command shares: the terminal's lines (errors, warnings, progress) and options
read from the environment.

Progress and warnings go to stderr, reports to stdout; ``NO_COLOR`` is honoured (no-color.org).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Optional

import click

from ..model import Progress

__all__ = ["EXIT_CODES", "colour", "warn", "error", "progress_printer", "from_environment", "os_error_line"]

#: The exit codes, as every command's --help ends.
EXIT_CODES = """\b
Exit codes:
  0  done
  1  verification failed and every change was rolled back, or --max-size exceeded
  2  bad input (nothing changed)
  3  an interrupted run awaits 'venv-prune recover PATH'
  4  the operating system refused a step (every change rolled back; the line names the path)
  75 another venv-prune run holds the environment's lock (nothing changed)
  130, 143  Ctrl-C or SIGTERM: rolled back before the commit; after it, the prune is complete
"""


def colour() -> Optional[bool]:
    """False under ``NO_COLOR`` (no-color.org); else None: click colours a terminal only."""
    return False if os.environ.get("NO_COLOR") else None


def warn(message: str) -> None:
    """``venv-prune: warning: MESSAGE`` on stderr."""
    click.echo(click.style("venv-prune: warning:", fg="yellow") + f" {message}", err=True, color=colour())


def error(message: str) -> None:
    """``venv-prune: error: MESSAGE`` on stderr: the one line a failed command prints."""
    click.echo(click.style("venv-prune: error:", fg="red", bold=True) + f" {message}", err=True, color=colour())


def os_error_line(exc: OSError) -> str:
    """``PATH: No space left on device (ENOSPC)`` from any OSError."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}: "
    return f"{where}{what}{f' ({name})' if name else ''}; the operating system refused this step"


#: A step that counts ("verifying 37/120", "stripping 3/40"): on a terminal one line
#: rewritten in place, in a log (a Docker build) a line per tenth of the way.
_COUNTER = re.compile(r"^(.*\D)(\d+)/(\d+)$")


def progress_printer(quiet: bool) -> Optional[Progress]:
    """The ``progress`` callback the pipeline reports to: ``venv-prune: MESSAGE`` lines on
    stderr (None under ``--quiet``)."""
    if quiet:
        return None
    tty = sys.stderr.isatty()
    shown: dict[str, int] = {}
    open_line = [False]

    def emit(message: str) -> None:
        m = _COUNTER.match(message)
        if m is None:
            if open_line[0]:
                click.echo("", err=True)
                open_line[0] = False
            click.echo(f"venv-prune: {message}", err=True)
            return
        label, done, total = m.group(1), int(m.group(2)), max(1, int(m.group(3)))
        if tty:
            click.echo(f"\rvenv-prune: {message}\x1b[K", err=True, nl=done >= total)
            open_line[0] = done < total
            return
        tenth = 10 * done // total
        if tenth > shown.get(label, -1) or done >= total:
            shown[label] = tenth
            click.echo(f"venv-prune: {message}", err=True)

    return emit


def from_environment(cmd: click.Command, prefix: str) -> click.Command:
    """Let every option of ``cmd`` be set from ``PREFIX<FLAG>`` (``--keep-from`` ->
    ``VENV_PRUNE_KEEP_FROM``), as pip reads ``PIP_*`` and uv ``UV_*``: click's own envvar
    lookup, named after the flag rather than the parameter, and shown by --help."""
    for param in cmd.params:
        flags = [o for o in param.opts if o.startswith("--")]
        if isinstance(param, click.Option) and flags and param.name != "help":
            param.envvar = prefix + flags[0][2:].upper().replace("-", "_")
            param.show_envvar = True
            if param.name == "checks":  # a command has spaces: one per line
                param.type = _LINES
    return cmd


class _Lines(click.types.StringParamType):
    envvar_list_splitter = "\n"


_LINES = _Lines()
