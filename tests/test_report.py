"""The report package in memory: a hand-built plan, every section in every format (fast tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune.env import Environment
from prune.model import Action, Diagnostic, DistDecision, Distribution, FileEntry, Inventory, Keep, Plan
from prune.report import FORMATS, Extras, human_bytes, render, summarise

SITE = "lib/python3.11/site-packages"


def _dist(name: str, *, installer: str = "pip") -> Distribution:
    return Distribution(name=name, display_name=name, version="1.0", metadata_dir=f"{SITE}/{name}-1.0.dist-info",
                        site=SITE, files=(), top_level=(name,), requires=(), extras=(), entry_points=(),
                        requested=True, editable=False, installer=installer)


def _plan(*, removed_share: bool = True, installer: str = "pip") -> Plan:
    """app (kept, 3 files), lib (its tests removed by a rule, a header kept on evidence), an
    unowned file at the root; pip goes whole when ``removed_share``."""
    env = Environment(root=Path("/opt/venv"), kind="venv", site_packages=(SITE,), python=None,
                      python_version=(3, 11), scripts_dir="bin", walk=(SITE,))
    files = [
        FileEntry(f"{SITE}/app/__init__.py", 1000, owner="app"),
        FileEntry(f"{SITE}/app/data/big.bin", 150_000, owner="app"),
        FileEntry(f"{SITE}/lib/__init__.py", 200, owner="lib"),
        FileEntry(f"{SITE}/lib/api.h", 300, owner="lib"),
        FileEntry(f"{SITE}/lib/tests/test_a.py", 4000, owner="lib"),
        FileEntry(f"{SITE}/lib/tests/test_b.py", 6000, owner="lib"),
        FileEntry("pyvenv.cfg", 100),
    ]
    dists = [_dist("app", installer=installer), _dist("lib", installer=installer)]
    actions = [Action(f"{SITE}/lib/tests", "dir", 10_000, 2, "tests", "tests/", "safe", "lib", "test code")]
    decisions = [DistDecision("app", "1.0", False, 151_000, "root (REQUESTED)"),
                 DistDecision("lib", "1.0", False, 10_500, "required by app 1.0", chain=("app",))]
    if removed_share:
        dists.append(_dist("pip"))
        files.insert(6, FileEntry(f"{SITE}/pip/__init__.py", 90_000, owner="pip"))
        actions.append(Action(f"{SITE}/pip", "dir", 90_000, 1, "distribution", "pip", "safe", "pip",
                              "removable", trace=True))
        decisions.append(DistDecision("pip", "26.0", True, 90_000, "removed: nothing needs it"))
    files.sort()
    kept = [Keep(f"{SITE}/lib/api.h", 300, "c-sources", "evidence:file-name", "lib's code names 'api.h'", "lib"),
            Keep(f"{SITE}/app/data/big.bin", 150_000, "docs", "trace", "traced", "app")]
    inv = Inventory(env=env, distributions=tuple(dists), files=tuple(files),
                    dirs=(SITE, f"{SITE}/app", f"{SITE}/lib"))
    return Plan(inventory=inv, profile="safe", actions=tuple(sorted(actions, key=lambda a: a.path)),
                kept=tuple(kept), distributions=tuple(decisions),
                diagnostics=(Diagnostic("warning", "odd", "caf\udce9 is odd", f"{SITE}/lib"),))


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 1024**2, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3072.0 GiB"]


def test_summary_sections() -> None:
    d = summarise(_plan())
    t = d["totals"]
    assert (t["bytes_before"], t["bytes_removed"], t["bytes_after"]) == (251_600, 100_000, 151_600)
    assert [r["rule"] for r in d["rules"]] == ["distribution", "tests"]
    rows = {r["name"]: r for r in d["distributions"]}
    assert set(rows) == {"app", "lib", "pip", "(unowned)"}  # a row even where nothing goes
    assert rows["lib"]["bytes_before"] == 10_500 and rows["lib"]["bytes_after"] == 500
    assert rows["pip"]["bytes_removed_by_trace"] == 90_000 and rows["app"]["bytes_kept_by_trace"] == 150_000
    assert [g["saved_by"] for g in d["kept_on_evidence"]] == ["evidence:file-name"]
    assert [p["saved_by"] for p in d["protected"]] == ["trace", "evidence:file-name"]
    # Top-level entries per site (prune.paths.top_entry), and the root's own files.
    assert d["largest_kept"] == [{"path": f"{SITE}/app", "bytes": 151_000}, {"path": f"{SITE}/lib", "bytes": 500},
                                 {"path": "pyvenv.cfg", "bytes": 100}]
    assert d["diagnostics"][0]["message"] == "caf\\xe9 is odd"  # undecodable bytes escaped
    assert d["already_lean"] is None and "max_size" not in d


def test_real_run_extras_reach_every_format() -> None:
    extras = Extras(dry_run=False, verification="failed (rolled back)",
                    failures=({"kind": "module", "name": "app", "distribution": "app", "error": "boom",
                               "rules": ["tests"]},),
                    timings=(("scan", 0.5), ("verify", 1.5), ("total", 2.0)),
                    stripped=({"path": f"{SITE}/app/data/big.bin", "bytes_saved": 1000},),
                    bytecode={"summary": "compiled 2 files", "bytes_added": 600}, max_size=150_000,
                    verified={"modules": 3, "entry_points": 1, "checks": 0,
                              "not_verified": [{"kind": "distribution", "name": "pip"}]})
    d = summarise(_plan(), extras)
    assert d["totals"]["bytes_after"] == 251_600 - 100_000 - 1000 + 600
    assert d["max_size"] == {"limit": 150_000, "exceeded": True}
    assert {r["name"]: r["bytes_saved_by_strip"] for r in d["distributions"]}["app"] == 1000
    assert d["verification"]["checked"] == {"modules": 3, "entry_points": 1, "checks": 0}
    text = render(_plan(), "text", extras)
    for line in ("  would have removed (rolled back) 97.7 KiB", "  verification: failed (rolled back)",
                 "    not verified, removed on purpose: distribution pip", "  time: 2.0s (scan 0.5s, verify 1.5s, "
                 "verification 75.0% of it)", "  BROKEN module app (app): boom", "    removed by: tests",
                 "Stripped 1 ELF files, 1000 B saved", "Bytecode: compiled 2 files", "Size gate: ", ": EXCEEDED"):
        assert line in text, (line, text)
    markdown = render(_plan(), "markdown", extras)
    assert "## Verification failures" in markdown and "- module `app`: boom (removed by tests)" in markdown
    assert json.loads(render(_plan(), "json", extras)) == json.loads(json.dumps(d))


def test_text_sections_in_order_and_verbose() -> None:
    quiet, verbose = render(_plan(), "text"), render(_plan(), "text", verbose=True)
    headings = ["By rule:", "By distribution", "Distributions: 1 would go", "Matched a rule but protected:",
                "Kept because kept code reads them", "Largest things that stay:", "Diagnostics:"]
    assert [quiet.index(h) for h in headings] == sorted(quiet.index(h) for h in headings)
    assert "Actions:" not in quiet and f"{SITE}/lib/tests/  [tests: tests/]" in verbose
    assert "  - pip 26.0 (87.9 KiB): removed: nothing needs it" in quiet
    assert "  = lib 1.0 kept: required by app 1.0" in quiet


def test_an_environment_already_lean_says_why() -> None:
    d = summarise(_plan(removed_share=False, installer="uv"))
    assert d["already_lean"]["installer"] == "uv" and "pip" in d["already_lean"]["absent"]
    text = render(_plan(removed_share=False, installer="uv"), "text")
    assert "Why so little goes: the environment is already lean (installed by uv" in text
    assert "uv installs no pip" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_ends_with_a_newline(fmt: str) -> None:
    out = render(_plan(), fmt)
    assert out.endswith("\n") and not out.endswith("\n\n")
