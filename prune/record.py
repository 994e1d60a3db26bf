"""Read and rewrite a distribution's RECORD file (PEP 376 / PEP 627).

RECORD is CSV: ``path,hash,size``. Paths are relative to the site-packages directory that
holds the ``.dist-info`` (``../../../bin/x`` for scripts). The csv module does the quoting;
only the filtering of rows is ours.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Iterable
from typing import Optional

__all__ = ["read_paths", "read_rows", "render_rows", "resolve_entry", "resolve_entries"]


def read_rows(text: str) -> list[list[str]]:
    """Parse RECORD text into rows (malformed rows are kept as they are, blank ones dropped)."""
    return [row for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]


def read_paths(text: str) -> list[str]:
    """The first field of every row :func:`read_rows` keeps: the paths a RECORD lists.

    Without a quote, a carriage return or a NUL in the text, the csv module splits each line
    at every comma and nothing else, so the lines are split directly (a 100k-file
    environment's RECORDs parse in a third of the time); otherwise the csv module reads it.
    """
    if '"' in text or "\r" in text or "\0" in text:
        return [row[0] for row in read_rows(text)]
    return [first for first in (line.partition(",")[0] for line in text.split("\n")) if first.strip()]


def render_rows(rows: Iterable[list[str]]) -> str:
    """Serialise rows the way pip writes RECORD (``\\n`` line endings, minimal quoting)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def resolve_entry(site: str, entry: str) -> Optional[str]:
    """Map a RECORD path to a path relative to the environment root.

    ``site`` is the site-packages directory relative to the root ("" when the root is the
    site-packages). Returns None for absolute paths and for paths that leave the root: those
    are never ours to touch.
    """
    entry = entry.replace("\\", "/")
    if not entry or entry.startswith("/") or (len(entry) > 1 and entry[1] == ":"):
        return None
    if "/." not in "/" + entry and "//" not in entry and not entry.endswith("/"):
        # Already normal (no ".", "..", empty or trailing parts): the common case, joined
        # without normpath.
        return f"{site}/{entry}" if site else entry
    joined = posixpath.normpath(posixpath.join(site, entry)) if site else posixpath.normpath(entry)
    if joined == ".." or joined.startswith("../") or joined == ".":
        return None
    return joined


def resolve_entries(site: str, entries: Iterable[str]) -> list[str]:
    """:func:`resolve_entry` for every entry, dropping the None ones; the common entry (no
    backslash, no ``.`` or empty part, no drive) is joined inline, without a call per
    entry: a 100k-file environment has 100k RECORD entries."""
    prefix = f"{site}/" if site else ""
    out: list[str] = []
    for entry in entries:
        if (entry and entry[0] not in "./" and entry[-1] != "/" and entry[1:2] != ":"
                and "\\" not in entry and "/." not in entry and "//" not in entry):
            out.append(prefix + entry)
        else:
            resolved = resolve_entry(site, entry)
            if resolved is not None:
                out.append(resolved)
    return out
