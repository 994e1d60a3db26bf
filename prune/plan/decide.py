"""The per-file pass: for every file, which removal claims it, and what keeps it.

A file of a distribution the graph removes goes with it (unless the user said to keep part
of it: then the distribution is kept, and the plan made again). Any other file is asked
every removal rule of its scope (last match wins), then every protection in order of
precedence (:class:`prune.plan.protect.Protections`); with a trace, the trace-gated profiles
remove what no run reached (:mod:`prune.plan.traced`).

This loop runs once per file of the environment (100k and more), so the rule of every file is
asked up front with ``map`` (C), and a file nothing claims costs the loop one test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from .._match import Matcher
from ..model import DistDecision
from ..profiles import Knowledge, Profile
from .options import PlanOptions
from .protect import Protections
from .rules import RuleSet, claim_link
from .state import FileState, Removal, indexes, rule_removal
from .traced import trace_gated

__all__ = ["FilePass", "decide_files"]


@dataclass(frozen=True)
class FilePass:
    """What the per-file pass decides with. ``removed_dists``: the graph's removals;
    ``root_tops``/``root_files``: what minimal keeps of root distributions
    (:func:`prune.plan.traced.untraced_root_tops`)."""

    profile: Profile
    options: PlanOptions
    knowledge: Knowledge
    env_kind: str
    rules: RuleSet
    protections: Protections
    removed_dists: Mapping[str, DistDecision]
    root_tops: Mapping[str, Mapping[str, str]]
    root_files: Mapping[str, str]

    @property
    def gated(self) -> bool:
        """Whether a trace may remove files no rule claims (optional data, minimal)."""
        return self.options.has_trace and (self.profile.optional_data or self.profile.trace_minimal)


def _distribution_removal(st: FileState, p: FilePass, needed: dict[str, str]) -> Removal:
    """The removal of a file whose distribution goes; a file the user said to keep (a keep
    pattern, a trace, ``--keep-module``) marks the distribution ``needed``."""
    owner = st.owner
    if st.site is not None and owner not in needed:
        keeper = p.protections.user_keeper(st.sub, st.entry.path)
        if keeper is not None:
            needed[owner] = f"kept: {keeper} keeps {st.sub}"
    return Removal("distribution", owner, "profile" if owner in p.profile.remove_distributions else "graph",
                   owner, False)


def _claim(st: FileState, rule: Optional[Matcher], link: bool, p: FilePass) -> None:
    """Set the removal rule that claims the file (and, for an import-checked one, its
    fallback). ``rule``: the file's claim asked up front (ignored for a link, which also
    matches as a directory)."""
    in_site = st.site is not None
    if link:
        claim_link(st, p.rules.removal_rules(in_site).matchers)
    else:
        st.remove_rule = rule
        if rule is not None and rule.rule.import_check:
            st.fallback_rule = p.rules.fallback(in_site).first(st.sub)


def _decide(st: FileState, p: FilePass, gated: bool) -> None:
    """Protect, trace-gate or remove a claimed file (or, with a trace, any file in a site)."""
    if st.remove_rule is None and not (gated and st.site is not None):
        return
    reason = p.protections.keeper(st)
    if reason:
        st.saved_by, st.saved_reason = reason
    elif st.remove_rule is None:
        if p.options.has_trace and st.site is not None:
            trace_gated(st, p.profile, p.options, p.knowledge, p.root_tops, p.root_files)
    else:
        st.removal = rule_removal(st.remove_rule, st.owner)


def decide_files(states: Sequence[FileState], subs: Sequence[str], site_of: Sequence[Optional[str]],
                 owners: Sequence[str], links: Sequence[bool], p: FilePass) -> dict[str, str]:
    """Decide every file. The sequences run parallel to ``states``. Returns the removed
    distributions that a kept file inside them needs kept (distribution -> reason)."""
    needed: dict[str, str] = {}
    rules = p.rules
    # Every file's removal rule, asked without a Python statement per file: a file nothing
    # claims (often nearly half of them) then costs the loop below one test.
    claims = list(map(rules.remove_in_site.first, subs))
    for i in indexes(list(site_of), None):
        claims[i] = rules.remove_outside.first(subs[i])
    gated = p.gated
    removed = p.removed_dists
    # In a prefix (/usr/local) only site-packages and the scripts in bin/ are ours: other
    # prefix directories (share/, include/) may belong to the system.
    in_prefix = p.env_kind == "prefix"
    for st, rule, owner, link in zip(states, claims, owners, links):
        if rule is None and not link and not gated and owner not in removed:
            continue
        if in_prefix and st.site is None and not st.entry.path.startswith("bin/"):
            continue
        if owner in removed:
            st.removal = _distribution_removal(st, p, needed)
            continue
        _claim(st, rule, link, p)
        _decide(st, p, gated)
    return needed
