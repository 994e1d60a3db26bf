"""How much each built-in profile removes now against an earlier commit, on the benchmark
environments: dry runs side by side in one run, percent of each environment's bytes removed
(files plus the strip estimate). A report, never a gate.

    python benchmarks/removal_vs.py 483d25e            # against the commit before issue 15
    python benchmarks/removal_vs.py 483d25e --envs torch,flaskdev

The earlier commit is checked out into a temporary git worktree and run from its source with
this checkout's interpreter (the runtime dependencies are the same); "now" is this checkout.
The environments are the ones ``benchmarks/run.py --build-only`` builds under work/envs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENVS = ("boto3", "django", "flaskdev", "sci", "torch", "web")
PROFILES = ("safe", "standard", "aggressive")


def percent_removed(source: Path, env: Path, profile: str) -> float:
    """Dry-run ``venv-prune ENV --profile PROFILE`` from the package at ``source``."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from prune.cli import main; "
            "sys.argv = ['venv-prune', *sys.argv[2:]]; sys.exit(main())")
    proc = subprocess.run([sys.executable, "-c", code, str(source), str(env), "--profile", profile,
                           "--dry-run", "--format", "json", "-q"],
                          capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    totals = json.loads(proc.stdout)["totals"]
    removed = totals["bytes_removed"] + (totals.get("bytes_saved_by_strip") or 0)
    return 100.0 * removed / totals["bytes_before"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the earlier commit")
    parser.add_argument("--envs", default=",".join(ENVS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="removal-vs-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.rev], check=True)
        try:
            print(f"| environment | profile | {args.rev} % | now % | points |")
            print("|---|---|---:|---:|---:|")
            for name in args.envs.split(","):
                env = HERE / "work" / "envs" / name
                for profile in PROFILES:
                    before, now = percent_removed(old, env, profile), percent_removed(REPO, env, profile)
                    print(f"| {name} | {profile} | {before:.2f} | {now:.2f} | {now - before:+.2f} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
