"""The rules of one plan, compiled for matching: the profile's removal and keep rules, the
command line's ``--keep``/``--remove`` patterns, and the knowledge base's protections that
apply to this environment.

Matching is :mod:`prune._match`'s (a dict per pattern shape instead of a regex per rule).
Among removal rules the last match wins, as in ``.gitignore``; a rule's scope says whether
it applies inside site-packages, outside, or both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from packaging.utils import canonicalize_name

from .._match import FirstMatch, Matcher, ProtectionMatcher
from ..errors import UsageError
from ..model import Inventory
from ..profiles import Knowledge, Profile, Protection, Rule, make_rule
from .options import PlanOptions
from .state import FileState

__all__ = ["RuleSet", "active_protections", "claim_link", "compile_rules", "remove_pattern_lists",
           "shallowest_match"]


def remove_pattern_lists(patterns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """``--remove`` patterns as one ordered list, last match wins (``.gitignore``): a
    ``!pattern`` re-includes what earlier ``--remove`` patterns matched, so each earlier
    pattern's rule carries it (``--remove '*.md' --remove '!README.md'``). Returns (index,
    patterns) per positive pattern, so rule ids stay ``cli-remove-N`` by position.

    :raises UsageError: a negation with no earlier ``--remove`` pattern re-includes nothing
        (Serverless ``slimPatterns`` users write ``'!x'`` to keep x: that is ``--keep x``).
    """
    lists: list[tuple[int, list[str]]] = []
    for i, pat in enumerate(patterns):
        if pat.startswith("!"):
            if not lists:
                raise UsageError(f"--remove {pat!r}: a negation only re-includes what an earlier --remove "
                                 f"matched; to keep a path, write --keep {pat[1:]!r}")
            for _, pats in lists:
                pats.append(pat)
        else:
            lists.append((i, [pat]))
    return lists


def active_protections(knowledge: Knowledge, inventory: Inventory) -> list[Protection]:
    """The knowledge base's protections that apply: those without ``when``, and those whose
    ``when`` names an installed distribution."""
    installed = {d.name for d in inventory.distributions}
    return [p for p in knowledge.protect
            if not p.when or any(canonicalize_name(w) in installed for w in p.when)]


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules. ``remove``/``fallback``: by whether a path lies in site-packages, the
    removal rules in precedence order (last rule first), and those of them that are not
    import-checked (what applies when the import check saves a tests/ directory);
    ``keep``: keep rules; ``protect``/``protect_root``: the protections that match paths
    relative to a site-packages directory, and those (``scope = "root"``, share/jupyter)
    that match paths from the root."""

    remove_in_site: FirstMatch
    remove_outside: FirstMatch
    fallback_in_site: FirstMatch
    fallback_outside: FirstMatch
    keep: FirstMatch
    protect: FirstMatch
    protect_root: FirstMatch

    def removal_rules(self, in_site: bool) -> FirstMatch:
        return self.remove_in_site if in_site else self.remove_outside

    def fallback(self, in_site: bool) -> FirstMatch:
        return self.fallback_in_site if in_site else self.fallback_outside


def _command_line_rules(options: PlanOptions) -> list[Rule]:
    rules = [make_rule(f"cli-keep-{i + 1}", "keep", [pat], "--keep on the command line", profile="command line")
             for i, pat in enumerate(options.keep)]
    rules += [make_rule(f"cli-remove-{i + 1}", "remove", pats, "--remove on the command line",
                        profile="command line")
              for i, pats in remove_pattern_lists(options.remove)]
    return rules


def compile_rules(profile: Profile, options: PlanOptions, knowledge: Knowledge, inventory: Inventory,
                  bytecode: str) -> RuleSet:
    """The rule set of one plan (``bytecode``: the chosen handling; ``keep`` drops the
    profile's bytecode rule).

    :raises UsageError: a lone ``--remove`` negation (:func:`remove_pattern_lists`).
    """
    rules = [r for r in profile.rules if not (r.id == "bytecode" and bytecode == "keep")]
    rules += _command_line_rules(options)
    removing = [Matcher(r) for r in rules if r.action == "remove"]
    protections = [ProtectionMatcher(p) for p in active_protections(knowledge, inventory)]
    in_site = FirstMatch(m for m in reversed(removing) if m.rule.scope != "root")
    outside = FirstMatch(m for m in reversed(removing) if m.rule.scope != "site")
    return RuleSet(
        remove_in_site=in_site,
        remove_outside=outside,
        fallback_in_site=FirstMatch(m for m in in_site.matchers if not m.rule.import_check),
        fallback_outside=FirstMatch(m for m in outside.matchers if not m.rule.import_check),
        keep=FirstMatch(Matcher(r) for r in rules if r.action == "keep"),
        protect=FirstMatch(m for m in protections if m.protection.scope != "root"),
        protect_root=FirstMatch(m for m in protections if m.protection.scope == "root"),
    )


def claim_link(st: FileState, in_order: Sequence[Matcher]) -> None:
    """Set the removal rule (and fallback) of a symlink, which also matches as ``link/``: a
    symlink to a directory matches directory patterns ("tests/") as the link itself, and
    only the link is ever removed, never what it points at.

    ``in_order``: the removal rules of the link's scope, last rule first.
    """
    sub = st.sub
    for m in in_order:
        if m.match(sub) or m.match(sub + "/"):
            if st.remove_rule is None:
                st.remove_rule = m
                if not m.rule.import_check:
                    return
            elif not m.rule.import_check:
                st.fallback_rule = m
                return


def shallowest_match(rule: Matcher, directory: str) -> Optional[str]:
    """The shallowest of ``directory`` and its ancestors that ``rule`` matches as a
    directory, or None."""
    parts = directory.split("/") if directory else []
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if rule.match(d + "/"):
            return d
    return None
