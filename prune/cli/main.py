"""The command line: ``venv-prune PATH [options]`` plus subcommands.

The CLI is the only layer that prints or exits, and :func:`main` is where every failure
becomes its exit code: every :class:`~prune.errors.PruneError` and every click usage error
becomes one line on stderr and its exit code: 0 done; 1 verification failed and rolled back,
or ``--max-size`` exceeded; 2 bad input (nothing changed); 3 an interrupted run awaits
``venv-prune recover PATH``; 4 the operating system refused a step (any other OSError is
caught here too: one line with the path and the errno, never a traceback); 75 another run
holds the lock; 128+N a signal (before the commit everything was rolled back, after it the
prune is complete).

One module per command: :mod:`prune.cli.prune` (the default command), ``profiles``,
``recover``, ``trace``, ``libs``, ``pack`` here, ``graph`` in :mod:`prune.cli.graph`. Every
command but ``prune`` is imported only when named (or when --help lists them): pruning never
loads the tracer, the packer or the ELF reader.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Optional

import click
from click.shell_completion import CompletionItem

from .. import __version__
from .._signals import SignalGate, signal_name, signal_number
from .._start import COMPLETE_VAR, STARTED, SUBCOMMANDS, Launch
from ..errors import PruneError
from ._ui import EXIT_CODES, error, from_environment, os_error_line
from .prune import prune_command

__all__ = ["main", "cli"]


class _Main(click.Group):
    """A group whose default command takes a PATH: ``venv-prune /opt/venv --profile X``.

    A subcommand's name is always that subcommand (``venv-prune graph /opt/venv`` graphs
    /opt/venv even where ``./graph`` exists, as ``git log`` never means a file); anything
    else is handed to the hidden ``prune`` command. A directory called like a subcommand is
    pruned as ``./graph``.
    """

    #: The subcommands imported only when named: (module, command), under ``prune.``.
    _LAZY = {"trace": ("cli.trace", "trace_command"), "graph": ("cli.graph", "graph_command"),
             "pack": ("cli.pack", "pack_command"), "libs": ("cli.libs", "libs_command"),
             "profiles": ("cli.profiles", "profiles_command"), "recover": ("cli.recover", "recover_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in self._LAZY:
            import importlib

            module, attr = self._LAZY[cmd_name]
            cmd = getattr(importlib.import_module(f"prune.{module}"), attr)
            self.add_command(from_environment(cmd, f"VENV_PRUNE_{cmd_name.upper()}_"), cmd_name)
        return self.commands.get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-"):
            if args[0] not in SUBCOMMANDS:
                args = ["prune", *args]
        elif args and args[0] not in ("--help", "-h", "--version"):
            args = ["prune", *args]
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The first word is a subcommand or the PATH of the default prune command."""
        items = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-") or any(i.value in self._LAZY or i.value in self.commands for i in items):
            return items
        return [CompletionItem(incomplete, type="dir")]

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("venv-prune", "PATH [OPTIONS]  |  venv-prune COMMAND [ARGS]...")


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, "--version", prog_name="venv-prune")
def cli() -> None:
    """Make a Python environment small without breaking it.

    \b
    venv-prune PATH [OPTIONS]   prune the environment at PATH (see 'venv-prune prune --help')
    \b
    Examples:
      venv-prune /opt/venv --profile aggressive
      venv-prune /opt/venv --profile aggressive --dry-run --format json
      venv-prune profiles standard
      venv-prune recover /opt/venv
    """


cli.add_command(prune_command)


def main(argv: Optional[Sequence[str]] = None, *, launch: Optional[Launch] = None) -> int:
    """Run one command line and return its exit code; never raises for a failed command.

    :param argv: the arguments after the program name (default: ``sys.argv[1:]``).
    :param launch: what the process boundary (:mod:`prune._launch`) hands over: when the
        process started and the walk it began. Called in-process, the clock starts now
        (at the process's start when ``argv`` is None) and nothing was walked yet.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if launch is None:
        launch = Launch(started=STARTED if argv is None else time.perf_counter())
    if not args and COMPLETE_VAR not in os.environ:  # click's completion runs with no arguments
        click.echo("venv-prune: error: missing PATH; e.g. 'venv-prune /opt/venv --profile aggressive' "
                   "(see 'venv-prune --help')", err=True)
        return 2
    try:
        # SignalGate: SIGTERM (a cancelled build) raises KeyboardInterrupt as Ctrl-C does, so
        # no moment of any command dies without a line; the prune's phases say more (pipeline).
        with SignalGate():
            rv = cli.main(args=args, prog_name="venv-prune", standalone_mode=False, obj=launch)
    except (PruneError, click.exceptions.UsageError, OSError, click.exceptions.Abort,
            click.exceptions.Exit, SystemExit, KeyboardInterrupt) as exc:
        return _exit_code(exc, args)
    # standalone_mode=False hands back ctx.exit(n) codes as the return value.
    return rv if isinstance(rv, int) else 0


def _exit_code(exc: BaseException, args: Sequence[str]) -> int:
    """The exit code of a command that ended in ``exc``, after its one line on stderr."""
    if isinstance(exc, PruneError):
        error(str(exc))
        return exc.exit_code
    if isinstance(exc, click.exceptions.UsageError):
        name = exc.ctx.info_name if exc.ctx else None
        sub = f" {name}" if name and name not in ("venv-prune", "prune") else ""
        hint = f" (see 'venv-prune{sub} --help')"
        if args[0] in SUBCOMMANDS and os.path.isdir(args[0]):
            hint = f"; to prune the directory {args[0]!r}, write ./{args[0]}" + hint
        error(f"{exc.format_message()}{hint}")
        return 2
    if isinstance(exc, OSError):
        # Last resort (issue 16): the operating system refused something no specific handler
        # expected. One line naming the path and the error, never a traceback.
        error(os_error_line(exc))
        return 4
    if isinstance(exc, click.exceptions.Abort):
        click.echo("venv-prune: interrupted", err=True)
        return 130
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    signum = signal_number(exc)  # KeyboardInterrupt
    click.echo(f"venv-prune: interrupted ({signal_name(signum)})", err=True)
    return 128 + signum
