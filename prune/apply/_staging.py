"""Moving paths into the stash and back, where a plain ``rename`` is refused.

Every path is checked by :func:`check_under_root` right before it moves (invariant 1: a
symlinked parent must not redirect a rename outside the environment).

Overlayfs (Docker's overlay2, BuildKit, podman) answers ``rename(2)`` of a directory that lives
in a lower layer with EXDEV unless the mount has ``redirect_dir=on``; files rename fine, the
kernel copies them up (issue 14). A directory that is a mount point answers EBUSY, and a file
on another filesystem EXDEV. So a directory that refuses is *split*: its tree is recreated in
the stash and its entries are moved one by one (files and symlinks by rename, a file on another
filesystem by copy and unlink), recursing into subdirectories that refuse too; each emptied
original is removed (an overlay records a whiteout), so verification sees the tree as a plain
rename would leave it.

Before a directory is split, one line with its mode and owner goes to an append-only log
(``splits.jsonl`` in the state directory); an entry's presence in the stash is its own record.
Putting a tree back therefore needs nothing else: :class:`Restorer` walks the stash copy,
recreates directories from the log, and moves every entry home. It tolerates what a crash or a
concurrent writer leaves: a path already back, a path recreated meanwhile (a ``__pycache__`` is
discarded, anything else is moved aside and reported), a parent that has gone.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import UnsafePath

__all__ = ["SplitLog", "Restorer", "stage", "move_file", "copy_name", "plain_relative", "check_under_root",
           "mount_points", "REFUSED", "SPLITS"]

SPLITS = "splits.jsonl"
_COPY_SUFFIX = ".venv-prune-copy"
#: rename errors that mean "not like this" rather than "not at all": EXDEV from overlayfs or
#: a mount boundary, EBUSY from a mount point.
REFUSED = frozenset({errno.EXDEV, errno.EBUSY})


@dataclass
class SplitLog:
    """Append-only record of directories staged entry by entry: root-relative path -> (mode,
    uid, gid). Each line is written (and flushed to the kernel, which keeps it across a
    SIGKILL) before the directory's first entry moves; ``sync`` makes the lines durable."""

    path: Path
    dirs: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: mount points below the root (:func:`mount_points`), for staging only
    mounts: frozenset[str] = frozenset()

    def add(self, rel: str, st: os.stat_result) -> None:
        meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"path": rel, "mode": meta[0], "uid": meta[1], "gid": meta[2]}) + "\n")
        self.dirs[rel] = meta

    def sync(self) -> None:
        if not self.dirs:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path) -> SplitLog:
        """Read the log; a torn last line (killed mid-write) is ignored: its directory had no
        entry moved yet. Paths are checked by the caller (:func:`plain_relative`)."""
        log = cls(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return log
        for line in text.splitlines():
            try:
                row = json.loads(line)
                log.dirs[str(row["path"])] = (int(row["mode"]) & 0o7777, int(row["uid"]), int(row["gid"]))
            except (ValueError, KeyError, TypeError):
                continue
        return log


def plain_relative(rel: str) -> bool:
    """A relative POSIX path with no empty, ``.`` or ``..`` component."""
    return bool(rel) and not rel.startswith("/") and not any(p in ("", ".", "..") for p in rel.split("/"))


def check_under_root(root: Path, rel: str, resolved: Optional[dict[str, bool]] = None) -> Path:
    """The absolute path for ``rel``, refusing anything that could leave ``root``.

    ``rel`` must be relative and free of ``..``; every directory above the entry must
    resolve inside root (a symlinked parent could redirect a rename elsewhere). The entry
    itself may be a symlink: it is moved as a link, never followed.

    :param resolved: remembers, per parent directory, whether it resolved where expected,
        for checking many paths at one moment (the check before the first change). The
        check right before each move is made afresh.
    :raises UnsafePath: the path escapes root or does not exist.
    """
    if not plain_relative(rel):
        raise UnsafePath(f"{rel!r}: not a plain path inside {root}; refusing to touch it")
    full = root / rel
    parent = os.path.dirname(rel)
    inside = resolved.get(parent) if resolved is not None else None
    if inside is None:
        expected = os.path.normpath(os.path.join(str(root), parent))
        inside = os.path.realpath(full.parent) == expected
        if resolved is not None:
            resolved[parent] = inside
    if not inside:
        raise UnsafePath(f"{rel}: a directory above it is a symlink leading outside {root}; refusing")
    if not os.path.lexists(full):
        raise UnsafePath(f"{rel}: no longer exists; re-run to plan again")
    return full


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def copy_name(dst: str) -> str:
    """The temporary name beside ``dst`` that :func:`move_file` copies to."""
    return os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}{_COPY_SUFFIX}")


def move_file(src: str, dst: str) -> None:
    """Rename a file or symlink; across filesystems (EXDEV) copy it exactly (content, mode,
    times, owner when root) to a temporary name beside ``dst``, rename that into place, then
    unlink ``src``. A crash leaves at worst both copies, which :class:`Restorer` recognises."""
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = copy_name(dst)
    if os.path.lexists(tmp):
        os.unlink(tmp)
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), tmp)
    else:
        shutil.copy2(src, tmp, follow_symlinks=False)
    if os.geteuid() == 0:
        os.lchown(tmp, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(tmp, stat.S_IMODE(st.st_mode))  # chown clears set-id bits
    os.rename(tmp, dst)
    os.unlink(src)


def mount_points(root: Path) -> frozenset[str]:
    """Mount points strictly below ``root`` (from /proc/self/mountinfo; none where it is absent).

    A directory holding one can be renamed, and the mount goes with it into the stash, where the
    commit would delete the mounted filesystem's files and then fail on the mount point: such a
    directory is split instead, and the mount point stays, emptied, as ``rm -rf`` leaves it.
    """
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return frozenset()
    base = os.path.realpath(root).rstrip("/") + "/"
    out = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point.startswith(base):
                out.add(point)
    return frozenset(out)


def _holds_mount(src: str, log: SplitLog) -> bool:
    if not log.mounts:
        return False
    real = os.path.realpath(src)
    return any(m == real or m.startswith(real + "/") for m in log.mounts)


def stage(root: Path, rel: str, dst: str, log: SplitLog) -> None:
    """Move ``root/rel`` to ``dst`` (which must not exist): one rename when the kernel allows,
    else the directory is split (see the module docstring)."""
    src = os.path.join(root, rel)
    if _holds_mount(src, log) and _is_dir(src):
        _split(src, rel, dst, log)
        return
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno not in REFUSED or not _is_dir(src):
            if exc.errno == errno.EXDEV:
                move_file(src, dst)
                return
            raise
    _split(src, rel, dst, log)


def _split(src: str, rel: str, dst: str, log: SplitLog) -> bool:
    """Stage the entries of directory ``src`` into a new ``dst``; returns whether ``src``
    itself could then be removed (not a mount point, nor above one that stays)."""
    log.add(rel, os.lstat(src))
    os.mkdir(dst, 0o700)
    with os.scandir(src) as it:
        names = sorted(e.name for e in it)
    removable = True
    for name in names:
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if _holds_mount(s, log) and _is_dir(s):
            removable = _split(s, f"{rel}/{name}", d, log) and removable
            continue
        try:
            os.rename(s, d)
        except OSError as exc:
            if exc.errno not in REFUSED:
                raise
            if _is_dir(s):
                removable = _split(s, f"{rel}/{name}", d, log) and removable
            elif exc.errno == errno.EXDEV:
                move_file(s, d)
            else:
                raise
    if not removable:
        return False
    try:
        os.rmdir(src)
    except OSError as exc:
        # A mount point cannot go; it stays, empty, as it would after a plain rm -rf.
        if exc.errno != errno.EBUSY:
            raise
        return False
    return True


def _same_content(a: str, b: str) -> bool:
    """Whether two paths hold the same thing (a crash between a copy and the unlink)."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    if sa.st_mode != sb.st_mode:
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if not stat.S_ISREG(sa.st_mode) or sa.st_size != sb.st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _rmtree_any(path: str) -> None:
    if _is_dir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


@dataclass
class Restorer:
    """Puts stashed paths back under ``root``, never writing outside it.

    ``aside`` is where recreated content found in the way is moved (inside the state
    directory); ``moved_aside`` and ``discarded`` list what happened, for the report.
    """

    root: Path
    aside: Path
    splits: dict[str, tuple[int, int, int]]
    moved_aside: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    parents_made: list[str] = field(default_factory=list)

    def restore(self, stashed: str, rel: str) -> bool:
        """Move ``stashed`` back to ``root/rel``; False when nothing was stashed there."""
        if not os.path.lexists(stashed):
            return False
        self.prepare_parents(rel)
        self._put(stashed, rel)
        return True

    def prepare_parents(self, rel: str) -> None:
        """Every directory above ``rel`` must be a real directory inside root: recreate the
        missing ones (from the split log when it knows them), refuse a symlink or a file."""
        parts = rel.split("/")[:-1]
        cur = str(self.root)
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            sub = "/".join(parts[: i + 1])
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                os.mkdir(cur, 0o700)
                self._set_meta(cur, self.splits.get(sub, (0o755, -1, -1)))
                self.parents_made.append(sub)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{sub}: is not a directory (a symlink or file replaced it); "
                                 f"refusing to restore {rel} through it")

    def _set_meta(self, path: str, meta: tuple[int, int, int]) -> None:
        """Give a directory its recorded mode and owner; nothing is written where they already
        match (a directory that never left, perhaps on a read-only mount)."""
        mode, uid, gid = meta
        st = os.lstat(path)
        if uid >= 0 and os.geteuid() == 0 and (st.st_uid, st.st_gid) != (uid, gid):
            os.lchown(path, uid, gid)
            st = os.lstat(path)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)

    def _put(self, stashed: str, rel: str) -> None:
        dst = os.path.join(self.root, rel)
        split = rel in self.splits and _is_dir(stashed)
        if os.path.lexists(dst) and not (split and _is_dir(dst)):
            self._clear(dst, rel, stashed)
            if not os.path.lexists(stashed):  # it was our own copy, already home
                return
        if not split:
            try:
                os.rename(stashed, dst)
            except OSError as exc:
                if exc.errno not in REFUSED:
                    raise
                if _is_dir(stashed):  # a directory that cannot go back whole: rebuild it
                    self.splits[rel] = _meta_of(stashed)
                    self._put(stashed, rel)
                else:
                    move_file(stashed, dst)
            return
        if not os.path.lexists(dst):
            os.mkdir(dst, 0o700)
        with os.scandir(stashed) as it:
            names = sorted(e.name for e in it)
        for name in names:
            if name.startswith(".") and name.endswith(_COPY_SUFFIX):
                os.unlink(os.path.join(stashed, name))  # a copy a kill interrupted: the original stayed
                continue
            self._put(os.path.join(stashed, name), f"{rel}/{name}")
        os.rmdir(stashed)
        self._set_meta(dst, self.splits[rel])

    def _clear(self, dst: str, rel: str, stashed: str) -> None:
        """Something is at ``dst`` where a stashed path must go back."""
        if _same_content(dst, stashed):
            os.unlink(stashed)  # a copy whose original was already unlinked... or never was
            return
        if "__pycache__" in rel.split("/"):
            # Any run of the environment's Python recreates caches; they are derived data.
            _rmtree_any(dst)
            self.discarded.append(rel)
            return
        target = self.aside / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(dst, target)
        self.moved_aside.append(rel)


def _meta_of(path: str) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
