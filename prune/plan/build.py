"""``build_plan``: the planner's steps, in order, each one call.

1. Refuse what cannot be planned (malformed options, minimal without a trace).
2. Tell the source reader which words the questions will be about (it may grep ahead).
3. One pass (:func:`_plan_once`): compile the rules; let the graph decide which
   distributions go; decide every file (:mod:`.decide`); keep what kept code needs
   (:func:`_keep_what_kept_code_needs`); collapse the decisions into actions (:mod:`.collapse`).
4. Keep beats removing a whole distribution: a pass that finds a kept file inside a
   distribution the graph removes keeps that distribution, and the plan is made again.
5. Refuse a plan that removes everything the user installed by name.

The planner reads no file itself: everything it learns from file contents comes through the
:class:`~prune.plan.sources.SourceReader` it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Optional

from ..errors import UsageError
from ..model import DistDecision, Inventory, Keep, Plan
from ..profiles import Knowledge, Profile, load_knowledge
from .collapse import collapse, records_after
from .decide import FilePass, decide_files
from .distributions import (
    RUN_MARKERS,
    decide_dists,
    dist_top_levels,
    distribution_sizes,
    refuse_removing_everything_named,
    requested_removed_warnings,
    root_distributions,
    with_kept_reasons,
)
from .importcheck import import_check, staying_test_code_needs
from .options import PlanOptions, check_options
from .protect import (
    LazyPaths,
    Protections,
    keep_for_environment_readers,
    keep_header_distributions,
    keep_kept_distributions_whole,
    keep_on_evidence,
    locators,
    pth_directories,
    pth_protected,
)
from .rules import RuleSet, compile_rules
from .sources import SourceReader, disk_reader
from .state import FileState, entry_field, file_states, owners_of, split_sites
from .traced import drop_orphaned_scripts, trace_keep_set, untraced_root_tops

__all__ = ["build_plan"]

_IS_LINK = entry_field("is_link")
#: How many passes may each find another distribution to keep before the plan stands.
_PASSES = 8


def build_plan(
    inventory: Inventory,
    profile: Profile,
    options: PlanOptions = PlanOptions(),
    *,
    sources: Optional[SourceReader] = None,
    knowledge: Optional[Knowledge] = None,
) -> Plan:
    """Plan a prune. Deterministic: the same inputs give the same plan.

    :param inventory: from :func:`prune.scan.scan`.
    :param profile: from :func:`prune.profiles.load_profile`.
    :param options: command-line additions (patterns, roots, overrides, traces).
    :param sources: how to read source code (:class:`prune.sources.DiskSources`, with its
        grep pre-filter, is what the pipeline passes; default: the files on disk, read plainly).
    :param knowledge: the knowledge base (default: the built-in one).
    :raises UsageError: the profile needs a trace and none was given; an unknown distribution
        name was passed; a required distribution was named for removal without ``force``.
    """
    check_options(options)
    if profile.requires_trace and not options.has_trace:
        raise UsageError(
            f"profile {profile.name!r} removes everything no trace reached, so it needs a trace; "
            "record one with 'venv-prune trace PATH -o trace.json -- CMD' and pass --keep-from trace.json"
        )
    knowledge = knowledge or load_knowledge()
    reader = sources if sources is not None else disk_reader(inventory)
    _announce_questions(reader, profile, options, knowledge)
    extra_keep: dict[str, str] = {}
    for _ in range(_PASSES):
        plan, needed = _plan_once(inventory, profile, options, reader, knowledge, extra_keep)
        if needed.keys() <= extra_keep.keys():
            break
        extra_keep = {**needed, **extra_keep}
    refuse_removing_everything_named(plan, options)
    return plan


def _announce_questions(sources: SourceReader, profile: Profile, options: PlanOptions,
                        knowledge: Knowledge) -> None:
    """Tell the reader the words its questions will be about, before the first one."""
    # Directory names the import check will ask about (tests, docs, ...), taken from the
    # import-checked rules' plain "name/" patterns.
    sources.hint(p.strip("/").encode() for r in profile.rules if r.import_check for p in r.patterns
                 if re.fullmatch(r"[A-Za-z_]\w*/", p))
    if any(r.evidence for r in profile.rules) or knowledge.readers:
        # Test code is never evidence (prune/imports.py is_evidence_file): not searched.
        sources.hint_group(locators(knowledge), skip_dirs=("tests", "test"))
    if profile.remove_distributions or profile.remove_dev_tools or options.remove_dists:
        # What kept code runs keeps distributions (kind C); test code is no evidence.
        sources.hint_group(RUN_MARKERS, skip_dirs=("tests", "test"))
    sources.prefetch()


def _plan_once(
    inventory: Inventory, profile: Profile, options: PlanOptions, sources: SourceReader,
    knowledge: Knowledge, extra_keep: Mapping[str, str],
) -> tuple[Plan, dict[str, str]]:
    """One planning pass. ``extra_keep`` maps distributions an earlier pass found needed
    (a kept file inside them) to the reason; the pass returns the same for itself."""
    named = set(options.keep_dists)
    if extra_keep:
        options = replace(options, keep_dists=tuple(sorted(named | set(extra_keep))))
    bytecode = options.bytecode or profile.bytecode
    rules = compile_rules(profile, options, knowledge, inventory, bytecode)
    # Distribution decisions first: a removed distribution takes all its files.
    decisions, tool_runs = decide_dists(inventory, profile, options, knowledge, sources,
                                        distribution_sizes(inventory.files))
    decisions = with_kept_reasons(decisions, extra_keep, named)
    removed = {d.name: d for d in decisions if d.remove}
    diagnostics = [*inventory.diagnostics, *requested_removed_warnings(decisions, options), *tool_runs]
    file_pass = _file_pass(inventory, profile, options, knowledge, sources, rules, decisions)
    states, needed = _decide_every_file(inventory, file_pass)
    _keep_what_kept_code_needs(states, inventory, sources, knowledge, removed, needed)
    if file_pass.root_tops or (profile.trace_minimal and options.has_trace):
        drop_orphaned_scripts(states, inventory, removed, profile.name)
    actions = collapse(states, inventory, removed, inventory.env.site_packages, options.trace_dirs)
    return Plan(
        inventory=inventory,
        profile=profile.name,
        actions=actions,
        kept=_kept(states, profile, options),
        distributions=decisions,
        records=records_after(inventory, actions, removed),
        diagnostics=tuple(diagnostics),
        options=(("bytecode", bytecode), ("strip", "yes" if profile.strip else "no"),
                 ("trace", "yes" if options.has_trace else "no")),
        roots=tuple(sorted(_roots(inventory, profile, options, knowledge, decisions))),
    ), needed


def _roots(inventory: Inventory, profile: Profile, options: PlanOptions, knowledge: Knowledge,
           decisions: Sequence[DistDecision]) -> frozenset[str]:
    """The root distributions (:func:`prune.plan.distributions.root_distributions`)."""
    dev_tools = [p for p, _ in knowledge.dev_tools] if profile.remove_dev_tools else ()
    return root_distributions(inventory, decisions, options.roots, profile.remove_distributions,
                              dev_tools=dev_tools)


def _file_pass(inventory: Inventory, profile: Profile, options: PlanOptions, knowledge: Knowledge,
               sources: SourceReader, rules: RuleSet, decisions: Sequence[DistDecision]) -> FilePass:
    """Everything the per-file pass decides with: protections, traces, root distributions."""
    removed = {d.name: d for d in decisions if d.remove}
    pth = frozenset(pth_protected(inventory, sources))
    protections = Protections(
        kind=inventory.env.kind,
        pth=pth, pth_below=pth_directories(pth),
        existing=LazyPaths(inventory),
        protect=rules.protect, protect_root=rules.protect_root, keep=rules.keep,
        keep_modules=tuple(m.replace(".", "/") for m in options.keep_modules),
        trace_kept=trace_keep_set(options, inventory) if options.has_trace else frozenset(),
    )
    # minimal never takes a root's untraced top-level module without a word (issue 15, case 8).
    root_tops: Mapping[str, Mapping[str, str]] = {}
    root_files: Mapping[str, str] = {}
    if profile.trace_minimal and options.has_trace:
        roots = _roots(inventory, profile, options, knowledge, decisions)
        root_tops, root_files = untraced_root_tops(inventory, options, removed, sources, roots)
    return FilePass(profile=profile, options=options, knowledge=knowledge, env_kind=inventory.env.kind,
                    rules=rules, protections=protections, removed_dists=removed,
                    root_tops=root_tops, root_files=root_files)


def _decide_every_file(inventory: Inventory, file_pass: FilePass) -> tuple[list[FileState], dict[str, str]]:
    """A state per file, decided (:func:`prune.plan.decide.decide_files`)."""
    files = inventory.files
    site_of, subs = split_sites(files, inventory.env.site_packages)
    owners = owners_of(files, site_of, subs)
    states = file_states(files, site_of, subs, owners)
    needed = decide_files(states, subs, site_of, owners, list(map(_IS_LINK, files)), file_pass)
    return states, needed


def _keep_what_kept_code_needs(states: list[FileState], inventory: Inventory, sources: SourceReader,
                               knowledge: Knowledge, removed: Mapping[str, DistDecision],
                               needed: dict[str, str]) -> None:
    """Keep what kept code imports or reads, among the files rules would remove: the import
    check, evidence, environment-wide readers, distributions kept whole; and mark ``needed``
    the removed distributions that test code which stays imports."""
    # Entry points are imports too: plugin discovery loads them by module name at run time
    # (networkx names networkx.classes.tests.dispatch_interface as a backend).
    ep_modules = {ep.value.split(":", 1)[0].strip() for d in inventory.distributions
                  if d.name not in removed for ep in d.entry_points}
    import_check(states, sources, frozenset(ep_modules))
    # Environment-wide readers first: what a header they keep includes is evidence's question.
    keep_for_environment_readers(states, inventory, removed, knowledge)
    kept_on_evidence = keep_on_evidence(states, sources, knowledge)
    if kept_on_evidence:
        # What evidence kept is kept code: its imports may save another matched directory.
        import_check(states, sources, seeds=kept_on_evidence)
    keep_header_distributions(states, removed)
    keep_kept_distributions_whole(states, removed)
    if removed:
        # The graph's static scan skips test directories (code only tests run does not keep a
        # distribution). A test file that stays after all (kept code imports it, a keep
        # pattern, a protection or a trace saves it) is evidence again: its imports may need a
        # distribution the graph was about to remove, and the plan is made again.
        owner_of_top = {top: d.name for d in inventory.distributions if d.name in removed
                        for top in dist_top_levels(d, inventory.env.site_packages)}
        staying_test_code_needs(states, sources, owner_of_top, needed)


def _kept(states: Sequence[FileState], profile: Profile, options: PlanOptions) -> tuple[Keep, ...]:
    """What a rule (or minimal) would have removed but something keeps, with why."""
    untraced_kept = profile.trace_minimal and options.has_trace
    return tuple(
        Keep(st.entry.path, st.entry.size,
             st.remove_rule.rule.id if st.remove_rule is not None else "minimal-untraced",
             st.saved_by, st.saved_reason, st.owner)
        for st in states
        if st.saved_by and (st.remove_rule is not None or (untraced_kept and st.site is not None))
    )
