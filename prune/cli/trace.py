"""``venv-prune trace PATH -o FILE [--append] -- CMD [ARGS...]``: record an import trace.

The command object is registered in the main group by prune/cli/main.py. Bad input raises
:class:`~prune.errors.PruneError` subclasses, which the main group turns into one stderr line;
the command itself exits with CMD's exit code.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..env import locate
from ..errors import UsageError
from ..trace import load_trace, run_trace, write_trace

__all__ = ["trace_command"]


def _output_path(output: str | None, root: Path) -> Path:
    """Check -o before CMD runs: a failed write after a long traced run would waste it."""
    if not output:
        raise UsageError("missing -o FILE: where to write the trace, e.g. -o trace.json")
    target = Path(output)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {output}: directory {parent} does not exist; create it first")
    if target.is_dir():
        raise UsageError(
            f"-o {output}: is a directory; name the trace file, e.g. {target}/trace.json"
        )
    real = os.path.realpath(target)
    root_text = str(root)
    if real == root_text or real.startswith(root_text.rstrip(os.sep) + os.sep):
        raise UsageError(
            f"-o {output}: lies inside the environment {root}; write the trace outside it, "
            "tracing must not change the environment"
        )
    return target


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


_EXAMPLES = """\b
Examples:
  venv-prune trace /opt/venv -o trace.json -- python -m app --smoke
  venv-prune trace /opt/venv -o trace.json --append -- python -m pytest tests/
  venv-prune trace /opt/venv -o trace.json --append -- sh ./smoke-test-server.sh
  venv-prune /opt/venv --profile minimal --keep-from trace.json
"""


@click.command(
    "trace",
    context_settings={"help_option_names": ["-h", "--help"]},
    short_help="Run a command and record what it uses in the environment.",
    epilog=_EXAMPLES,
)
@click.argument("path", metavar="PATH")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Write the trace (JSON) here. Required; must lie outside the environment.",
)
@click.option(
    "--append",
    is_flag=True,
    help="Merge into the trace already in FILE (created if missing) instead of replacing it.",
)
def trace_command(path: str, command: tuple[str, ...], output: str | None, append: bool) -> None:
    """Run CMD using the environment at PATH and record what it reached there.

    Every Python process CMD starts with the environment's interpreter is traced - CMD
    itself, its subprocesses, multiprocessing and server workers (uvicorn, gunicorn) -
    through an audit hook injected with a temporary sitecustomize. The trace lists the
    modules imported, files opened, directories listed, shared libraries loaded and
    distribution metadata read under PATH, and the command, so the `minimal` profile can
    re-run it as a check. Nothing is written into the environment.

    CMD runs with PATH/bin first on PATH (so `python` and console scripts are the
    environment's) and VIRTUAL_ENV set. Put CMD after `--`. venv-prune exits with CMD's exit
    code; the trace is written even when CMD fails. A process started with `python -I`,
    `-E` or `-S`, or with a scrubbed environment, is not traced.

    Use the trace with `--keep-from FILE` (keep all of it, in any profile) or
    `--profile minimal --keep-from FILE` (remove what no trace reached).
    """
    if not command:
        raise UsageError(
            "no command to trace; give it after --, e.g. "
            f"'venv-prune trace {path} -o trace.json -- python -m app'"
        )
    env = locate(path)
    target = _output_path(output, env.root)
    earlier = load_trace(target) if append and target.exists() else None
    run = run_trace(env, command, append_to=earlier)
    write_trace(run.trace, target)

    trace = run.trace
    commands = f" ({_count(len(trace.commands), 'command')} in the trace)" if earlier else ""
    click.echo(
        f"venv-prune trace: recorded {_count(len(trace.modules), 'module')}, "
        f"{_count(len(trace.files), 'file')}, {_count(len(trace.libraries), 'library', 'libraries')}, "
        f"{_count(len(trace.dirs), 'directory', 'directories')} and the metadata of "
        f"{_count(len(trace.distributions), 'distribution')} from "
        f"{_count(run.processes, 'Python process', 'Python processes')}{commands}; "
        f"CMD exited {run.exit_code}; wrote {target}",
        err=True,
    )
    if run.processes == 0:
        click.echo(
            "venv-prune trace: warning: no Python process was traced; does CMD run this "
            "environment's Python (not with -I, -E or -S, nor with a scrubbed environment)?",
            err=True,
        )
    if run.exit_code:
        # SystemExit, not ctx.exit: it carries the code through click's standalone_mode=False.
        raise SystemExit(run.exit_code)
