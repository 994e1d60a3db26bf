#!/usr/bin/env python3
"""Write the dry-run JSON plan of each benchmark environment and generated tree, for every
built-in profile, so two commits can be compared byte for byte (issue 18: a remodel changes
no plan).

    python tools/plan_snapshot.py OUTDIR [--venv-prune CMD] [--env PATH ...]
    diff -r BEFORE AFTER

Environments default to benchmarks/work/envs/* and benchmarks/work/scale/gen-30000 (build them
with ``python benchmarks/run.py --envs all --build-only`` and
``python benchmarks/scale.py --sizes 30000 --generate-only``). The ``timings`` section (wall
times) is dropped; everything else is written as the command printed it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("safe", "standard", "aggressive")


def default_envs() -> list[Path]:
    work = ROOT / "benchmarks" / "work"
    envs = sorted(p for p in (work / "envs").glob("*") if p.is_dir())
    gen = work / "scale" / "gen-30000"
    return envs + ([gen] if gen.is_dir() else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--venv-prune", default=str(Path(sys.executable).parent / "venv-prune"),
                   help="command that runs venv-prune (default: beside this Python)")
    p.add_argument("--env", type=Path, action="append", help="an environment (repeatable)")
    args = p.parse_args(argv)
    envs = args.env or default_envs()
    if not envs:
        print("plan_snapshot: no environments; build the benchmark environments first", file=sys.stderr)
        return 2
    args.outdir.mkdir(parents=True, exist_ok=True)
    for env in envs:
        for profile in PROFILES:
            cmd = [*shlex.split(args.venv_prune), str(env), "--profile", profile, "--dry-run",
                   "--format", "json", "-q"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            plan = json.loads(proc.stdout)
            plan.pop("timings", None)
            out = args.outdir / f"{env.name}-{profile}.json"
            out.write_text(json.dumps(plan, indent=1, sort_keys=False) + "\n")
            print(f"{out.name}: exit {proc.returncode}, {plan['totals'].get('percent_removed')}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
