#!/usr/bin/env python3
"""Scale: venv-prune on generated environments of ~30k, ~100k and ~300k files.

Each environment is a real ``python -m venv`` plus synthetic distributions installed the way
pip leaves them (dist-info with METADATA, RECORD, WHEEL, top_level.txt, INSTALLER, REQUESTED
on some, Requires-Dist between some), whose packages carry sub-packages, ``__pycache__``,
``tests/`` directories, C sources and headers, and data files. Generated once per size and
cached under ``work/scale/``. For each size, with a warm page cache:

- one ``find V -type f -printf '%s %p\\n'`` walk (median of 3),
- ``venv-prune V --profile P --dry-run`` (scan + plan + report): median wall time of 3 runs
  and peak RSS,
- a real ``venv-prune V --profile P --no-verify`` and the bash find/rm recipe, each on its own
  fresh identical copy (``cp -a``).

Writes ``results/scale.json`` and re-renders ``RESULTS.md``.

    python benchmarks/scale.py                   # 30k, 100k, 300k
    python benchmarks/scale.py --sizes 20000     # a quick look
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import _report  # noqa: E402

GENERATOR_VERSION = "3"  # bump when the generated tree changes, to invalidate the cache
SCALE_DIR = c.WORK_DIR / "scale"
PYC_HEADER = b""  # filled in from the target interpreter's magic number


# ---------------------------------------------------------------------------- generator


class _Dist:
    """Accumulates one synthetic distribution's files, then writes its dist-info."""

    def __init__(self, sp: Path, name: str, version: str) -> None:
        self.sp, self.name, self.version = sp, name, version
        self.record: list[tuple[str, str, int]] = []

    def write(self, rel: str, data: bytes) -> None:
        path = self.sp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.record.append((rel, f"sha256={digest}", len(data)))

    def finish(self, requires: list[str], requested: bool) -> int:
        info = f"{self.name}-{self.version}.dist-info"
        meta = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}",
                "Summary: synthetic distribution for venv-prune scale benchmarks"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        self.write(f"{info}/METADATA", ("\n".join(meta) + "\n").encode())
        self.write(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                                    b"Tag: py3-none-any\n")
        self.write(f"{info}/top_level.txt", f"{self.name}\n".encode())
        self.write(f"{info}/INSTALLER", b"pip\n")
        if requested:
            self.write(f"{info}/REQUESTED", b"")
        lines = [f"{r},{h},{n}" for r, h, n in self.record] + [f"{info}/RECORD,,"]
        (self.sp / info / "RECORD").write_text("\n".join(lines) + "\n")
        return len(self.record) + 1


def _py_source(rng: random.Random, name: str) -> bytes:
    body = [f'"""Synthetic module {name}."""', "import os", "",
            f"VALUE = {rng.randrange(10**6)}", "",
            "def f(x):", "    return os.path.join(str(x), str(VALUE))", ""]
    pad = rng.randrange(200, 2400)
    body.append("# " + "x" * pad)
    return ("\n".join(body) + "\n").encode()


def _package(dist: _Dist, rng: random.Random, pkg: str, modules: int, tag: str) -> None:
    """A (sub)package with ``modules`` modules, caches, a tests dir, C files and data."""
    def module(rel_dir: str, mod: str) -> None:
        src = _py_source(rng, f"{rel_dir}.{mod}")
        dist.write(f"{rel_dir}/{mod}.py", src)
        dist.write(f"{rel_dir}/__pycache__/{mod}.{tag}.pyc", PYC_HEADER + src[: len(src) // 2])

    module(pkg, "__init__")
    for i in range(modules):
        module(pkg, f"mod{i}")
    module(f"{pkg}/tests", "__init__")
    for i in range(max(1, modules // 4)):
        module(f"{pkg}/tests", f"test_mod{i}")
    dist.write(f"{pkg}/_speedups.c", b"/* synthetic */\n" + b"int x;\n" * rng.randrange(50, 800))
    dist.write(f"{pkg}/_speedups.h", b"/* synthetic */\n#define X 1\n" * rng.randrange(5, 50))
    for i in range(max(1, modules // 8)):
        dist.write(f"{pkg}/data/table{i}.json",
                   b'{"k": "' + b"v" * rng.randrange(100, 4000) + b'"}\n')


def generate(root: Path, target_files: int, python: str) -> int:
    """Build the environment at ``root`` with about ``target_files`` files; return the count."""
    global PYC_HEADER
    c.remove_tree(root)
    subprocess.run([python, "-m", "venv", "--without-pip", str(root)], check=True)
    probe = subprocess.run(
        [str(root / "bin" / "python"), "-c",
         "import importlib.util as u, sys; "
         "print(u.MAGIC_NUMBER.hex(), sys.implementation.cache_tag)"],
        capture_output=True, text=True, check=True).stdout.split()
    PYC_HEADER = bytes.fromhex(probe[0]) + b"\0" * 12
    tag = probe[1]
    sp = c.drop_to_site_packages(root)
    for sub, count in (("share/doc/synthetic", 40), ("include/synthetic", 40)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / sub / f"f{i}.txt").write_text("synthetic\n" * 20)
    rng = random.Random(20240601 + target_files)
    sizes = (6, 12, 25, 60, 150, 400)  # modules per sub-package: many small, a few large
    made = sum(1 for _ in root.rglob("*") if not _.is_dir())
    n = 0
    while made < target_files:
        name = f"synth{n:05d}"
        dist = _Dist(sp, name, f"1.{n % 7}.{n % 3}")
        subpackages = 1 + (n % 5 == 0) * 3
        for s in range(subpackages):
            pkg = name if s == 0 else f"{name}/sub{s}"
            _package(dist, rng, pkg, sizes[(n + s) % len(sizes)], tag)
        # some distributions depend on an earlier one, so the graph is not flat
        requires = [f"synth{n - 1 - (n % 3):05d}>=1.0"] if n > 3 and n % 2 else []
        made += dist.finish(requires, requested=n % 3 == 0)
        n += 1
    return made


def ensure_generated(target: int, python: str) -> Path:
    root = SCALE_DIR / f"gen-{target}"
    stamp = SCALE_DIR / f"gen-{target}.stamp"
    want = f"{GENERATOR_VERSION} {python}"
    if stamp.is_file() and stamp.read_text() == want and (root / "pyvenv.cfg").is_file():
        return root
    c.log_line(f"scale: generating ~{target:,} files under {root}")
    SCALE_DIR.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    generate(root, target, python)
    stamp.write_text(want)
    return root


# ---------------------------------------------------------------------------- measurement


def find_walk_seconds(root: Path, repeat: int = 3) -> float:
    cmd = f"find {shlex.quote(str(root))} -type f -printf '%s %p\\n' > /dev/null"
    c.run_timed(cmd, shell="bash")  # warm the page cache
    return statistics.median(c.run_timed(cmd, shell="bash").seconds for _ in range(repeat))


def measure_size(root: Path, vp: list[str], profile: str) -> dict:
    size = c.measure_tree(root)
    find_s = find_walk_seconds(root)
    report = SCALE_DIR / "dry-run-report.txt"
    # The median of three dry runs: one run on a shared machine varies by a third.
    runs = [c.time_with_peak_rss([*vp, str(root), "--profile", profile, "--dry-run",
                                  "--report", str(report), "-q"]) for _ in range(3)]
    for dry, _ in runs:
        if dry.returncode != 0:
            raise SystemExit(f"dry-run failed on {root}:\n{dry.tail(10)}")
    dry_seconds = statistics.median(dry.seconds for dry, _ in runs)
    peak = max(p for _, p in runs)
    # real prune and recipe, each on a fresh identical copy
    copy = SCALE_DIR / "copy"
    c.fresh_copy(root, copy)
    find_walk_seconds(copy, repeat=1)
    prune, prune_peak = c.time_with_peak_rss(
        [*vp, str(copy), "--profile", profile, "--no-verify", "-q"])
    if prune.returncode != 0:
        raise SystemExit(f"prune failed on {copy}:\n{prune.tail(10)}")
    prune_removed = size.apparent - c.measure_tree(copy).apparent
    c.fresh_copy(root, copy)
    find_walk_seconds(copy, repeat=1)
    recipe = c.run_timed(c.recipe_for(copy), shell="bash")
    recipe_removed = size.apparent - c.measure_tree(copy).apparent
    c.remove_tree(copy)
    return {"loadavg_1min": round(os.getloadavg()[0], 2), "files": size.files,
            "apparent": size.apparent, "disk": size.disk,
            "find_seconds": round(find_s, 3), "dry_run_seconds": round(dry_seconds, 3),
            "dry_run_peak_rss": peak, "prune_seconds": round(prune.seconds, 3),
            "prune_peak_rss": prune_peak, "prune_removed": prune_removed,
            "recipe_seconds": round(recipe.seconds, 3), "recipe_removed": recipe_removed}


def linearity(sizes: list[dict]) -> dict:
    """Per-100k-file costs and a least-squares fit through the points (time ~ a + b * files)."""
    xs = [s["files"] for s in sizes]

    def fit(ys: list[float]) -> tuple[float, float, float]:
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
        a = my - b * mx
        ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
        ss_tot = sum((y - my) ** 2 for y in ys)
        return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0

    dry = [s["dry_run_seconds"] for s in sizes]
    rss = [s["dry_run_peak_rss"] / 2**20 for s in sizes]
    _, b_t, r2_t = fit(dry)
    a_m, b_m, r2_m = fit(rss)
    out = {
        "dry_run_per_100k": [t / x * 1e5 for t, x in zip(dry, xs)],
        "rss_per_100k": [m / x * 1e5 for m, x in zip(rss, xs)],
        "dry_run_fit": {"seconds_per_100k": b_t * 1e5, "r2": r2_t},
        "rss_fit": {"base_mib": a_m, "mib_per_100k": b_m * 1e5, "r2": r2_m},
    }
    if len(xs) >= 3:
        out["verdict"] = (
            f"a straight line fits the dry-run times with R² = {r2_t:.3f} "
            f"({b_t * 1e5:.2f}s per 100k files) and peak memory with R² = {r2_m:.3f} "
            f"({a_m:.0f} MiB + {b_m * 1e5:.0f} MiB per 100k files); time for "
            f"{xs[-1] / xs[0]:.1f}× the files grew {dry[-1] / dry[0]:.1f}×.")
    else:
        out["verdict"] = "too few sizes to judge growth."
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="30000,100000,300000",
                   help="comma-separated file counts (default 30000,100000,300000)")
    p.add_argument("--profile", default="aggressive", help="venv-prune profile (aggressive)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the venvs")
    p.add_argument("--venv-prune", default=None, help="command that runs venv-prune")
    p.add_argument("--no-render", action="store_true", help="do not re-render RESULTS.md")
    p.add_argument("--generate-only", action="store_true", help="only build the trees")
    args = p.parse_args(argv)
    targets = [int(s) for s in args.sizes.split(",")]
    roots = [ensure_generated(t, args.python) for t in targets]
    if args.generate_only:
        return 0
    c.ensure_bench_venv(args.python, log=c.log_line)
    vp = c.venv_prune_command(args.venv_prune)
    ok, why = c.venv_prune_available(vp)
    if not ok:
        raise SystemExit(f"venv-prune is not usable: {why}")
    sizes = []
    for target, root in zip(targets, roots):
        c.log_line(f"scale: measuring {target:,}")
        s = measure_size(root, vp, args.profile)
        c.log_line(f"scale: {s}")
        sizes.append(s)
    command = "python benchmarks/scale.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv) if a != "--no-render")
    out = {"schema": 1, "date": c.now_utc(), "command": command.strip(),
           "profile": args.profile, "machine": c.machine_info(),
           "venv_prune_revision": c.git_revision(), "sizes": sizes,
           "linearity": linearity(sizes)}
    c.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (c.RESULTS_DIR / "scale.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    if not args.no_render:
        _report.write_results_md()
    return 0


if __name__ == "__main__":
    sys.exit(main())
