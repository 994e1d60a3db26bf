"""``venv-prune PATH [OPTIONS]``: the prune command, the default one.

It only turns options into a :class:`~prune.pipeline.PruneRequest`, runs the pipeline, and
shows the outcome (the report on stdout or ``--report FILE``, warnings on stderr, the exit code
of the size gate). The pipeline does the work: it scans, copies and prunes; this module reads
nothing of the environment itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from .._start import Launch
from ..errors import Interrupted, UsageError, VerificationFailed
from ..pipeline import Outcome, PruneRequest, run
from ..pipeline.finish import after_commit
from ..plan import PlanOptions
from ..report import FORMATS, Extras, render
from ._ui import EXIT_CODES, colour, from_environment, progress_printer, warn

__all__ = ["prune_command", "parse_size"]


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


@click.command(
    "prune",
    epilog=EXIT_CODES + """
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
    ctx = click.get_current_context()
    launch = ctx.find_object(Launch) or Launch()
    profile = _profile(profile, config, isolated, quiet)
    if report_file:
        _check_report_file(report_file)
    limit = parse_size(max_size) if max_size else None
    options = PlanOptions(
        keep=tuple(keep), remove=tuple(remove), keep_modules=tuple(keep_module),
        roots=tuple(roots) if roots else None, keep_dists=tuple(keep_dist),
        remove_dists=tuple(remove_dist), force=force, bytecode=bytecode,
    )
    request = PruneRequest(
        path=path, profile=profile, options=options, dry_run=dry_run or bool(explain_paths),
        verify=not no_verify, checks=tuple(checks), python=python, strip=strip, traces=tuple(keep_from),
        jobs=jobs, requirements=requirements, extras=tuple(extras), output=output, relocate=relocate,
        optimize=optimize, max_size=None if explain_paths else limit,
    )
    try:
        outcome = run(request, progress=progress_printer(quiet), walk=launch.walk)
    except (VerificationFailed, Interrupted) as exc:
        failed: Optional[Outcome] = getattr(exc, "outcome", None)
        if failed is not None:  # rolled back, or interrupted after the commit: the report is true
            with after_commit(isinstance(exc, Interrupted)):
                _emit(render(failed.plan, fmt, failed.extras, verbose=verbose), report_file)
        raise
    if explain_paths:
        _explain(outcome, explain_paths)
        return
    # After the commit a signal rolls nothing back: it must say the prune is complete.
    with after_commit(outcome.result is not None):
        if not quiet:
            for w in outcome.warnings:
                warn(w)
        _emit(render(outcome.plan, fmt, _wall_time(outcome.extras, launch.started), verbose=verbose), report_file)
        if outcome.over_max_size:
            click.echo(f"venv-prune: size gate: result exceeds --max-size {max_size}", err=True)
            ctx.exit(1)


from_environment(prune_command, "VENV_PRUNE_")


def _profile(profile: str, config: Optional[str], isolated: bool, quiet: bool) -> str:
    """The profile the options name: ``--config``, else ``--profile`` when given, else the
    closest pyproject.toml's [tool.venv-prune] table, else the default ``--profile``."""
    profile_given = click.get_current_context().get_parameter_source("profile") != ParameterSource.DEFAULT
    if config and profile_given:
        raise UsageError("--config and --profile both name a profile; pass only one")
    return config or _found_config(isolated, profile_given, quiet) or profile


def _found_config(isolated: bool, profile_given: bool, quiet: bool) -> Optional[str]:
    """The pyproject.toml whose [tool.venv-prune] table is the profile when no profile was
    named, found as ruff and black find theirs (the closest one, here or above)."""
    if isolated:
        return None
    from ..profiles import find_pyproject

    found = find_pyproject(Path.cwd())
    if found is None:
        return None
    if profile_given:
        if not quiet:
            warn(f"--profile given: [tool.venv-prune] in {found} is not used")
        return None
    if not quiet:
        click.echo(f"venv-prune: profile from [tool.venv-prune] in {found} (--isolated ignores it)", err=True)
    return str(found)


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
    click.echo(_styled(text) if text.startswith("venv-prune: ") else text, nl=False, color=colour())
    if report_file:
        try:
            Path(report_file).write_text(text, encoding="utf-8")
        except OSError as exc:
            # Checked writable before the run, so this is the disk failing now (ENOSPC, EIO):
            # the environment is as the report on stdout says, only its copy is missing.
            from ..errors import ApplyFailed

            raise ApplyFailed(f"--report {report_file}: cannot write ({exc.strerror}); the report above "
                              "on stdout stands, the environment is as it says") from exc


_STYLES = ((re.compile(r"^  verification: passed"), "green"), (re.compile(r"^  verification: failed|^  BROKEN"), "red"),
           (re.compile(r"^Size gate: .*EXCEEDED$"), "red"), (re.compile(r"^Size gate: .*ok$"), "green"))


def _styled(report: str) -> str:
    """The text report with its verdicts coloured (click strips the colour off a terminal)."""
    lines = report.split("\n")
    lines[0] = click.style(lines[0], bold=True)
    for i, line in enumerate(lines):
        fg = next((c for pattern, c in _STYLES if pattern.search(line)), None)
        if fg:
            lines[i] = click.style(line, fg=fg)
    return "\n".join(lines)


def _explain(outcome: Outcome, paths: Sequence[str]) -> None:
    """Say why each of ``paths`` goes or stays.

    :raises UsageError: a path is not in the environment (a typo in a CI script must not
        pass silently).
    """
    from ..plan import explain, in_environment

    for p in paths:
        click.echo(explain(outcome.plan, p))
    unknown = [p for p in paths if not in_environment(outcome.plan, p)]
    if unknown:
        raise UsageError(f"--explain {unknown[0]}: not in {outcome.plan.inventory.env.root}; give a path "
                         "relative to it, or absolute under it")


def _wall_time(extras: Extras, started: Optional[float]) -> Extras:
    """The header's time is the command's wall time, start to report: the run's own total
    leaves out starting Python, the imports and what follows it (compile, relocate)."""
    import time
    from dataclasses import replace

    if started is None or not extras.timings:
        return extras
    timings = [(k, v) for k, v in extras.timings if k != "total"]
    timings.append(("total", time.perf_counter() - started))
    return replace(extras, timings=tuple(timings))
