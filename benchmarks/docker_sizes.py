#!/usr/bin/env python3
"""Image sizes of real Docker builds: the web and scientific stacks, pruned each way (issue 14).

    python benchmarks/docker_sizes.py                 # both stacks, every method; writes RESULTS.md
    python benchmarks/docker_sizes.py --stacks web    # one stack

For each stack (``benchmarks/envs/STACK.txt``, a full pinned lock) one builder installs the lock
into ``/opt/venv`` in one ``RUN``; a later ``RUN`` then applies one method: nothing, the
hand-written find recipe (as a Dockerfile ``RUN`` runs it: ``/bin/sh``, dash, where its
``{pip,setuptools,wheel}*`` brace expansion does nothing), or ``venv-prune --profile P`` for
safe, standard and aggressive (verification on); aggressive strips ELF files only where
binutils' ``strip`` exists, which ``python:3.x-slim`` and this base lack, so it is measured as
written and with binutils installed in the builder (``aggressive+binutils``). The runtime
stage is the bare base plus ``COPY --from=builder /opt/venv /opt/venv``, as the README's
Dockerfiles have it. Measured:
``docker image inspect``'s Size of the runtime image and the size of that venv layer in
``docker history`` (what the layer costs to store and pull, uncompressed).

The install step is the same instruction on the same parent for every method, so Docker's layer
cache installs each stack once. Results: ``results/docker_sizes.json`` and a section of
``RESULTS.md`` (re-rendered by ``_report.py``). Needs root and a Docker engine
(``tools/docker_engine.sh`` provides both); not part of CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import _common as c  # noqa: E402
import docker_support as ds  # noqa: E402

STACKS = ("web", "sci")
METHODS = ("none", "recipe", "safe", "standard", "aggressive", "aggressive+binutils")
RESULTS_JSON = c.RESULTS_DIR / "docker_sizes.json"

DOCKERFILE = """\
FROM {builder} AS builder
COPY requirements.txt /tmp/
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY venv-prune-dist/ /tmp/venv-prune-dist/
RUN pip install /tmp/venv-prune-dist/{wheel}
RUN {step}
FROM {runtime}
COPY --from=builder /opt/venv /opt/venv
"""


def step_for(method: str) -> str:
    if method == "none":
        return "true"
    if method == "recipe":
        return c.RECIPE.replace("V", "/opt/venv")
    if method == "aggressive+binutils":
        # aggressive strips ELF files with binutils' strip, which python:3.x-slim lacks.
        return ("apt-get update && apt-get install -y --no-install-recommends binutils "
                "&& venv-prune /opt/venv --profile aggressive")
    return f"venv-prune /opt/venv --profile {method}"


def measure(stack: str, method: str, images: tuple[str, str], wheel: Path, work: Path) -> dict:
    ctx = work / f"{stack}-{method}"
    ctx.mkdir()
    shutil.copyfile(BENCH / "envs" / f"{stack}.txt", ctx / "requirements.txt")
    shutil.copytree(wheel.parent, ctx / "venv-prune-dist")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(
        builder=images[1], runtime=images[0], wheel=wheel.name, step=step_for(method)))
    tag = f"venv-prune-bench/{stack}:{method.replace('+', '-')}"
    start = time.monotonic()
    output = ds.build(ctx, tag, timeout=3600)
    took = time.monotonic() - start
    # The stack's own check, in the runtime image, as an unprivileged user with no network.
    workload = BENCH / "workloads" / f"{stack}.py"
    check = ds.run(tag, "/opt/venv/bin/python", "-B", f"/w/{workload.name}", user="10001",
                   mounts=((workload.parent, "/w"),), timeout=900)
    return {
        "image_bytes": ds.image_size(tag),
        "venv_layer_bytes": ds.layer_size(tag),
        "build_seconds": round(took, 1),
        "workload": "ok" if check.returncode == 0 else f"FAILED: {(check.stderr.strip().splitlines() or ['?'])[-1]}",
        "report": [ln.strip() for ln in output.splitlines()
                   if ln.strip().startswith(("removed ", "verification:", "layers:"))],
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def render_section(data: dict) -> str:
    """The RESULTS.md section for ``results/docker_sizes.json``."""
    lines = ["## Docker image sizes (issue 14)\n",
             "Runs: " + "; ".join(f"`{r['command']}` on {r['date']} (UTC) at `{r['revision']}`"
                                  for r in data["runs"]) + ". "
             f"Base `{data['base']}` (Debian bookworm minbase, Python 3.11, via debootstrap; "
             f"the runtime stage's base alone is {_mb(data['base_bytes'])} MB).\n",
             "Each image: a builder installs the stack's pinned lock into /opt/venv, a later `RUN` "
             "applies the method, the runtime stage is the base plus `COPY --from=builder /opt/venv "
             "/opt/venv`. *image* = `docker image inspect` Size of the runtime image; *venv layer* = "
             "that COPY layer in `docker history` (uncompressed MB, 10^6 bytes); *saved* = the venv "
             "layer's reduction from no prune. *workload* = `benchmarks/workloads/STACK.py` run in "
             "the runtime image as uid 10001 with `--network none`. The recipe runs under /bin/sh as "
             "a `RUN` line does. *aggressive* strips ELF files only where binutils' `strip` exists, "
             "which python:3.x-slim and this base lack (the report warns); *aggressive+binutils* "
             "installs binutils in the builder first.\n",
             "| stack | method | image MB | venv layer MB | saved | workload |",
             "|---|---|---:|---:|---:|---|"]
    for stack, methods in data["stacks"].items():
        base = methods.get("none", {}).get("venv_layer_bytes")
        for method, r in methods.items():
            if "error" in r:
                lines.append(f"| {stack} | {method} | – | – | – | build failed: {r['error']} |")
                continue
            saved = (f"{100 * (1 - r['venv_layer_bytes'] / base):.1f}%" if base and method != "none" else "")
            lines.append(f"| {stack} | {method} | {_mb(r['image_bytes'])} | {_mb(r['venv_layer_bytes'])} "
                         f"| {saved} | {r['workload']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stacks", default=",".join(STACKS), help="comma-separated: web,sci")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ",".join(METHODS))
    p.add_argument("--no-render", action="store_true", help="do not re-render RESULTS.md")
    args = p.parse_args(argv)
    try:
        base = ds.ensure_engine()
    except ds.EngineUnavailable as exc:
        print(f"docker_sizes: {exc}", file=sys.stderr)
        return 2
    images = ds.slim_base(base)
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {"stacks": {}}
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip() or "?"
    with tempfile.TemporaryDirectory(prefix="venv-prune-docker-sizes-") as tmp:
        work = Path(tmp)
        wheel = ds.build_wheel(work / "dist")
        for stack in args.stacks.split(","):
            results = data["stacks"].setdefault(stack, {})
            for method in args.methods.split(","):
                print(f"docker_sizes: {stack} / {method} ...", file=sys.stderr, flush=True)
                try:
                    results[method] = measure(stack, method, images, wheel, work)
                except ds.BuildFailed as exc:
                    last = [ln for ln in exc.output.splitlines() if ln.strip()][-1:] or ["?"]
                    results[method] = {"error": last[0][:200]}
                print(f"  {results[method]}", file=sys.stderr, flush=True)
    data.setdefault("runs", []).append({
        "command": " ".join(["python benchmarks/docker_sizes.py", *(argv or sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"), "revision": revision})
    data.update(base=base, base_bytes=ds.image_size(images[0]))
    c.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(render_section(data))
    if not args.no_render:
        import _report

        print(f"wrote {RESULTS_JSON}, {_report.write_results_md()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
