"""Which source files mention any of some words: one GNU grep over site-packages, in the
background.

The import check asks, of every Python file that stays, whether it imports a directory a
rule would remove (``tests``, ``docs``). Nearly every file does not even contain the word,
and finding that out meant opening and reading each one: on a 100k-file environment, 38k
files and the largest single cost of a plan. ``grep -F`` answers the same question in C,
in a process of its own that runs while the planner matches rules, and the planner then
reads only the files grep named.

grep can only rule files *out*. A file it names is read and parsed as before; a file it does
not name contains none of its words, so it cannot import a module whose name contains one
of them. Anything unexpected (no GNU grep, an error of any kind, output that is not a list
of the files asked about) makes :meth:`GrepHits.possible` keep every file, and
every file is read as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterable, Sequence
from typing import Optional

__all__ = ["GrepHits"]


def _gnu_grep() -> Optional[str]:
    grep = shutil.which("grep")
    if grep is None:
        return None
    try:
        out = subprocess.run([grep, "--version"], capture_output=True, timeout=10, check=False,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return grep if out.startswith(b"grep (GNU grep)") else None


class GrepHits:
    """The ``*.py`` files under ``sites`` (relative to ``root``) that contain any of
    ``needles``, found by a GNU grep started at construction.

    grep walks as the scan does: it follows no symlink inside the tree (so a linked ``.py``
    file is never ruled out), skips devices and FIFOs, and reads files as bytes.
    """

    def __init__(self, root: str, sites: Sequence[str], needles: Iterable[bytes], *,
                 skip_dirs: Iterable[str] = ()) -> None:
        """``skip_dirs``: directory names grep does not descend into; files below one are
        never ruled out (grep did not read them)."""
        self.needles = tuple(sorted(set(needles)))
        self._sites = tuple(sites)
        self._skip = tuple(sorted(set(skip_dirs)))
        self._hits: Optional[frozenset[str]] = None
        self._failed = False
        self._covers: dict[tuple[bytes, ...], bool] = {}
        self._proc: Optional[subprocess.Popen[bytes]] = None
        grep = _gnu_grep() if self.needles and all(n and b"\n" not in n for n in self.needles) else None
        if grep is None:
            self._failed = True
            return
        patterns = [arg for n in self.needles for arg in ("-e", os.fsdecode(n))]
        starts = [s if s else "." for s in self._sites]
        # Output into a file: a full pipe would stop grep until the planner came to read it.
        self._out = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [grep, "-r", "-l", "-F", "-a", "-s", "--null", "-D", "skip", "--include=*.py",
                 *(f"--exclude-dir={d}" for d in self._skip), *patterns, "--", *starts],
                cwd=root, stdout=self._out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                env={**os.environ, "LC_ALL": "C"})
        except OSError:
            self._out.close()
            self._failed = True

    def _result(self) -> Optional[frozenset[str]]:
        if self._hits is None and not self._failed:
            assert self._proc is not None
            with self._out:
                code = self._proc.wait()
                self._out.seek(0)
                out = self._out.read()
            # 0: some file matched, 1: none did; 2 (an unreadable file, say): do not trust.
            names = out.decode("utf-8", "surrogateescape").split("\0")
            if code not in (0, 1) or names.pop() != "":
                self._failed = True
                return None
            hits = frozenset(n[2:] if n.startswith("./") else n for n in names)
            if not all(n.endswith(".py") for n in hits):
                self._failed = True
                return None
            self._hits = hits
        return self._hits

    def close(self) -> None:
        """Stop grep if its answer was never needed."""
        if self._proc is not None and self._hits is None and not self._failed:
            self._proc.kill()
            self._proc.wait()
            self._out.close()
            self._failed = True

    def _covered(self, needles: tuple[bytes, ...]) -> bool:
        """Whether a file without any of grep's words holds none of ``needles`` either:
        every needle contains one of grep's words."""
        found = self._covers.get(needles)
        if found is None:
            found = self._covers[needles] = all(
                any(word in n for word in self.needles) for n in needles)
        return found

    def possible(self, paths: Iterable[str], needles: tuple[bytes, ...],
                 unknown: Collection[str] = ()) -> list[str]:
        """The ``paths`` that may contain one of ``needles``: a path is ruled out only when
        grep answered, covers the needles, would have read it (a ``.py`` file in a site) and
        did not name it. ``unknown`` paths (symlinks: grep does not follow them) are never
        ruled out."""
        paths = list(paths)
        if self._failed or not self._covered(needles):
            return paths
        hits = self._result()
        if hits is None:
            return paths
        inside = tuple(s + "/" for s in self._sites if s)
        anywhere = "" in self._sites
        skipped = tuple(f"/{d}/" for d in self._skip)
        return [p for p in paths
                if p in hits or p in unknown or not p.endswith(".py")
                or not (anywhere or p.startswith(inside))
                or (skipped and any(d in f"/{p}" for d in skipped))]
