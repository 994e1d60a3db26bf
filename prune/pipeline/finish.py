"""What surrounds the prune itself: ``--output`` (prune a copy that appears complete or not at
all, ``--relocate`` it for its final path), and what follows the commit (``--bytecode
compile``, the ``--max-size`` gate), during which a signal ends the run saying the prune is
complete (:func:`after_commit`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .._signals import first_only, handling, signal_name
from ..env import Environment, locate
from ..errors import Interrupted
from ..model import Plan, Progress
from ..report import Extras
from .request import Outcome, PruneRequest

__all__ = ["pruned_copy", "relocate", "finished", "after_commit"]


def pruned_copy(request: PruneRequest, source: Environment, prune: Callable[[Environment], Outcome],
                progress: Optional[Progress]) -> Outcome:
    """``--output DIR``: copy ``source``, ``prune`` the copy, relocate it, then move it to DIR.

    Copy, prune, verify and relocate happen in a partial directory; DIR appears only when all
    of that has succeeded (see :mod:`prune.output`). The outcome is seen at DIR.

    :raises UsageError: DIR is a link, a file, a non-empty directory, or inside the source.
    """
    from .. import output as outmod

    assert request.output is not None
    dest = outmod.check_destination(source.root, request.output)
    if progress:
        progress(f"copying {source.root} to {dest.final} (built at {dest.partial})")
    with outmod.interruptible(dest):
        outmod.copy_partial(source.root, dest)
        outcome = prune(locate(str(dest.partial), python=request.python))
        if request.relocate:
            relocate(dest.partial, request.relocate, str(source.root))
        outmod.publish(dest)
    return _moved(outcome, dest.final, request.python)


def _moved(outcome: Outcome, final: Path, python: Optional[str]) -> Outcome:
    """The outcome of a prune built in a partial directory, as seen at its final path (the
    report names DIR, and --bytecode compile runs there, so caches name their real path)."""
    env = locate(str(final), python=python)
    plan = outcome.plan
    plan = replace(plan, inventory=replace(plan.inventory, env=env))
    return replace(outcome, plan=plan)


def relocate(out: Path, final: str, source_root: str) -> None:
    """Rewrite the copy's absolute paths (pyvenv.cfg, shebangs and activate scripts in bin/)
    so that it works once copied to ``final``. The copied files name the *source*
    environment's root. Binary files (a NUL in the first KiB) and links are left alone."""
    old, new = source_root.encode(), final.encode()
    scripts = sorted((out / "bin").glob("*")) if (out / "bin").is_dir() else []
    for p in [out / "pyvenv.cfg", *scripts]:
        if p.is_symlink() or not p.is_file():
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:1024]:
            continue
        if old in data:
            p.write_bytes(data.replace(old, new))


def finished(request: PruneRequest, outcome: Outcome, progress: Optional[Progress]) -> Outcome:
    """The steps after the prune: the report's extras for ``--output`` and ``--max-size``,
    ``--bytecode compile`` after a commit, then the size gate.

    :raises Interrupted: a signal during the compile; ``.outcome`` is the committed prune's.
    """
    extras = outcome.extras
    if request.output and extras.layer_note:
        # The copy was made by this run, in this layer: deleting from it does shrink the layer.
        extras = replace(extras, layer_note=None)
    if request.max_size is not None:
        extras = replace(extras, max_size=request.max_size)
    outcome = replace(outcome, extras=extras)
    # The plan's own choice: --bytecode (PlanOptions.bytecode) or else the profile's setting,
    # so a profile that says ``bytecode = "compile"`` compiles as the option does.
    if dict(outcome.plan.options).get("bytecode") == "compile" and outcome.result is not None:
        with after_commit(True):
            try:
                outcome = replace(outcome, extras=_compile_bytecode(outcome, request.optimize, progress))
            except Interrupted as exc:
                # The prune itself is committed: its report is true, and the caller shows it
                # before the signal's exit code and the line that says what state the caches are in.
                exc.outcome = outcome  # type: ignore[attr-defined]
                raise
    if request.max_size is not None and _size_after(outcome.plan, outcome.extras) > request.max_size:
        outcome = replace(outcome, over_max_size=True)
    return outcome


def _compile_bytecode(outcome: Outcome, optimize: int, progress: Optional[Progress]) -> Extras:
    """Rebuild the bytecode caches with the environment's interpreter; the extras that say so
    (and the start-up time after the compile, when it was timed before the prune)."""
    from ..bytecode import compile_environment, optimize_flags

    extras = outcome.extras
    env = outcome.plan.inventory.env
    if env.python is None:
        return replace(extras, warnings=extras.warnings + (
            "--bytecode compile needs an interpreter (--python EXE); nothing compiled",))
    if progress:
        progress("compiling bytecode (unchecked-hash)")
    started = time.perf_counter()
    # The report's start-up line (issue 17) times the REQUESTED distributions' imports
    # before the prune and after the compile; compileall's own timing would repeat it.
    summary = compile_environment(env, optimize=optimize, measure=extras.startup is None)
    timings = [*extras.timings, ("compile", time.perf_counter() - started)]
    startup = extras.startup
    if startup is not None:
        from ..startup import measure_after

        started = time.perf_counter()
        startup = measure_after(env, startup, bytecode="compile", flags=optimize_flags(optimize))
        timings.append(("startup after compile", time.perf_counter() - started))
    return replace(extras, bytecode=summary, startup=startup, timings=tuple(timings))


def _size_after(plan: Plan, extras: Extras) -> int:
    """Bytes that stay, as the report's header says: stripping and compiled caches counted."""
    from ..report import summarise

    return int(summarise(plan, extras)["totals"]["bytes_after"])


@contextlib.contextmanager
def after_commit(committed: bool) -> Iterator[None]:
    """Once the prune has committed, SIGINT and SIGTERM end the run with 128+N and a line
    that says the prune is complete (issue 16: it said "interrupted", as if rolled back); a
    second signal cannot cut short what the first one started. --bytecode compile installs
    its own handlers inside, which also settle its caches."""
    if not committed:
        yield
        return

    def complete(signum: int) -> None:
        raise Interrupted(f"{signal_name(signum)} after the prune was committed: the prune "
                          "is complete; the report may be incomplete", signum)

    with handling(first_only(complete)):
        yield
