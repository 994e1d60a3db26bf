"""Planning with a trace (``--keep-from``): what traced runs reached is kept, and the
profiles that act on traces (aggressive's optional data, minimal's "everything no trace
reached") remove what they did not reach, within limits: a root distribution's untraced
top-level module is kept whole, with what it imports, and a program a package starts from
native code (invisible to a trace) stays (issue 15, case 8).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from typing import Optional

from ..model import Inventory
from ..paths import site_relative
from ..profiles import Knowledge, Profile
from .distributions import dist_top_levels
from .options import PlanOptions
from .sources import SourceReader
from .state import FileState, Removal

__all__ = ["drop_orphaned_scripts", "trace_gated", "trace_keep_set", "untraced_root_tops"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _top_name(sub: str) -> str:
    """The top-level module a site-relative path belongs to (``a/b.py``, ``a.py``,
    ``a.cpython-312-x86_64-linux-gnu.so`` -> ``a``)."""
    first, _, rest = sub.partition("/")
    if first == "__pycache__":  # a top-level module's cache: __pycache__/six.cpython-312.pyc
        return rest.split(".", 1)[0]
    if rest:
        return first
    return first[:-3] if first.endswith(".py") else first.split(".", 1)[0]


def untraced_root_tops(
    inventory: Inventory, options: PlanOptions, removed: Container[str], sources: SourceReader,
    roots: Container[str] = frozenset(),
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """What minimal keeps of the root distributions beyond what the traces reached:
    (root -> {top-level module: why it is kept whole}, {path: why it is kept}).

    Roots are the distributions named with ``--root``, else those installed by name
    (REQUESTED). A root's top-level module that no trace imported is kept whole: a trace
    licenses removing what a run did not reach inside what it used, not a root the user
    installed for a reason the trace never exercised (issue 15, case 8: a trace of a Flask app
    let minimal remove gunicorn, whose bin/gunicorn then pointed at a missing module). A
    console or GUI script of a root whose module no trace imported keeps that module. What
    the modules kept this way import (statically, transitively, package ``__init__`` chains
    included) is kept too; verification then imports the root's modules and loads its
    scripts' entry points, so a dynamic import the static scan missed rolls back.
    ``roots``: from :func:`root_distributions`.
    """
    sites = inventory.env.site_packages
    tops: dict[str, dict[str, str]] = {}
    scripts: dict[str, str] = {}  # untraced script module -> why
    for dist in inventory.distributions:
        if dist.name not in roots or dist.name in removed:
            continue
        # Reached: a trace used one of the root's own files there (a namespace package such
        # as google/ is shared, so the top-level name alone says nothing).
        reached = set()
        for path in dist.files:
            if path in options.trace_paths:
                found = site_relative(path, sites)
                if found is not None:
                    reached.add(_top_name(found[1]))
        why: dict[str, str] = {}
        for top in sorted(dist_top_levels(dist, sites)):
            if top not in reached:
                why[top] = (f"root {dist.name}: no trace imported {top}, so minimal keeps it whole; "
                            f"trace what uses it, or pass --remove-dist {dist.name}")
        if why:
            tops[dist.name] = why
            for path in dist.files:
                found = site_relative(path, sites)
                if found is None or _top_name(found[1]) not in why:
                    continue
                module = _module_name_of(found[1])
                if module is not None:
                    scripts.setdefault(module, f"root {dist.name} keeps {module.split('.', 1)[0]} "
                                               "whole, and it imports this")
        for ep in dist.entry_points:
            module = ep.value.split(":", 1)[0].strip()
            if (ep.group in ("console_scripts", "gui_scripts") and module
                    and module not in options.trace_modules and module.split(".", 1)[0] not in why):
                scripts.setdefault(module, f"root {dist.name}: its script {ep.name} runs {module}, which "
                                           "no trace ran; kept with what it imports")
    files: dict[str, str] = {}
    if scripts:
        files = _import_closure(inventory, sources, scripts)
    return tops, files


def _module_name_of(sub: str) -> Optional[str]:
    """The dotted module a site-relative ``.py`` or extension file defines, or None."""
    if not sub.endswith((".py", ".so", ".pyd")):
        return None
    stem = sub[:-3] if sub.endswith(".py") else sub.split(".", 1)[0]
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts and all(_IDENT.match(x) for x in parts):
        return ".".join(parts)
    return None


def drop_orphaned_scripts(states: Sequence[FileState], inventory: Inventory,
                           removed: Container[str], profile_name: str) -> None:
    """Under minimal, a console or GUI script whose module a trace licensed removing goes with
    it, said in the report, instead of staying behind pointing at a missing module (issue 15,
    case 8). A root's scripts never get here: minimal keeps their modules."""
    env = inventory.env
    if not env.scripts_dir:
        return
    by_path = {st.entry.path: st for st in states}
    for dist in inventory.distributions:
        if dist.name in removed:
            continue
        for ep in dist.entry_points:
            if ep.group not in ("console_scripts", "gui_scripts"):
                continue
            module = ep.value.split(":", 1)[0].strip()
            script = by_path.get(f"{env.scripts_dir}/{ep.name}")
            if not module or script is None or script.removal is not None or script.owner != dist.name:
                continue
            rel = module.replace(".", "/")
            files = [by_path.get(f"{site}/{rel}{tail}" if site else f"{rel}{tail}")
                     for site in env.site_packages for tail in (".py", "/__init__.py")]
            found = [st for st in files if st is not None]
            if found and all(st.removal is not None and st.removal.traced for st in found):
                script.removal = Removal("minimal-untraced", f"(script {ep.name}: no trace ran {module}, "
                                         "which minimal removes)", profile_name, dist.name, True)


def _import_closure(inventory: Inventory, sources: SourceReader,
                    start: Mapping[str, str]) -> dict[str, str]:
    """path -> why, for the files of the modules in ``start`` (module -> why), of the modules
    they import (statically, transitively) and of every package ``__init__`` above them."""
    sites = inventory.env.site_packages
    module_file: dict[str, str] = {}
    for fe in inventory.files:
        found = site_relative(fe.path, sites)
        module = _module_name_of(found[1]) if found is not None else None
        if module is not None:
            module_file.setdefault(module, fe.path)
    out: dict[str, str] = {}
    todo = list(start.items())
    seen: set[str] = set()
    while todo:
        module, why = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen:
                continue
            seen.add(name)
            path = module_file.get(name)
            if path is None:
                continue
            out.setdefault(path, why)
            if path.endswith(".py"):
                todo.extend((m, why) for m in sources.imports(path))
    return out


def trace_keep_set(options: PlanOptions, inventory: Inventory) -> frozenset[str]:
    """Every path a trace reached, plus each imported module's source and __init__ chain."""
    kept = set(options.trace_paths)
    sites = inventory.env.site_packages
    existing = {fe.path for fe in inventory.files}
    for path in list(kept):
        found = site_relative(path, sites)
        if found is None:
            continue
        site, sub = found
        # A reached module keeps its source and every package __init__ above it.
        base = sub
        if "/__pycache__/" in f"/{sub}":
            head, _, tail = sub.rpartition("__pycache__/")
            base = head + tail.split(".", 1)[0] + ".py"
        parts = base.split("/")
        for i in range(1, len(parts)):
            init = "/".join(parts[:i]) + "/__init__.py"
            kept.add(f"{site}/{init}" if site else init)
        if base.endswith((".py", ".pyc")):
            src = base[:-1] if base.endswith(".pyc") else base
            kept.add(f"{site}/{src}" if site else src)
        if base != sub:
            # A cache the run happened to read is still only a cache: the bytecode choice
            # (drop/keep/compile) decides about it, not the trace.
            kept.discard(path)
    for mod in options.trace_modules:
        rel = mod.replace(".", "/")
        for site in sites:
            for cand in (f"{rel}.py", f"{rel}/__init__.py"):
                full = f"{site}/{cand}" if site else cand
                if full in existing:
                    kept.add(full)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                init = "/".join(parts[:i]) + "/__init__.py"
                kept.add(f"{site}/{init}" if site else init)
    return frozenset(kept)


def trace_gated(
    st: FileState, profile: Profile, options: PlanOptions, knowledge: Knowledge,
    root_tops: Optional[Mapping[str, Mapping[str, str]]] = None,
    root_files: Optional[Mapping[str, str]] = None,
) -> None:
    """Optional data (aggressive) and everything unreached (minimal), given a trace."""
    sub = st.sub
    if profile.optional_data:
        for opt in knowledge.optional:
            if not sub.startswith(opt.under):
                continue
            unit = sub[len(opt.under):].split("/", 1)[0]
            if not unit or unit in opt.keep or unit + "/" in opt.keep:
                return
            unit_prefix = (f"{st.site}/" if st.site else "") + opt.under + unit
            if any(p == unit_prefix or p.startswith(unit_prefix + "/") for p in options.trace_paths):
                return
            st.removal = Removal(f"optional:{opt.id}", opt.under + "*", profile.name, st.owner, True)
            return
    if profile.trace_minimal:
        if st.entry.path.endswith(".pth") or sub.endswith(".pth"):
            return
        why = (root_tops or {}).get(st.owner, {}).get(_top_name(sub)) or (root_files or {}).get(st.entry.path)
        if why is not None:
            st.saved_by, st.saved_reason = "root", why
            return
        name = sub.rsplit("/", 1)[-1]
        if st.entry.executable and ".so" not in name and not name.endswith((".py", ".pyc", ".pyd")):
            # A program inside a package (torch/bin/torch_shm_manager) is started by native
            # code with exec, where no audit hook sees it: a trace cannot vouch for it.
            st.saved_by, st.saved_reason = ("executable", "a program the package may start from native code "
                                            "(exec is invisible to a trace)")
            return
        st.removal = Removal("minimal-untraced", "(not reached by any trace)", profile.name, st.owner, True)
