"""From per-file decisions to the plan's actions: a directory whose every file goes (for one
rule and one owner) becomes a single action, and each kept distribution that loses files
gets its RECORD's new contents listed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .._match import Matcher
from ..model import Action, DistDecision, Inventory, within_any
from ..paths import site_relative
from .state import FileState, Removal

__all__ = ["collapse", "records_after"]


@dataclass
class _Tally:
    """Per directory (relative to the root, "" the root): ``total`` files below it,
    ``removed`` of them going, their ``bytes``, and the distinct removals (``keys``)."""

    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    keys: dict[str, set[Removal]] = field(default_factory=lambda: defaultdict(set))

    def goes_whole_by_one(self, d: str) -> bool:
        return self.removed[d] == self.total[d] and len(self.keys[d]) == 1


def _structural(inv: Inventory, removed_dists: Container[str], sites: Sequence[str]) -> set[str]:
    """Directories never removed as a whole: the root, the site-packages directories and the
    directories above them, ``bin``/``lib``/``lib64`` (and in a prefix ``include``/``share``),
    and kept distributions' metadata directories."""
    structural = {""}
    for s in sites:
        parts = s.split("/") if s else []
        for i in range(len(parts) + 1):
            structural.add("/".join(parts[:i]))
    structural |= {"bin", "lib", "lib64", "include", "share"} if inv.env.kind == "prefix" else {"bin", "lib", "lib64"}
    for dist in inv.distributions:
        if dist.name not in removed_dists:
            structural.add(dist.metadata_dir)
    return structural


def _tally(states: Sequence[FileState], parents: Sequence[str]) -> tuple[_Tally, dict[str, Matcher]]:
    """The counts of every directory, and the matcher of each rule a removal names (for its
    pattern and directory test). Each file is counted in its own directory, then every
    directory's counts are added into its parent, deepest first (one pass per directory
    rather than one per file and ancestor)."""
    tally = _Tally()
    tally.total.update(Counter(parents))
    matcher_for: dict[str, Matcher] = {}
    for st, parent in zip(states, parents):
        key = st.removal
        if key is None:
            continue
        tally.removed[parent] += 1
        tally.bytes[parent] += st.entry.size
        tally.keys[parent].add(key)
        rule = st.remove_rule
        if rule is not None and key.rule not in matcher_for and key.rule == rule.rule.id:
            matcher_for[key.rule] = rule
    every = set(tally.total)
    for d in list(tally.total):
        while d and "/" in d:
            d = d.rsplit("/", 1)[0]
            if d in every:
                break
            every.add(d)
    every.add("")
    for d in sorted(every, key=lambda x: -x.count("/") if x else 1):
        if not d:
            continue
        parent = d.rsplit("/", 1)[0] if "/" in d else ""
        tally.total[parent] += tally.total[d]
        if tally.removed.get(d):
            tally.removed[parent] += tally.removed[d]
            tally.bytes[parent] += tally.bytes[d]
            tally.keys[parent] |= tally.keys[d]
    return tally, matcher_for


def _whole_directories(tally: _Tally, structural: Container[str], listed: Container[str],
                       matcher_for: Mapping[str, Matcher], sites: Sequence[str]) -> set[str]:
    """The directories removed as one action: every file goes under one removal and the
    directory itself may go (:func:`_dir_goes_whole`); the shallowest of nested ones."""
    keys = tally.keys
    whole: set[str] = set()
    for d in sorted(tally.total, key=lambda x: x.count("/")):
        if d in structural or not d:
            continue
        if tally.removed[d] == tally.total[d] and len(keys[d]) > 1:
            # An untraced directory whose files go under several rules goes whole, as
            # minimal-untraced: leaving it empty would keep an importable namespace package.
            untraced = [k for k in keys[d] if k.rule == "minimal-untraced"]
            if untraced:
                keys[d] = {untraced[0]}
        if len(keys[d]) == 1 and next(iter(keys[d])).rule == "minimal-untraced" and d in listed:
            # A directory a traced run listed must still exist afterwards, even empty
            # (knowledge-base optional data units are the exception: they go whole).
            continue
        if tally.goes_whole_by_one(d) and _dir_goes_whole(d, next(iter(keys[d])), matcher_for, sites):
            if not _below_any(d, whole):
                whole.add(d)
    return whole


def _below_any(d: str, whole: Container[str]) -> bool:
    """Whether a directory above ``d`` is already taken whole."""
    anc = d.rsplit("/", 1)[0] if "/" in d else ""
    while anc:
        if anc in whole:
            return True
        anc = anc.rsplit("/", 1)[0] if "/" in anc else ""
    return False


def collapse(
    states: list[FileState], inv: Inventory, removed_dists: Mapping[str, DistDecision],
    sites: Sequence[str], listed: frozenset[str] = frozenset(),
) -> tuple[Action, ...]:
    """Turn per-file decisions into actions, sorted by path; a directory whose every file
    goes (for one rule and one owner) becomes a single action. ``listed``: directories a
    traced run listed (kept, even empty)."""
    parents = [st.entry.path.rpartition("/")[0] for st in states]
    tally, matcher_for = _tally(states, parents)
    whole = _whole_directories(tally, _structural(inv, removed_dists, sites), listed, matcher_for, sites)
    covered_by_whole = within_any(whole)  # whole is complete from here on
    actions: list[Action] = []
    for d in sorted(whole):
        (key,) = tally.keys[d]
        actions.append(_action(d, "dir", tally.bytes[d], tally.removed[d], key, matcher_for, removed_dists, d))
    for st, parent in zip(states, parents):
        if st.removal is None or covered_by_whole(parent):
            continue
        kind = "link" if st.entry.is_link else "file"
        actions.append(_action(st.entry.path, kind, st.entry.size, 1, st.removal, matcher_for,
                               removed_dists, st.sub))
    actions.sort(key=lambda a: a.path)
    return tuple(actions)


def _dir_goes_whole(d: str, key: Removal, matcher_for: Mapping[str, Matcher], sites: Sequence[str]) -> bool:
    """Whether a directory whose files all go may itself go.

    Yes when its whole distribution goes, when trace-gated data or minimal removes it, or
    when the rule's pattern matches the directory itself ("tests/", "__pycache__/"). A
    directory emptied by file patterns ("*.pc") stays: an empty directory is still an
    importable namespace package, and entry points may name it (numpy's
    ``numpy._core.lib.pkgconfig`` entry point taught us this).
    """
    if key.rule == "distribution" or key.rule.startswith("optional:") or key.rule == "minimal-untraced":
        return True
    m = matcher_for.get(key.rule)
    if m is None:
        return False
    found = site_relative(d, sites)
    sub = found[1] if found else d
    return m.match(sub + "/")


def _action(path: str, kind: str, nbytes: int, nfiles: int, key: Removal,
            matcher_for: Mapping[str, Matcher], removed_dists: Mapping[str, DistDecision], sub: str) -> Action:
    """The action removing ``path``; ``sub``: the path relative to its site (for the pattern)."""
    if key.rule == "distribution":
        dec = removed_dists[key.owner]
        return Action(path, kind, nbytes, nfiles, "distribution", f"{dec.name} {dec.version}",
                      key.profile, key.owner, dec.reason, False)
    pattern = key.pattern
    m = matcher_for.get(key.rule)
    if m is not None and not pattern:
        pattern = m.pattern_for(sub + "/" if kind == "dir" else sub)
        reason = m.rule.reason
    elif key.rule == "minimal-untraced":
        reason = "not reached by any trace (profile minimal)"
    else:
        reason = "optional data no trace reached"
    return Action(path, kind, nbytes, nfiles, key.rule, pattern, key.profile, key.owner, reason, key.traced)


def records_after(
    inv: Inventory, actions: Iterable[Action], removed_dists: Container[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For each kept distribution that loses files: its RECORD path and the removed entries
    (paths relative to the root), so apply can rewrite RECORD to list what remains."""
    by_owner: dict[str, list[str]] = defaultdict(list)
    for a in actions:
        if a.distribution and a.distribution not in removed_dists:
            by_owner[a.distribution].append(a.path)
    out: list[tuple[str, tuple[str, ...]]] = []
    for dist in inv.distributions:
        gone = by_owner.get(dist.name)
        if not gone or not dist.has_record:
            continue
        out.append((f"{dist.metadata_dir}/RECORD", tuple(sorted(gone))))
    return tuple(out)
