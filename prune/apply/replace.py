"""Replacements: files swapped in by the transaction, prepared before the first move.

Two kinds: every touched distribution's RECORD, rewritten without the entries of what goes and
with the new hash and size of each replaced file (PEP 376); and files a ``prepare`` callback
produces after the baseline (stripped copies of libraries). Both are written into the state
directory's ``prepared/`` and journalled as ``replace`` steps; staging moves the original into
the stash and renames the new file into place, so a rollback restores the original.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..model import Plan
from ..record import read_rows, render_rows, resolve_entry

__all__ = ["PREPARED", "Prepare", "Replacement", "prepare_replacements"]

#: The state directory's subdirectory for new files.
PREPARED = "prepared"


@dataclass(frozen=True)
class Replacement:
    """Swap the file at ``path`` (relative to root) for the prepared file ``new_file``.

    ``new_file`` must be on the same filesystem (apply moves it with rename); ``detail``
    is free text for the report (e.g. "stripped: 1.2 MiB saved").
    """

    path: str
    new_file: Path
    bytes_saved: int = 0
    detail: str = ""


#: Called with a scratch directory on the stash's filesystem; returns files to swap in.
Prepare = Callable[[Path], Sequence[Replacement]]


def _file_hash(path: Path) -> tuple[str, int]:
    """RECORD's ``sha256=<urlsafe base64, unpadded>`` digest of a file, and its size."""
    import base64
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode(), size


def _new_record(root: Path, record_rel: str, removed: Sequence[str], site: str,
                updates: Optional[dict[str, tuple[str, int]]] = None) -> str:
    """RECORD text without the entries at or under a removed path; replaced files get their
    new hash and size (PEP 376)."""
    updates = updates or {}
    text = (root / record_rel).read_text(encoding="utf-8", errors="surrogateescape")
    removed_set = set(removed)

    def gone(p: str) -> bool:
        probe = p
        while True:
            if probe in removed_set:
                return True
            if "/" not in probe:
                return False
            probe = probe.rsplit("/", 1)[0]

    rows = []
    for row in read_rows(text):
        resolved = resolve_entry(site, row[0])
        if resolved is not None and gone(resolved):
            continue
        if resolved is not None and resolved in updates and len(row) >= 3:
            digest, size = updates[resolved]
            row = [row[0], digest, str(size)] + row[3:]
        rows.append(row)
    return render_rows(rows)


def _record_updates(plan: Plan, replacements: Sequence[Replacement]) -> dict[str, dict[str, tuple[str, int]]]:
    """RECORD path -> {replaced path: (new digest, new size)} for each replaced file's owner."""
    owner_of = {f.path: f.owner for f in plan.inventory.files if f.owner}
    record_of = {d.name: d.metadata_dir + "/RECORD" for d in plan.inventory.distributions if d.has_record}
    updates: dict[str, dict[str, tuple[str, int]]] = {}
    for rep in replacements:
        rec = record_of.get(owner_of.get(rep.path, ""), "")
        if rec:
            updates.setdefault(rec, {})[rep.path] = _file_hash(rep.new_file)
    return updates


def prepare_replacements(root: Path, sdir: Path, plan: Plan,
                         replacements: Sequence[Replacement]) -> tuple[list[dict[str, str]], int]:
    """Write the rewritten RECORDs into ``sdir/prepared``; return the journal's ``replace``
    steps (RECORDs first, then ``replacements``) and how many RECORDs were rewritten.

    A RECORD inside a removed path, or no longer a file, is left alone.
    """
    prepared = sdir / PREPARED
    site_of = {d.metadata_dir + "/RECORD": d.site for d in plan.inventory.distributions}
    updates = _record_updates(plan, replacements)
    records = dict(plan.records)
    for rec in updates:
        records.setdefault(rec, ())
    steps: list[dict[str, str]] = []
    for j, (record_rel, removed) in enumerate(sorted(records.items())):
        if any(record_rel == a.path or record_rel.startswith(a.path + "/") for a in plan.actions):
            continue
        if not (root / record_rel).is_file():
            continue
        new = prepared / f"record{j:05d}"
        new.write_text(_new_record(root, record_rel, removed, site_of.get(record_rel, ""),
                                   updates.get(record_rel)),
                       encoding="utf-8", errors="surrogateescape")
        steps.append({"op": "replace", "path": record_rel, "stash": f"r{j:05d}",
                      "new": str(new.relative_to(sdir))})
    records_rewritten = len(steps)
    for k, rep in enumerate(replacements):
        steps.append({"op": "replace", "path": rep.path, "stash": f"x{k:05d}",
                      "new": os.path.relpath(rep.new_file, sdir)})
    return steps, records_rewritten
