"""The command line: ``venv-prune PATH [options]`` plus subcommands.

The CLI is the only layer that prints or exits. Every :class:`~prune.errors.PruneError`
and every click usage error becomes one line on stderr and its exit code:
0 done; 1 verification failed and rolled back, or ``--max-size`` exceeded;
2 bad input (nothing changed); 3 an interrupted run awaits ``venv-prune recover PATH``;
4 the operating system refused a step (any other OSError is caught at the boundary too: one
line with the path and the errno, never a traceback); 75 another run holds the lock; 128+N a
signal (before the commit everything was rolled back, after it the prune is complete).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, Optional

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from . import __version__
from ._gc import paused_gc
from ._launch import COMPLETE_VAR, SUBCOMMANDS
from ._signals import SignalGate, signal_name, signal_number
from .env import locate as locate_env
from .errors import PruneError, UsageError
from .plan import PlanOptions, remove_pattern_lists
from .report import FORMATS, Extras, render
from .scan import discard_prestarted

__all__ = ["main", "cli"]

_SUBCOMMANDS_EPILOG = """\b
Exit codes:
  0  done
  1  verification failed and every change was rolled back, or --max-size exceeded
  2  bad input (nothing changed)
  3  an interrupted run awaits 'venv-prune recover PATH'
  4  the operating system refused a step (every change rolled back; the line names the path)
  75 another venv-prune run holds the environment's lock (nothing changed)
  130, 143  Ctrl-C or SIGTERM: rolled back before the commit; after it, the prune is complete
"""


class _Main(click.Group):
    """A group whose default command takes a PATH: ``venv-prune /opt/venv --profile X``.

    A subcommand's name is always that subcommand (``venv-prune graph /opt/venv`` graphs
    /opt/venv even where ``./graph`` exists, as ``git log`` never means a file); anything
    else is handed to the hidden ``prune`` command. A directory called like a subcommand is
    pruned as ``./graph``.
    """

    #: Subcommands that live in modules of their own, imported only when named (or when
    #: --help lists them): pruning never loads the tracer, the packer or the ELF reader.
    _LAZY = {"trace": ("cli_trace", "trace_command"), "graph": ("cli_graph", "graph_command"),
             "pack": ("cli_pack", "pack_command"), "libs": ("cli_libs", "libs_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in self._LAZY:
            import importlib

            module, attr = self._LAZY[cmd_name]
            cmd = getattr(importlib.import_module(f"prune.{module}"), attr)
            self.add_command(_from_environment(cmd, f"VENV_PRUNE_{cmd_name.upper()}_"), cmd_name)
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
    epilog=_SUBCOMMANDS_EPILOG,
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


def _colour() -> Optional[bool]:
    """False under ``NO_COLOR`` (no-color.org); else None: click colours a terminal only."""
    return False if os.environ.get("NO_COLOR") else None


def _warn(message: str) -> None:
    click.echo(click.style("venv-prune: warning:", fg="yellow") + f" {message}", err=True, color=_colour())


#: A step that counts ("verifying 37/120", "stripping 3/40"): on a terminal one line
#: rewritten in place, in a log (a Docker build) a line per tenth of the way.
_COUNTER = re.compile(r"^(.*\D)(\d+)/(\d+)$")


def _progress(quiet: bool) -> Any:
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


def _complete_profile(incomplete: str) -> list[CompletionItem]:
    names = [CompletionItem(n) for n in ("safe", "standard", "aggressive", "minimal") if n.startswith(incomplete)]
    return names or [CompletionItem(incomplete, type="file")]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``500MB`` (10^6), ``1.5GiB`` (2^30), ``2048`` (bytes)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"--max-size {text!r}: not a size; write e.g. 500MB or 1.5GiB")
    number = float(m.group(1))
    unit = (m.group(2) or "B").upper()
    powers = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
    prefix = unit.rstrip("B").rstrip("I")
    base = 1024 if "I" in unit else 1000
    return int(number * base ** powers[prefix])


@cli.command(
    "prune",
    epilog=_SUBCOMMANDS_EPILOG + """
\b
Examples:
  venv-prune /opt/venv                          # standard profile, verified
  venv-prune /opt/venv --profile aggressive --dry-run --format json
  venv-prune /opt/venv --root myapp --check "python -m myapp --selftest"
  venv-prune /wheelhouse --python /usr/local/bin/python3   # a pip --target dir
  venv-prune /opt/venv --keep 'mypkg/templates/' --remove '*.md'
  venv-prune /opt/venv --explain lib/python3.12/site-packages/numpy/_core/tests
""",
)
@click.argument("path", type=click.Path(path_type=str))
@click.option("--profile", "-p", default="standard", show_default=True, metavar="NAME|FILE",
              shell_complete=lambda ctx, param, incomplete: _complete_profile(incomplete),
              help="safe, standard, aggressive, minimal, a .toml profile, or a pyproject.toml")
@click.option("--config", metavar="PYPROJECT", help="Read the profile from [tool.venv-prune] in this pyproject.toml.")
@click.option("--dry-run", "-n", is_flag=True, help="Report what would go; change nothing.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--report", "report_file", metavar="FILE", help="Also write the report to FILE.")
@click.option("--keep", multiple=True, metavar="PATTERN", help="Never remove what matches (gitwildmatch). Repeatable.")
@click.option("--remove", multiple=True, metavar="PATTERN", help="Also remove what matches. Repeatable.")
@click.option("--keep-module", multiple=True, metavar="NAME", help="Keep a module (a package: all of it).")
@click.option("--keep-from", multiple=True, metavar="TRACE", help="Keep everything a trace reached. Repeatable.")
@click.option("--root", "roots", multiple=True, metavar="DIST",
              help="The application's distribution(s); what they do not need may go.")
@click.option("--requirements", metavar="FILE", help="Roots from a requirements file or pyproject.toml.")
@click.option("--extra", "extras", multiple=True, metavar="NAME",
              help="Optional dependency group of --requirements pyproject.")
@click.option("--keep-dist", multiple=True, metavar="DIST", help="Never remove this distribution.")
@click.option("--remove-dist", multiple=True, metavar="DIST", help="Remove this distribution.")
@click.option("--force", is_flag=True, help="Allow --remove-dist of a distribution something requires, and a plan that "
                   "removes every distribution installed by name.")
@click.option("--no-verify", is_flag=True, help="Skip the import check before/after (not recommended).")
@click.option("--check", "checks", multiple=True, metavar="CMD",
              help="Smoke command run before and after; must keep passing.")
@click.option("--python", metavar="EXE", help="Interpreter for verification (prefix or --target dirs).")
@click.option("--strip/--no-strip", default=None, help="Strip debug symbols from ELF files (default: profile).")
@click.option("--bytecode", type=click.Choice(["drop", "keep", "compile"]), default=None,
              help="What to do with bytecode (default: profile's, drop).")
@click.option("--optimize", type=click.IntRange(0, 2), default=0, help="Optimisation level for --bytecode compile.")
@click.option("--output", "-o", metavar="DIR", help="Prune a copy at DIR; leave PATH untouched.")
@click.option("--relocate", metavar="PREFIX", help="With --output: rewrite scripts and pyvenv.cfg for this final path.")
@click.option("--explain", "explain_paths", multiple=True, metavar="PATH",
              help="Say why PATH goes or stays; change nothing.")
@click.option("--max-size", metavar="SIZE", help="Exit 1 after the report if the result is larger (500MB, 1.5GiB).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Parallel verification workers.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only errors and the report.")
@click.option("--verbose", "-v", is_flag=True, help="Show every action and diagnostic.")
@click.option("--isolated", "--no-config", "isolated", is_flag=True,
              help="Ignore [tool.venv-prune] in ./pyproject.toml (found, like ruff's, here or above).")
def prune_command(path: str, profile: str, config: Optional[str], dry_run: bool, fmt: str,
                  report_file: Optional[str], keep: Sequence[str], remove: Sequence[str],
                  keep_module: Sequence[str], keep_from: Sequence[str], roots: Sequence[str],
                  requirements: Optional[str], extras: Sequence[str], keep_dist: Sequence[str],
                  remove_dist: Sequence[str], force: bool, no_verify: bool, checks: Sequence[str],
                  python: Optional[str], strip: Optional[bool], bytecode: Optional[str], optimize: int,
                  output: Optional[str], relocate: Optional[str], explain_paths: Sequence[str],
                  max_size: Optional[str], jobs: int, quiet: bool, verbose: bool,
                  isolated: bool = False) -> None:
    """Prune the environment at PATH: a venv root, a Python prefix, or a site-packages dir.

    Patterns are gitwildmatch, matched against paths relative to site-packages (or to the
    environment root for bin/, include/, share/).

    Without --profile or --config, the closest pyproject.toml with a [tool.venv-prune] table
    (in the current directory or above) is the profile; --isolated ignores it. Every option
    can be set from the environment variable shown (VENV_PRUNE_PROFILE=aggressive; a flag
    with 1/0; a repeatable option with values separated by spaces, --check by newlines).
    """
    from .pipeline import PruneRequest, run

    profile_given = click.get_current_context().get_parameter_source("profile") != ParameterSource.DEFAULT
    if config and profile_given:
        raise UsageError("--config and --profile both name a profile; pass only one")
    config = config or _found_config(isolated, profile_given, quiet)
    _check_patterns(("--keep", keep), ("--remove", remove))
    if report_file:
        _check_report_file(report_file)
    limit = parse_size(max_size) if max_size else None
    if relocate and not output:
        raise UsageError("--relocate needs --output DIR (it rewrites the copy for its final path)")
    root_names: list[str] = list(roots)
    if requirements:
        from .env import locate
        from .graph import project_name, roots_from_requirements
        from .scan import scan as scan_env

        if not Path(requirements).is_file():
            raise UsageError(f"--requirements {requirements}: no such file; pass a requirements.txt or pyproject.toml")
        target_env = locate(path, python=python)
        root_names += list(roots_from_requirements(Path(requirements), list(extras),
                                                   marker_env=target_env.marker_environment()))
        # `pip install .` then --requirements pyproject.toml: the project itself is a root.
        own = project_name(Path(requirements))
        if own and any(d.name == own for d in scan_env(target_env).distributions):
            root_names.append(own)
    elif extras:
        raise UsageError("--extra needs --requirements pyproject.toml")
    remove_pattern_lists(remove)  # a lone '!x' is refused before anything is read
    options = PlanOptions(
        keep=tuple(keep), remove=tuple(remove), keep_modules=tuple(keep_module),
        roots=tuple(root_names) if root_names else None, keep_dists=tuple(keep_dist),
        remove_dists=tuple(remove_dist), force=force, bytecode=bytecode,
    )
    progress = _progress(quiet)
    target = path
    dest = None
    if output and not (dry_run or explain_paths):
        from . import output as outmod

        source_root = locate_env(path).root
        dest = outmod.check_destination(source_root, output)
        if progress:
            progress(f"copying {source_root} to {dest.final} (built at {dest.partial})")

    def request_for(where: str) -> PruneRequest:
        return PruneRequest(
            path=where, profile=config or profile, options=options,
            dry_run=dry_run or bool(explain_paths), verify=not no_verify, checks=tuple(checks),
            python=python, strip=strip, traces=tuple(keep_from), jobs=jobs,
            startup_after=bytecode != "compile",  # timed after the compile instead
        )

    from .errors import VerificationFailed

    try:
        if dest is None:
            outcome = run(request_for(target), progress=progress)
        else:
            # Copy, prune, verify and relocate in the partial directory; DIR appears only
            # when all of that has succeeded (see prune/output.py).
            with outmod.interruptible(dest):
                outmod.copy_partial(source_root, dest)
                outcome = run(request_for(str(dest.partial)), progress=progress)
                if relocate:
                    _relocate(dest.partial, relocate, str(source_root))
                outmod.publish(dest)
            outcome = _moved(outcome, dest.final, python)
    except VerificationFailed as exc:
        failed = getattr(exc, "outcome", None)
        if failed is not None:
            _emit(render(failed.plan, fmt, failed.extras, verbose=verbose), report_file)
        raise
    if explain_paths:
        from .plan import explain, in_environment

        for p in explain_paths:
            click.echo(explain(outcome.plan, p))
        unknown = [p for p in explain_paths if not in_environment(outcome.plan, p)]
        if unknown:  # a typo in a CI script must not pass silently
            raise UsageError(f"--explain {unknown[0]}: not in {outcome.plan.inventory.env.root}; give a path "
                             "relative to it, or absolute under it")
        return
    # After the commit a signal rolls nothing back: it must say the prune is complete.
    with _after_commit(not dry_run and outcome.result is not None):
        extras_ = outcome.extras
        if output and extras_.layer_note:
            # The copy was made by this run, in this layer: deleting from it does shrink the layer.
            extras_ = Extras(**{**extras_.__dict__, "layer_note": None})
        if limit is not None:
            extras_ = Extras(**{**extras_.__dict__, "max_size": limit})
        if bytecode == "compile" and not dry_run and outcome.result is not None:
            from .errors import Interrupted

            try:
                extras_ = _compile_bytecode(outcome, extras_, optimize, progress)
            except Interrupted:
                # The prune itself is committed: its report is true, print it before the
                # signal's exit code and the line that says what state the caches are in.
                _emit(render(outcome.plan, fmt, extras_, verbose=verbose), report_file)
                raise
        for w in outcome.warnings:
            if not quiet:
                _warn(w)
        extras_ = _wall_time(extras_)
        _emit(render(outcome.plan, fmt, extras_, verbose=verbose), report_file)
        if limit is not None and _size_after(outcome.plan, extras_) > limit:
            click.echo(f"venv-prune: size gate: result exceeds --max-size {max_size}", err=True)
            sys.exit(1)


@contextlib.contextmanager
def _after_commit(committed: bool) -> Iterator[None]:
    """Once the prune has committed, SIGINT and SIGTERM end the run with 128+N and a line
    that says the prune is complete (issue 16: it said "interrupted", as if rolled back).
    --bytecode compile installs its own handlers inside, which also settle its caches."""
    import signal
    import threading

    from .errors import Interrupted

    if not committed or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(f"{signal.Signals(signum).name} after the prune was committed: the prune "
                          "is complete; the report may be incomplete", signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _from_environment(cmd: click.Command, prefix: str) -> click.Command:
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
_from_environment(prune_command, "VENV_PRUNE_")


def _found_config(isolated: bool, profile_given: bool, quiet: bool) -> Optional[str]:
    """The pyproject.toml whose [tool.venv-prune] table is the profile when no profile was
    named, found as ruff and black find theirs (the closest one, here or above)."""
    if isolated:
        return None
    from .profiles import find_pyproject

    found = find_pyproject(Path.cwd())
    if found is None:
        return None
    if profile_given:
        if not quiet:
            _warn(f"--profile given: [tool.venv-prune] in {found} is not used")
        return None
    if not quiet:
        click.echo(f"venv-prune: profile from [tool.venv-prune] in {found} (--isolated ignores it)", err=True)
    return str(found)


def _check_patterns(*options: tuple[str, Sequence[str]]) -> None:
    """Refuse a bad ``--keep``/``--remove`` pattern before anything is read or changed."""
    from .profiles import pattern_problem

    for flag, patterns in options:
        for pattern in patterns:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise UsageError(f"{flag} {pattern!r}: {problem}; fix the pattern (gitwildmatch syntax)")


def _check_report_file(report_file: str) -> None:
    """Refuse a --report path that cannot be written before anything is read or changed (a
    tester's prune committed, then exited 2 'bad input' for a missing report directory)."""
    target = Path(report_file)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--report {report_file}: is a directory; name a file")
    if not parent.is_dir():
        raise UsageError(f"--report {report_file}: no directory {str(parent)!r}; create it or name another file")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"--report {report_file}: not writable; name a file you may write")


def _emit(text: str, report_file: Optional[str]) -> None:
    click.echo(_styled(text) if text.startswith("venv-prune: ") else text, nl=False, color=_colour())
    if report_file:
        try:
            Path(report_file).write_text(text, encoding="utf-8")
        except OSError as exc:
            # Checked writable before the run, so this is the disk failing now (ENOSPC, EIO):
            # the environment is as the report on stdout says, only its copy is missing.
            from .errors import ApplyFailed

            raise ApplyFailed(f"--report {report_file}: cannot write ({exc.strerror}); the report above "
                              "on stdout stands, the environment is as it says") from exc


_STYLES = ((re.compile(r"^  verification: passed"), "green"), (re.compile(r"^  verification: failed|^  BROKEN"), "red"),
           (re.compile(r"^Size gate: .*EXCEEDED$"), "red"), (re.compile(r"^Size gate: .*ok$"), "green"))


def _styled(report: str) -> str:
    """The text report with its verdicts coloured (click strips the colour off a terminal)."""
    lines = report.split("\n")
    lines[0] = click.style(lines[0], bold=True)
    for i, line in enumerate(lines):
        colour = next((c for pattern, c in _STYLES if pattern.search(line)), None)
        if colour:
            lines[i] = click.style(line, fg=colour)
    return "\n".join(lines)


def _moved(outcome: Any, final: Path, python: Optional[str]) -> Any:
    """The outcome of a prune built in a partial directory, as seen at its final path (the
    report names DIR, and --bytecode compile runs there, so caches name their real path)."""
    from dataclasses import replace

    env = locate_env(str(final), python=python)
    plan = outcome.plan
    plan = replace(plan, inventory=replace(plan.inventory, env=env))
    return replace(outcome, plan=plan)


def _relocate(out: Path, final: str, source_root: str) -> None:
    """Rewrite the copy's absolute paths (shebangs, activate scripts, pyvenv.cfg) so that it
    works once copied to ``final``. The copied files name the *source* environment's root."""
    old = source_root
    candidates = [out / "pyvenv.cfg"] + sorted((out / "bin").glob("*")) if (out / "bin").is_dir() else []
    for p in candidates:
        if p.is_symlink() or not p.is_file():
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:1024]:
            continue
        if old.encode() in data:
            p.write_bytes(data.replace(old.encode(), final.encode()))


def _compile_bytecode(outcome: Any, extras_: Extras, optimize: int, progress: Any) -> Extras:
    from .bytecode import compile_environment

    env = outcome.plan.inventory.env
    if env.python is None:
        return Extras(**{**extras_.__dict__, "warnings": extras_.warnings + (
            "--bytecode compile needs an interpreter (--python EXE); nothing compiled",)})
    if progress:
        progress("compiling bytecode (unchecked-hash)")
    started = time.perf_counter()
    # The report's start-up line (issue 17) times the REQUESTED distributions' imports
    # before the prune and after the compile; compileall's own timing would repeat it.
    summary = compile_environment(env, optimize=optimize, measure=extras_.startup is None)
    timings = [*extras_.timings, ("compile", time.perf_counter() - started)]
    startup = extras_.startup
    if startup is not None:
        from .bytecode import _optimize_flags
        from .startup import measure_after

        started = time.perf_counter()
        startup = measure_after(env, startup, bytecode="compile", flags=_optimize_flags(optimize))
        timings.append(("startup after compile", time.perf_counter() - started))
    return Extras(**{**extras_.__dict__, "bytecode": summary, "startup": startup, "timings": tuple(timings)})


def _size_after(plan: Any, extras_: Extras) -> int:
    """Bytes that stay, as the report's header says: stripping and compiled caches counted."""
    from .report import summarise

    return int(summarise(plan, extras_)["totals"]["bytes_after"])


#: When the command started (the launcher's clock, or main()'s when called in-process).
_STARTED: list[Optional[float]] = [None]


def _wall_time(extras_: Extras) -> Extras:
    """The header's time is the command's wall time, start to report: the run's own total
    leaves out starting Python, the imports and what follows it (compile, relocate)."""
    if _STARTED[0] is None or not extras_.timings:
        return extras_
    timings = [(k, v) for k, v in extras_.timings if k != "total"]
    timings.append(("total", time.perf_counter() - _STARTED[0]))
    return Extras(**{**extras_.__dict__, "timings": tuple(timings)})


@cli.command("profiles")
@click.argument("name", required=False)
def profiles_command(name: Optional[str]) -> None:
    """List the built-in profiles, or print the resolved rules of NAME (or a .toml file).

    \b
    Examples:
      venv-prune profiles
      venv-prune profiles aggressive
      venv-prune profiles ./my-profile.toml
    """
    from .profiles import list_profiles, load_knowledge, load_profile

    if not name:
        for pname, desc in list_profiles():
            click.echo(f"{pname:<11} {desc}")
        return
    prof = load_profile(name)
    click.echo(f"profile {prof.name}  ({' -> '.join(prof.chain)}; {prof.source})")
    click.echo(f"  {prof.description}")
    settings = {
        "remove_distributions": ", ".join(prof.remove_distributions) or "-",
        "remove_dev_tools": prof.remove_dev_tools, "strip": prof.strip, "bytecode": prof.bytecode,
        "optional_data (trace-gated)": prof.optional_data, "requires_trace": prof.requires_trace,
    }
    for k, v in settings.items():
        click.echo(f"  {k}: {v}")
    click.echo("rules (patterns relative to site-packages; root-scope ones to the environment root):")
    for r in prof.rules:
        flags = f" scope={r.scope}" if r.scope != "any" else ""
        flags += " import-check" if r.import_check else ""
        flags += " evidence" if r.evidence else ""
        click.echo(f"  [{r.action}] {r.id} (from {r.profile}){flags}")
        click.echo(f"      {' '.join(r.patterns)}")
        click.echo(f"      {r.reason}")
    kb = load_knowledge()
    click.echo("always protected (knowledge base):")
    for p in kb.protect:
        when = f" when {', '.join(p.when)} installed" if p.when else ""
        scope = " (relative to the environment root)" if p.scope == "root" else ""
        click.echo(f"  {p.id}: {' '.join(p.patterns)}{scope}{when}")
    if kb.readers:
        click.echo("read at run time beside the calling module (knowledge base):")
        for rd in kb.readers:
            click.echo(f"  {rd.id}: code calling {rd.call}() reads the {rd.suffix} file beside it")


@cli.command("recover")
@click.argument("path", type=click.Path(path_type=str))
def recover_command(path: str) -> None:
    """Finish or undo a run that was interrupted (crash, SIGKILL, power loss).

    \b
    Examples:
      venv-prune recover /opt/venv
    """
    from .apply import recover
    from .bytecode import finish_pending
    from .env import locate
    from .output import clean_stale as clean_partial_outputs

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console-script entry point. Returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    from . import _launch

    _STARTED[0] = _launch.STARTED if argv is None else time.perf_counter()
    if not args and COMPLETE_VAR not in os.environ:  # click's completion runs with no arguments
        click.echo("venv-prune: error: missing PATH; e.g. 'venv-prune /opt/venv --profile aggressive' "
                   "(see 'venv-prune --help')", err=True)
        if argv is None:
            sys.exit(2)
        return 2
    try:
        # SignalGate: SIGTERM (a cancelled build) raises KeyboardInterrupt as Ctrl-C does, so
        # no moment of any command dies without a line; the prune's phases say more (pipeline).
        with paused_gc(), SignalGate():  # GC: one short run, the collector would only re-walk the plan
            rv = cli.main(args=args, prog_name="venv-prune", standalone_mode=False)
    except PruneError as exc:
        _error(str(exc))
        code = exc.exit_code
    except click.exceptions.UsageError as exc:
        name = exc.ctx.info_name if exc.ctx else None
        sub = f" {name}" if name and name not in ("venv-prune", "prune") else ""
        hint = f" (see 'venv-prune{sub} --help')"
        if args[0] in SUBCOMMANDS and os.path.isdir(args[0]):
            hint = f"; to prune the directory {args[0]!r}, write ./{args[0]}" + hint
        _error(f"{exc.format_message()}{hint}")
        code = 2
    except OSError as exc:
        # Last resort (issue 16): the operating system refused something no specific handler
        # expected. One line naming the path and the error, never a traceback.
        _error(_os_error(exc))
        code = 4
    except click.exceptions.Abort:
        click.echo("venv-prune: interrupted", err=True)
        code = 130
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt as exc:
        signum = signal_number(exc)
        click.echo(f"venv-prune: interrupted ({signal_name(signum)})", err=True)
        code = 128 + signum
    else:
        # standalone_mode=False hands back ctx.exit(n) codes as the return value.
        code = rv if isinstance(rv, int) else 0
    finally:
        discard_prestarted()  # a walk the launcher began for a run that never scanned
    if argv is None:
        _exit_now(code)
    return code


def _error(message: str) -> None:
    click.echo(click.style("venv-prune: error:", fg="red", bold=True) + f" {message}", err=True, color=_colour())


def _os_error(exc: OSError) -> str:
    """``PATH: No space left on device (ENOSPC)`` from any OSError."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}: "
    return f"{where}{what}{f' ({name})' if name else ''}; the operating system refused this step"


def _exit_now(code: int) -> NoReturn:
    """End the process without Python freeing every object one by one first.

    After a plan of a 100k-file environment that teardown took 0.12 s, a tenth of a dry
    run's planning time. By now every file is closed, every pool and subprocess waited for,
    and nothing registers an exit handler; only the output needs flushing. (mypy ends the
    same way, for the same reason.)
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader has gone
            code = code or 1
    os._exit(code)
