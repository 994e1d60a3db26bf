"""``venv-prune profiles [NAME]``: list the built-in profiles, or print one's resolved rules."""

from __future__ import annotations

from typing import Optional

import click

__all__ = ["profiles_command"]


@click.command("profiles")
@click.argument("name", required=False)
def profiles_command(name: Optional[str]) -> None:
    """List the built-in profiles, or print the resolved rules of NAME (or a .toml file).

    \b
    Examples:
      venv-prune profiles
      venv-prune profiles aggressive
      venv-prune profiles ./my-profile.toml
    """
    from ..profiles import list_profiles, load_profile

    if not name:
        for pname, desc in list_profiles():
            click.echo(f"{pname:<11} {desc}")
        return
    prof = load_profile(name)
    click.echo(f"profile {prof.name}  ({' -> '.join(prof.chain)}; {prof.source})")
    click.echo(f"  {prof.description}")
    settings = {
        "remove_distributions": ", ".join(prof.remove_distributions) or "-",
        "remove_dev_tools": prof.remove_dev_tools, "strip": prof.strip, "bytecode": prof.bytecode,
        "optional_data (trace-gated)": prof.optional_data, "requires_trace": prof.requires_trace,
    }
    for k, v in settings.items():
        click.echo(f"  {k}: {v}")
    click.echo("rules (patterns relative to site-packages; root-scope ones to the environment root):")
    for r in prof.rules:
        flags = f" scope={r.scope}" if r.scope != "any" else ""
        flags += " import-check" if r.import_check else ""
        flags += " evidence" if r.evidence else ""
        click.echo(f"  [{r.action}] {r.id} (from {r.profile}){flags}")
        click.echo(f"      {' '.join(r.patterns)}")
        click.echo(f"      {r.reason}")
    _echo_knowledge()


def _echo_knowledge() -> None:
    """What the knowledge base always protects, and the readers it knows."""
    from ..profiles import load_knowledge

    kb = load_knowledge()
    click.echo("always protected (knowledge base):")
    for p in kb.protect:
        when = f" when {', '.join(p.when)} installed" if p.when else ""
        scope = " (relative to the environment root)" if p.scope == "root" else ""
        click.echo(f"  {p.id}: {' '.join(p.patterns)}{scope}{when}")
    if kb.readers:
        click.echo("read at run time beside the calling module (knowledge base):")
        for rd in kb.readers:
            click.echo(f"  {rd.id}: code calling {rd.call}() reads the {rd.suffix} file beside it")
