"""The layer rule: on a container image's overlay filesystem, deleting a file that an earlier
layer holds does not make that layer smaller (issue 14).

An image is a stack of layers; a ``RUN`` that deletes a file from an earlier layer writes a
whiteout into its own layer, and the earlier layer keeps every byte. Bytes leave the image only
when a later stage copies the environment (``COPY --from=builder``) or the prune runs in the
same ``RUN`` that installed the files. Docker's overlay2, BuildKit's overlayfs snapshotter and
podman all mount the build's root filesystem as ``overlay``; this module finds the filesystem of
the mount that holds a path from ``/proc/self/mountinfo`` (proc(5): the fields after the ``-``
separator are the filesystem type, the source and the super-block options).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["LAYER_RULE", "filesystem_type", "layer_note"]

MOUNTINFO = "/proc/self/mountinfo"

#: One line, said in the text and JSON reports when the environment lies on overlayfs.
LAYER_RULE = ("the environment lies on overlayfs (a container build): deleting files that an earlier "
              "layer (an earlier RUN) holds does not shrink that layer; copy the environment into a "
              "later stage (COPY --from=builder) or prune in the same RUN as the install")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040, \011, \012, \134).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str | os.PathLike[str], mountinfo: str = MOUNTINFO) -> Optional[str]:
    """The filesystem type (``"overlay"``, ``"ext4"``...) of the mount holding ``path``: the
    mount point that is the longest prefix of its real path (later lines win at equal length,
    as later mounts hide earlier ones). ``None`` when ``mountinfo`` cannot be read or parsed."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(os.fspath(path))
    best: Optional[tuple[int, str]] = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = _unescape(fields[4])
        inside = point == "/" or real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), tail[0])
    return best[1] if best else None


def layer_note(root: str | os.PathLike[str], mountinfo: str = MOUNTINFO) -> Optional[str]:
    """:data:`LAYER_RULE` when ``root`` lies on an overlay mount, else ``None``."""
    fstype = filesystem_type(Path(root), mountinfo)
    return LAYER_RULE if fstype in ("overlay", "fuse-overlayfs", "fuse.fuse-overlayfs") else None
