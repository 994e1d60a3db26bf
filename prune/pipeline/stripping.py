"""``--strip`` inside the pipeline: what a dry run estimates, and the callback a real run
hands the transaction to strip copies of the ELF files that stay (each copy re-checked)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from ..apply import Replacement
from ..env import Environment
from ..errors import PruneError
from ..model import Plan, Progress

__all__ = ["Preparer", "strip_estimate", "strip_preparer", "strip_summary"]

#: The transaction's strip step: given a scratch directory, the stripped copies that replace
#: their originals (see :func:`prune.apply.apply_plan`).
Preparer = Callable[[Path], Sequence[Replacement]]


def strip_estimate(env: Environment, plan: Plan) -> tuple[tuple[dict[str, Any], ...], str]:
    """What ``strip`` would save on the files that stay, for a dry run: the sizes of the
    sections ``strip --strip-unneeded`` drops (``.symtab``, ``.strtab``, ``.debug_*``), read
    from the ELF section headers of the files a real run would strip. Nothing is stripped.
    A real run may save a little less: it keeps a copy that fails its load check."""
    from .. import strip as stripmod

    if not stripmod.strip_available():
        return (), "no 'strip' program on this machine (install binutils); a real run would not strip"
    candidates = stripmod.find_strip_candidates(env.root, [f.path for f in plan.staying() if not f.is_link])
    return tuple({"path": c.path, "bytes_saved": c.removable, "detail": "estimate: section sizes"}
                 for c in candidates if c.strippable), ""


def strip_summary(problems: Sequence[str]) -> str:
    """One warning line for the files strip could not handle (issue 16: ENOSPC was silent)."""
    first = sorted(problems)[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{len(problems)} file{'s' if len(problems) != 1 else ''} left unstripped: {first}{more}"


def strip_preparer(
    env: Environment, plan: Plan, progress: Optional[Progress], jobs: int = 2,
    problems: Optional[list[str]] = None,
) -> tuple[Optional[Preparer], str]:
    """Build the callback that strips copies of ELF files that stay, checking each copy.
    What could not be stripped (strip failed, the disk is full, a copy does not load) is
    appended to ``problems``, one line each. Returns (None, why) where nothing can strip."""
    try:
        from .. import strip as stripmod
    except ImportError:  # pragma: no cover - module ships with the package
        return None, "stripping unavailable"
    if not stripmod.strip_available():
        return None, "no 'strip' program on this machine (install binutils); debug symbols were not stripped"
    paths = [f.path for f in plan.staying() if not f.is_link]
    stripper = _Stripper(env, progress, max(1, jobs), [] if problems is None else problems)
    return (lambda scratch: stripper.prepare(scratch, paths)), ""


#: A stripped copy: (the candidate, where its copy is, bytes saved).
_Copy = tuple[Any, Path, int]


class _Stripper:
    """Strips copies of ELF files into a scratch directory, ``jobs`` at a time, then checks
    that each copy still loads; what fails is a line in ``problems`` and stays as it is."""

    def __init__(self, env: Environment, progress: Optional[Progress], jobs: int, problems: list[str]) -> None:
        self.env = env
        self.progress = progress
        self.jobs = jobs
        self.problems = problems

    def prepare(self, scratch: Path, paths: Sequence[str]) -> list[Replacement]:
        """The replacements for the files among ``paths`` that strip makes smaller and whose
        copy still loads, in the candidates' order (so plans and reports stay stable)."""
        from ..strip import find_strip_candidates

        candidates = find_strip_candidates(self.env.root, paths)
        todo = [c for c in candidates if c.strippable]
        if self.progress:
            self.progress(f"stripping {len(todo)} ELF files (copies, each re-checked)")
        ok = self._loading(self._stripped(scratch, todo))
        return [ok[c.path] for c in todo if c.path in ok]

    def _stripped(self, scratch: Path, todo: list[Any]) -> list[_Copy]:
        from concurrent.futures import ThreadPoolExecutor

        stripped = []
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            copies = pool.map(lambda ic: self._strip_one(scratch, *ic), enumerate(todo))
            for n, r in enumerate(copies, 1):
                if self.progress:
                    self.progress(f"stripping {n}/{len(todo)}")
                if r is not None:
                    stripped.append(r)
        return stripped

    def _strip_one(self, scratch: Path, i: int, cand: Any) -> Optional[_Copy]:
        from ..strip import strip_copy

        dst = scratch / f"strip{i:06d}"
        try:
            saved = strip_copy(self.env.root / cand.path, dst)
        except Exception as exc:  # noqa: BLE001 - a file strip cannot handle stays as it is
            with contextlib.suppress(OSError):
                os.unlink(dst)
            if isinstance(exc, PruneError):  # names the file and says it stays unstripped
                self.problems.append(str(exc))
            else:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.problems.append(f"{cand.path}: {why}")
            return None
        if saved <= 0:
            os.unlink(dst)
            return None
        return cand, dst, saved

    def _loading(self, stripped: list[_Copy]) -> dict[str, Replacement]:
        """The copies that still load, by path.

        Each check starts an interpreter (about a second with numpy imported): the copies
        are checked in one batch per core, and a failing batch is split until the file
        that fails is found (see strip.check_loads_many). origin=src: a copy must resolve
        $ORIGIN libraries (torch/lib) as the original does.
        """
        from concurrent.futures import ThreadPoolExecutor

        from ..strip import check_loads_many

        env = self.env
        sys_path = env.site_paths() if env.kind == "site-packages" else ()
        batches = [stripped[k::self.jobs] for k in range(self.jobs)]

        def check(batch: list[_Copy]) -> list[Optional[str]]:
            return check_loads_many(
                env.python, [(dst, cand.module, env.root / cand.path) for cand, dst, _ in batch],
                sys_path=sys_path)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            verdicts = list(pool.map(check, batches))
        ok: dict[str, Replacement] = {}
        for batch, errors in zip(batches, verdicts):
            for (cand, dst, saved), err in zip(batch, errors):
                if err is not None:
                    os.unlink(dst)
                    self.problems.append(f"{cand.path}: the stripped copy did not load ({err})")
                    continue
                ok[cand.path] = Replacement(cand.path, dst, saved, "strip --strip-unneeded")
        return ok
