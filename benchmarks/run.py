#!/usr/bin/env python3
"""Benchmark venv-prune against what users do today, on real environments.

For each environment (built once from ``envs/NAME.txt`` and cached under ``work/envs``) and
each method, the runner makes a fresh identical copy (``cp -a``), runs the method on it and
measures: bytes before/after (apparent and on disk), file count, the gzip'd tar size of
site-packages (an image-layer proxy), the method's wall time, whether every top-level module
that imported before still imports (each module imported in a ``python -B`` subprocess,
batched), and whether the environment's workload (``workloads/NAME.py``) still succeeds.

    python benchmarks/run.py --envs all            # everything: RESULTS.md, results/, scale
    python benchmarks/run.py --envs web,flaskdev --quick   # CI report: small, no scale

Results: ``results/results.json``, ``results/saved.png``, ``RESULTS.md``. A ``--quick`` run
writes into ``work/quick/`` instead and prints its table, so CI never rewrites the tracked
results. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import _report  # noqa: E402

ENVS = ("web", "sci", "django", "boto3", "torch", "flaskdev")
IMPORT_BATCH = 25
WORKLOAD_TIMEOUT = 600


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # "venv-prune" | "recipe" | "slim" | "none"
    profile: str | None = None
    verify: bool = True
    shell: str | None = None

    @property
    def label(self) -> str:
        return self.name


METHODS = (
    Method("none", "none"),
    Method("safe", "venv-prune", "safe"),
    Method("safe --no-verify", "venv-prune", "safe", verify=False),
    Method("standard", "venv-prune", "standard"),
    Method("standard --no-verify", "venv-prune", "standard", verify=False),
    Method("aggressive", "venv-prune", "aggressive"),
    Method("aggressive --no-verify", "venv-prune", "aggressive", verify=False),
    Method("minimal (traced)", "venv-prune", "minimal"),
    Method("recipe (bash)", "recipe", shell="bash"),
    Method("recipe (/bin/sh)", "recipe", shell="/bin/sh"),
    Method("serverless slim", "slim"),
)


# ---------------------------------------------------------------------------- environments


def build_env(name: str, python: str) -> Path:
    """Build (or reuse) the environment ``work/envs/NAME`` from ``envs/NAME.txt``."""
    req = c.BENCH_DIR / "envs" / f"{name}.txt"
    dest = c.WORK_DIR / "envs" / name
    stamp = c.WORK_DIR / "envs" / f"{name}.stamp"
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    want = c.file_digest(req, extra=version)
    if stamp.is_file() and stamp.read_text() == want and (dest / "pyvenv.cfg").is_file():
        return dest
    c.log_line(f"{name}: building environment from {req.relative_to(c.REPO_DIR)}")
    c.remove_tree(dest)
    stamp.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(dest)], check=True)
    env = dict(os.environ, PIP_CACHE_DIR=str(c.WORK_DIR / "pip-cache"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = c.run_timed([str(dest / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req)],
                      env=env, timeout=3600)
    if pip.returncode != 0:
        raise SystemExit(f"{name}: pip install failed:\n{pip.tail(20)}")
    stamp.write_text(want)
    return dest


# ---------------------------------------------------------------------------- imports


def list_modules(root: Path) -> list[str]:
    sp = c.drop_to_site_packages(root)
    out = subprocess.run(
        [str(root / "bin" / "python"), "-B", "-I", str(c.BENCH_DIR / "_importcheck.py"),
         "list", str(sp)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def check_imports(root: Path, names: list[str]) -> tuple[dict[str, str], float]:
    """Import each name with ``root``'s interpreter; return {name: "" if ok else why}, secs.

    Names are imported in batches, one process per batch. A module that fails inside a batch
    is tried again alone in a fresh process, and that result counts: modules interact (e.g.
    importing pip before setuptools on 3.11 disables setuptools' distutils shim, and setuptools
    then fails), and such an interaction says nothing about the environment.
    """
    start = time.perf_counter()
    results = _import_batches(root, names, IMPORT_BATCH)
    failed = [n for n, e in results.items() if e]
    if failed:
        results.update(_import_batches(root, failed, 1))
    return results, time.perf_counter() - start


def _import_batches(root: Path, names: list[str], size: int) -> dict[str, str]:
    results: dict[str, str] = {}
    batches = [names[i:i + size] for i in range(0, len(names), size)]
    with tempfile.TemporaryDirectory(prefix="imports-") as tmp:
        for n, batch in enumerate(batches):
            todo = list(batch)
            while todo:
                out = Path(tmp, f"batch{n}-{len(results)}.txt")
                proc = c.run_timed(
                    [str(root / "bin" / "python"), "-B", "-I",
                     str(c.BENCH_DIR / "_importcheck.py"), "import", str(out), *todo],
                    cwd=Path(tmp), timeout=600)
                current = None
                lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
                for line in lines:
                    kind, _, rest = line.partition(" ")
                    mod, _, msg = rest.partition(" ")
                    if kind == "START":
                        current = mod
                    elif kind == "OK":
                        results[mod], current = "", None
                    elif kind == "FAIL":
                        results[mod], current = msg or "failed", None
                if current is not None:  # the process died while importing `current`
                    results[current] = f"crashed the interpreter (exit {proc.returncode})"
                todo = [m for m in todo if m not in results]
                if todo and current is None:  # died before starting: count the rest failed
                    for m in todo:
                        results[m] = f"not checked: {proc.tail(2)}"
                    todo = []
    return results


def module_present(sp: Path, name: str) -> bool:
    return ((sp / name).exists() or (sp / f"{name}.py").exists() or (sp / f"{name}.pyc").exists()
            or any(sp.glob(f"{name}.*.so")) or (sp / f"{name}.so").exists())


# ---------------------------------------------------------------------------- one run


def run_workload(root: Path, env_name: str) -> dict:
    script = c.BENCH_DIR / "workloads" / f"{env_name}.py"
    with tempfile.TemporaryDirectory(prefix="workload-") as tmp:
        env = dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=tmp)
        done = c.run_timed([str(root / "bin" / "python"), "-B", str(script)], cwd=Path(tmp),
                           env=env, timeout=WORKLOAD_TIMEOUT)
    return {"ok": done.returncode == 0, "seconds": round(done.seconds, 2),
            "tail": "" if done.returncode == 0 else done.tail(8)}


def apply_method(method: Method, root: Path, env_name: str, vp: list[str], run_dir: Path) -> dict:
    """Run ``method`` on ``root``; return its exit code, wall time and tool-specific details."""
    info: dict = {"command": ""}
    if method.family == "none":
        return {"returncode": 0, "seconds": 0.0, **info}
    if method.family == "recipe":
        script = c.recipe_for(root)
        done = c.run_timed(script, shell=method.shell, cwd=run_dir)
        info["command"] = f"{method.shell} -c {shlex.quote(c.RECIPE)}"
    elif method.family == "slim":
        sp = c.drop_to_site_packages(root)
        argv = [sys.executable, str(c.BENCH_DIR / "_slim.py"), str(sp)]
        done = c.run_timed(argv, cwd=run_dir)
        info["command"] = "python benchmarks/_slim.py V/lib/python*/site-packages"
    else:
        report = run_dir / "report.json"
        argv = [*vp, str(root), "--profile", str(method.profile), "--format", "json",
                "--report", str(report), "-q"]
        if not method.verify:
            argv.append("--no-verify")
        if method.profile == "minimal":
            trace = run_dir / "trace.json"
            workload = c.BENCH_DIR / "workloads" / f"{env_name}.py"
            with tempfile.TemporaryDirectory(prefix="trace-") as tmp:
                traced = c.run_timed(
                    [*vp, "trace", str(root), "-o", str(trace), "--",
                     str(root / "bin" / "python"), "-B", str(workload)],
                    cwd=Path(tmp), env=dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=tmp),
                    timeout=WORKLOAD_TIMEOUT)
            info["trace_seconds"] = round(traced.seconds, 2)
            info["trace_returncode"] = traced.returncode
            if traced.returncode != 0 or not trace.is_file():
                info["tail"] = "trace failed: " + traced.tail(6)
            argv += ["--keep-from", str(trace)]
        done = c.run_timed(argv, cwd=run_dir)
        info["command"] = " ".join(
            ["venv-prune", "V"] + [a for a in argv[len(vp) + 1:] if not a.startswith("/")])
        if report.is_file():
            try:
                data = json.loads(report.read_text())
                info["report"] = {"schema": data.get("schema"), "totals": data.get("totals"),
                                  "actions": len(data.get("actions", [])),
                                  "stripped": len(data.get("stripped") or [])}
                failures = (data.get("verification") or {}).get("failures") or []
                if failures:
                    info["verification_failures"] = failures[:8]
            except (ValueError, AttributeError) as exc:
                info["report_error"] = f"unreadable JSON report: {exc}"
        if done.returncode != 0:  # stdout is the JSON report; the reason is on stderr
            err = "\n".join(done.stderr.strip().splitlines()[-4:])
            info["tail"] = (info.get("tail", "") + "\n" + err).strip()
    info.update(returncode=done.returncode, seconds=round(done.seconds, 3))
    if done.returncode != 0 and "tail" not in info:
        info["tail"] = done.tail(10)
    return info


_TGZ_CACHE: dict[str, int] = {}


def _tgz_size_cached(sp: Path) -> int:
    """``tar | gzip`` size of ``sp``, reused when a tree with the same paths and sizes was
    already measured (a run with and without verification leaves the same tree)."""
    key = c.tree_fingerprint(sp)
    if key not in _TGZ_CACHE:
        _TGZ_CACHE[key] = c.tar_gz_size(sp)
    return _TGZ_CACHE[key]


def run_one(env_name: str, method: Method, source: Path, baseline: dict | None,
            vp: list[str], keep: bool) -> dict:
    run_dir = c.WORK_DIR / "runs" / f"{env_name}--{method.name.replace(' ', '_').replace('/', '')}"
    root = run_dir / "venv"
    c.remove_tree(run_dir)
    run_dir.mkdir(parents=True)
    c.fresh_copy(source, root)
    result: dict = {"env": env_name, "method": method.name, "family": method.family,
                    "profile": method.profile, "verify": method.verify,
                    "loadavg_1min": round(os.getloadavg()[0], 2)}
    result.update(apply_method(method, root, env_name, vp, run_dir))
    rc = result["returncode"]
    result["status"] = {0: "ok", 1: "rolled back"}.get(rc, f"failed (exit {rc})")
    sp = c.drop_to_site_packages(root)
    result["size"] = c.measure_tree(root).as_dict()
    result["site_packages"] = c.measure_tree(sp).as_dict()
    t0 = time.perf_counter()
    result["tgz"] = _tgz_size_cached(sp)
    result["tgz_seconds"] = round(time.perf_counter() - t0, 2)
    if baseline is None:  # the `none` run defines what imports before pruning
        names = list_modules(root)
        imports, seconds = check_imports(root, names)
        result["imports"] = {"listed": len(names), "ok": sorted(n for n, e in imports.items() if not e),
                             "failing_before": {n: e for n, e in sorted(imports.items()) if e},
                             "seconds": round(seconds, 2)}
    else:
        wanted = baseline["imports"]["ok"]
        imports, seconds = check_imports(root, wanted)
        failed = {n: e for n, e in sorted(imports.items()) if e}
        removed = sorted(n for n in failed if not module_present(sp, n))
        broken = {n: e for n, e in failed.items() if n not in removed}
        result["imports"] = {"checked": len(wanted), "broken": broken, "removed": removed,
                             "seconds": round(seconds, 2)}
    result["workload"] = run_workload(root, env_name)
    result["broken"] = bool(result["imports"].get("broken")) or not result["workload"]["ok"]
    if not keep:
        c.remove_tree(run_dir)
    return result


def run_env(env_name: str, methods: list[Method], python: str, vp: list[str],
            vp_ok: bool, keep: bool) -> dict:
    source = build_env(env_name, python)
    before = c.measure_tree(source)
    entry: dict = {"requirements": f"benchmarks/envs/{env_name}.txt",
                   "python": subprocess.run([str(source / "bin" / "python"), "-c",
                                             "import platform; print(platform.python_version())"],
                                            capture_output=True, text=True).stdout.strip(),
                   "size": before.as_dict(), "date": c.now_utc(), "runs": []}
    baseline = None
    for method in methods:
        if method.family == "venv-prune" and not vp_ok:
            entry["runs"].append({"env": env_name, "method": method.name, "family": method.family,
                                  "status": "unavailable", "broken": False})
            continue
        c.log_line(f"{env_name}: {method.name} ...")
        r = run_one(env_name, method, source, baseline, vp, keep)
        if method.family == "none":
            baseline = r
        saved = before.apparent - r["size"]["apparent"]
        extra = f" (+trace {r['trace_seconds']:.1f}s)" if "trace_seconds" in r else ""
        c.log_line(f"{env_name}: {method.name}: {r['status']}, {saved / 1e6:.1f} MB removed in "
                   f"{r['seconds']:.1f}s{extra}, broken={r['broken']}"
                   + (f" {list(r['imports'].get('broken', {}))[:5]}" if r["broken"] else "")
                   + ("" if r["workload"]["ok"] else " workload FAILED"))
        entry["runs"].append(r)
    return entry


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python benchmarks/run.py --envs all\n"
                                       "  python benchmarks/run.py --envs web,flaskdev --quick")
    p.add_argument("--envs", default="all",
                   help=f"comma-separated subset of {','.join(ENVS)}, or 'all' (default)")
    p.add_argument("--methods", default="all",
                   help="comma-separated method names (see --list), or 'all'")
    p.add_argument("--quick", action="store_true",
                   help="CI report: write into work/quick/, print the table, skip scale and plot")
    p.add_argument("--no-scale", action="store_true", help="skip scale.py on a full run")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that creates the environments (the locks are for 3.11)")
    p.add_argument("--venv-prune", default=None,
                   help="command that runs venv-prune (default: the bench venv's, which has "
                        "this repository installed editable)")
    p.add_argument("--keep", action="store_true", help="keep each pruned copy under work/runs/")
    p.add_argument("--build-only", action="store_true", help="only build (or reuse) the environments")
    p.add_argument("--list", action="store_true", help="list environments and methods")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("environments:", ", ".join(ENVS))
        print("methods:", ", ".join(m.name for m in METHODS))
        return 0
    envs = list(ENVS) if args.envs == "all" else [e.strip() for e in args.envs.split(",")]
    bad = [e for e in envs if e not in ENVS]
    if bad:
        print(f"unknown environment(s) {bad}; choose from {', '.join(ENVS)}", file=sys.stderr)
        return 2
    methods = list(METHODS)
    if args.methods != "all":
        wanted = {m.strip() for m in args.methods.split(",")} | {"none"}
        methods = [m for m in METHODS if m.name in wanted]
    if args.build_only:
        for env_name in envs:
            c.log_line(f"{env_name}: {build_env(env_name, args.python)}")
        return 0
    command = "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in
                                                     (sys.argv[1:] if argv is None else argv))
    c.WORK_DIR.mkdir(parents=True, exist_ok=True)
    c.ensure_bench_venv(args.python, log=c.log_line)
    vp = c.venv_prune_command(args.venv_prune)
    vp_ok, why = c.venv_prune_available(vp)
    if not vp_ok:
        c.log_line(f"venv-prune is not usable ({why.strip()[:200]}); its methods are skipped")
    out_dir = c.WORK_DIR / "quick" if args.quick else c.RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    results_file = out_dir / "results.json"
    # A full run of some environments keeps the others' earlier results; --quick starts afresh.
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if results.get("schema") != 1 or args.quick:
        results = {"schema": 1, "envs": {}}
    results.update(
        date=c.now_utc(), command=command, machine=c.machine_info(),
        venv_prune={"revision": c.git_revision(),
                    "version": (c.run_timed([*vp, "--version"], timeout=60).stdout.split()
                                or ["?"])[-1]},
        methods=[m.name for m in METHODS], recipe=c.RECIPE)
    start = time.perf_counter()
    for env_name in envs:
        entry = run_env(env_name, methods, args.python, vp, vp_ok, args.keep)
        entry["command"] = command
        results["envs"][env_name] = entry
        results_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    results["envs_seconds"] = round(time.perf_counter() - start, 1)
    results_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if args.quick:
        print(_report.render_env_tables(results, envs))
        return 0
    if not args.no_scale and args.envs == "all":
        subprocess.run([sys.executable, str(c.BENCH_DIR / "scale.py"), "--no-render"], check=True)
    plot = c.RESULTS_DIR / "saved.png"
    subprocess.run([str(c.BENCH_VENV / "bin" / "python"), str(c.BENCH_DIR / "plot.py"),
                    str(results_file), str(plot)], check=True)
    _report.write_results_md()
    c.log_line(f"wrote {results_file}, {plot}, {c.BENCH_DIR / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
