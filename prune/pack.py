"""Reproducible archives of a (pruned) environment: ``venv-prune pack PATH -o FILE``.

Two packs of the same tree are byte-identical, whoever runs them and whenever: entries are
sorted, ownership is root's with no names, modes are normalised, mtimes are clamped, and the
gzip header carries no name and no time. What is *not* normalised is content, symlink targets
and the exec bit — the things that decide whether the environment works.

Time stamps follow the reproducible-builds convention for ``SOURCE_DATE_EPOCH``: an entry newer
than the epoch gets the epoch, an older one keeps its own time. Without the variable (or an
explicit ``epoch``) the epoch is :data:`DEFAULT_EPOCH`, 0 (1970-01-01), which sets every
entry's time to 0.

Caveat on bytecode: a timestamp-based ``.pyc`` records its source's mtime; once the archive
changes that mtime, Python treats the ``.pyc`` as stale and recompiles on import. The result
lists such files in ``stale_bytecode``; use ``--bytecode compile`` (unchecked-hash ``.pyc``
files, PEP 552) or ``--bytecode drop`` before packing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import ApplyFailed, EnvironmentNotFound, PendingJournal, PruneError, UsageError

__all__ = ["ARCHIVE_SUFFIXES", "DEFAULT_EPOCH", "PackResult", "pack", "resolve_epoch"]

DEFAULT_EPOCH = 0
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")

_DIR_MODE = 0o755
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_LINK_MODE = 0o777
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack` wrote.

    ``entries`` counts archive members (directories, files, symlinks); ``bytes`` is the total
    size of the files' content; ``archive_bytes`` and ``sha256`` describe the archive itself.
    ``epoch`` is the clamp time used. ``stale_bytecode`` lists timestamp-based ``.pyc`` files
    (POSIX, relative to the root) whose source's recorded mtime the archive changes.
    """

    output: Path
    compression: str | None
    entries: int
    files: int
    bytes: int
    archive_bytes: int
    sha256: str
    epoch: int
    stale_bytecode: tuple[str, ...] = ()


def resolve_epoch(epoch: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The clamp time: ``epoch`` if given, else ``SOURCE_DATE_EPOCH``, else :data:`DEFAULT_EPOCH`.

    :raises UsageError: ``SOURCE_DATE_EPOCH`` is not a non-negative integer, or ``epoch`` < 0.
    """
    if epoch is not None:
        if epoch < 0:
            raise UsageError(f"--epoch {epoch}: must be a non-negative number of seconds")
        return epoch
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_EPOCH
    if not raw.isdigit():
        raise UsageError(
            f"SOURCE_DATE_EPOCH={raw!r}: not a whole number of seconds since 1970; "
            "set it to e.g. $(git log -1 --format=%ct) or unset it"
        )
    return int(raw)


def _compression(output: Path) -> str | None:
    name = output.name
    if name.endswith((".tar.gz", ".tgz")):
        return "gz"
    if name.endswith(".tar"):
        return None
    raise UsageError(
        f"{output}: unsupported archive type; name the output FILE.tar or FILE.tar.gz"
    )


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` depth-first, each directory before its contents, names
    sorted by their bytes (locale-independent), symlinks not followed."""
    base = root / rel if rel else root
    names = sorted(os.listdir(base), key=os.fsencode)
    for name in names:
        child = f"{rel}/{name}" if rel else name
        st = os.lstat(root / child)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, child)


def _is_stale_pyc(root: Path, rel: str, data_head: bytes, packed_mtime: Mapping[str, int]) -> bool:
    """A timestamp-based ``__pycache__/NAME.TAG.pyc`` whose ``NAME.py`` the archive re-dates."""
    if len(data_head) < 16 or int.from_bytes(data_head[4:8], "little") != 0:
        return False  # too short, or hash-based (PEP 552): independent of mtimes
    parts = rel.split("/")
    if len(parts) < 2 or parts[-2] != "__pycache__":
        return False
    source = "/".join([*parts[:-2], parts[-1].split(".", 1)[0] + ".py"])
    if source not in packed_mtime:
        return False
    recorded = int.from_bytes(data_head[8:12], "little")
    return recorded != packed_mtime[source] & 0xFFFFFFFF


def _tarinfo(name: str, st: os.stat_result, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = min(int(st.st_mtime), epoch)
    return info


def _write(root: Path, fh: IO[bytes], epoch: int, prefix: str) -> tuple[int, int, int, tuple[str, ...]]:
    entries = files = total = 0
    mtimes: dict[str, int] = {}
    pycs: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        if prefix:
            parts = prefix.split("/")
            for i in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:i]))
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, _DIR_MODE, epoch
                tar.addfile(info)
                entries += 1
        for rel, st in _walk(root):
            name = f"{prefix}/{rel}" if prefix else rel
            info = _tarinfo(name, st, epoch)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                info.type, info.mode = tarfile.SYMTYPE, _LINK_MODE
                info.linkname = os.readlink(root / rel)
                tar.addfile(info)
            elif stat.S_ISDIR(mode):
                info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
                tar.addfile(info)
            elif stat.S_ISREG(mode):
                # Hard links (uv links from its cache) are stored as plain files: the archive
                # must not depend on what else shares an inode.
                info.type = tarfile.REGTYPE
                info.mode = _EXEC_MODE if mode & 0o111 else _FILE_MODE
                info.size = st.st_size
                with open(root / rel, "rb") as src:
                    if rel.endswith(".pyc"):
                        pycs.append((rel, src.read(16)))
                        src.seek(0)
                    tar.addfile(info, src)
                files += 1
                total += st.st_size
                mtimes[rel] = int(info.mtime)
            else:
                raise UsageError(
                    f"{root / rel}: a socket, FIFO or device file cannot be packed; remove it "
                    "from the tree first"
                )
            entries += 1
    stale = tuple(sorted(rel for rel, head in pycs if _is_stale_pyc(root, rel, head, mtimes)))
    return entries, files, total, stale


def pack(
    root: Path,
    output: Path,
    *,
    epoch: int | None = None,
    prefix: str = "",
) -> PackResult:
    """Write a reproducible ``.tar`` or ``.tar.gz`` (``.tgz``) of the tree at ``root``.

    Members are the tree's contents (not ``root`` itself), named relative to it, optionally
    under ``prefix`` (``opt/venv`` gives ``opt/venv/bin/python``, for ``ADD FILE /``). PAX
    format; directories 0755, files 0644 or 0755 when any exec bit is set, symlinks stored as
    links with their target unchanged; uid/gid 0, no user or group names; mtimes clamped to
    :func:`resolve_epoch`; gzip level 6 with mtime 0 and no file name. The archive is written
    to a temporary file beside ``output`` and renamed into place.

    :raises EnvironmentNotFound: ``root`` is not a directory.
    :raises ApplyFailed: a file could not be read or the archive written (nothing is left).
    :raises PendingJournal: the tree holds an interrupted run's state; ``recover`` first.
    :raises UsageError: bad output extension, output inside ``root``, a bad prefix or epoch,
        or a special file (socket, FIFO, device) in the tree.
    """
    compression = _compression(output)
    clamp = resolve_epoch(epoch)
    real_root, target, prefix = _checked(root, output, prefix)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            if compression == "gz":
                # filename="" and mtime=0 keep the gzip header free of names and times.
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                   compresslevel=_GZIP_LEVEL, mtime=0) as gz:
                    counts = _write(real_root, gz, clamp, prefix)  # type: ignore[arg-type]
            else:
                counts = _write(real_root, raw, clamp, prefix)
        os.chmod(tmp, 0o644)
        digest = _sha256(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, PruneError):
            # An unreadable file in the tree, a full disk (issue 16: a traceback, exit 1).
            where = exc.filename or output
            raise ApplyFailed(f"pack: {where}: {exc.strerror or exc}; nothing was written "
                              f"to {output}") from exc
        raise
    entries, files, total, stale = counts
    return PackResult(
        output=target,
        compression=compression,
        entries=entries,
        files=files,
        bytes=total,
        archive_bytes=target.stat().st_size,
        sha256=digest,
        epoch=clamp,
        stale_bytecode=stale,
    )


def _checked(root: Path, output: Path, prefix: str) -> tuple[Path, Path, str]:
    """The real root, where the archive goes (resolved) and the member prefix, checked.

    :raises EnvironmentNotFound, PendingJournal, UsageError: as :func:`pack` says.
    """
    if not root.is_dir():
        raise EnvironmentNotFound(f"{root}: no such directory; pass the tree to pack")
    for state in (".venv-prune", ".venv-prune-bytecode"):
        if os.path.lexists(root / state):
            # An interrupted prune or --bytecode compile: its stash or scratch caches would be
            # packed as if they were the environment's (issue 16).
            raise PendingJournal(f"{root}: holds an interrupted run's state ({state}); run "
                                 f"'venv-prune recover {root}' before packing")
    prefix = prefix.strip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise UsageError(f"--prefix {prefix}: must be a plain relative path such as opt/venv")
    real_root = root.resolve()
    target = output.parent.resolve() / output.name
    if target == real_root or real_root in target.parents:
        raise UsageError(f"{output}: lies inside the tree being packed; write it elsewhere")
    if not target.parent.is_dir():
        raise UsageError(f"{output}: directory {output.parent} does not exist; create it first")
    return real_root, target, prefix


def _sha256(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

