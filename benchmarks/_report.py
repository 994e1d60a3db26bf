"""Render ``RESULTS.md`` from ``results/results.json`` (run.py) and ``results/scale.json``."""

from __future__ import annotations

import json
from pathlib import Path

import _common as c

ALTERNATIVES = ("recipe (bash)", "recipe (/bin/sh)", "serverless slim")


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def removed(run: dict, env: dict) -> int:
    return env["size"]["apparent"] - run["size"]["apparent"]


def mark(run: dict) -> str:
    if run.get("status") == "unavailable":
        return "n/a"
    if run.get("broken"):
        return "**BROKEN**"
    if run.get("status") != "ok":
        return run.get("status", "?")
    return "ok"


def _runs(env: dict) -> dict[str, dict]:
    return {r["method"]: r for r in env["runs"]}


def summary_table(results: dict, envs: list[str]) -> str:
    methods = [m for m in results["methods"] if m != "none"]
    head = "| method | " + " | ".join(envs) + " |\n|---|" + "---:|" * len(envs) + "\n"
    rows = []
    for m in methods:
        cells = []
        for e in envs:
            env = results["envs"][e]
            r = _runs(env).get(m)
            if r is None or r.get("status") == "unavailable" or "size" not in r:
                cells.append("n/a")
                continue
            pct = 100 * removed(r, env) / env["size"]["apparent"]
            flag = " ✗" if r["broken"] else {"ok": "", "rolled back": " ↺"}.get(r["status"], " ⚠")
            cells.append(f"{mb(removed(r, env))} ({pct:.0f}%){flag}")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    sizes = " | ".join(f"{mb(results['envs'][e]['size']['apparent'])}" for e in envs)
    return head + f"| *size before (MB)* | {sizes} |\n" + "\n".join(rows) + "\n"


def env_table(name: str, env: dict) -> str:
    before = env["size"]
    lines = [
        f"### {name}\n",
        f"`{env['requirements']}` — Python {env['python']}, {mb(before['apparent'])} MB "
        f"({mb(before['disk'])} MB on disk) in {before['files']:,} files.\n",
        "| method | removed MB | after MB (disk) | files | site-packages .tar.gz MB | time s "
        "| imports broken / removed | workload | result |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in env["runs"]:
        if r.get("status") == "unavailable" or "size" not in r:
            lines.append(f"| {r['method']} | | | | | | | | n/a |")
            continue
        imp = r["imports"]
        if "broken" in imp:
            imports = f"{len(imp['broken'])} / {len(imp['removed'])}"
            if imp["broken"]:
                imports += " (" + ", ".join(sorted(imp["broken"])[:4]) + \
                           (", …" if len(imp["broken"]) > 4 else "") + ")"
        else:
            imports = f"{len(imp['ok'])} of {imp['listed']} import"
        t = f"{r['seconds']:.1f}"
        if "trace_seconds" in r:
            t += f" (+{r['trace_seconds']:.1f} trace)"
        lines.append(
            f"| {r['method']} | {mb(removed(r, env))} | {mb(r['size']['apparent'])} "
            f"({mb(r['size']['disk'])}) | {r['size']['files']:,} | {mb(r['tgz'])} | {t} | "
            f"{imports} | {'ok' if r['workload']['ok'] else 'FAILED'} | {mark(r)} |")
    return "\n".join(lines) + "\n"


def render_env_tables(results: dict, envs: list[str] | None = None) -> str:
    envs = [e for e in (envs or list(results["envs"])) if e in results["envs"]]
    parts = ["## Bytes removed per method (MB, % of the environment)\n",
             "✗ = broke an import or the workload; ↺ = venv-prune's verification failed and it "
             "rolled back (exit 1); ⚠ = venv-prune stopped with an error (exit 2 or worse), "
             "nothing removed.\n", summary_table(results, envs),
             "## Per environment\n"]
    parts += [env_table(e, results["envs"][e]) for e in envs]
    return "\n".join(parts)


def targets(results: dict, scale: dict | None) -> str:
    out = ["## Targets (issue 6): where each stands\n"]
    envs = results["envs"]
    # 1. aggressive vs every alternative that breaks nothing
    rows = []
    for name, env in envs.items():
        runs = _runs(env)
        agg = runs.get("aggressive")
        if not agg or "size" not in agg:
            rows.append(f"- {name}: aggressive not measured")
            continue
        best_alt = max(((removed(runs[m], env), m) for m in ALTERNATIVES
                        if m in runs and "size" in runs[m] and not runs[m]["broken"]),
                       default=(0, "none"))
        more = removed(agg, env) > best_alt[0]
        diff = (removed(agg, env) - best_alt[0]) / 1e6
        rows.append(
            f"- {name}: aggressive removed {mb(removed(agg, env))} MB vs {mb(best_alt[0])} MB "
            f"({diff:+.2f} MB) "
            f"for the best alternative that breaks nothing ({best_alt[1]}): "
            f"{'met' if more else '**not met**'}; aggressive "
            f"{'**broke** ' + ', '.join(agg['imports'].get('broken', {})) if agg['broken'] else 'broke nothing'}"
            f"{'' if agg['status'] == 'ok' else ' (exit: ' + agg['status'] + ')'}.")
    out.append("**Aggressive removes more than every method that breaks nothing, and breaks "
               "nothing itself.**\n")
    out += rows
    # 2. prune speed vs recipe
    out.append("\n**A real prune without verification is no slower than the find recipe on the "
               "same tree.** (aggressive includes `strip` and its per-file checks; standard does not strip.)\n")
    for name, env in envs.items():
        runs = _runs(env)
        r = runs.get("recipe (bash)")
        cells = []
        for prof in ("standard", "aggressive"):
            a = runs.get(f"{prof} --no-verify")
            if a and r and a.get("status") == "ok" and r.get("seconds"):
                ratio = a["seconds"] / r["seconds"]
                cells.append(f"{prof} {a['seconds']:.2f}s = {ratio:.1f}× "
                             f"({'met' if ratio <= 1 else '**not met**'})")
        if cells:
            out.append(f"- {name}: recipe {r['seconds']:.2f}s; --no-verify " + ", ".join(cells))
    if scale:
        for s in scale["sizes"]:
            ratio = s["prune_seconds"] / s["recipe_seconds"]
            out.append(f"- generated, {s['files']:,} files: {s['prune_seconds']:.2f}s vs "
                       f"{s['recipe_seconds']:.2f}s = {ratio:.2f}× "
                       f"({'met' if ratio <= 1 else '**not met**'})")
        out.append("\n**A dry-run plan takes at most a few times one `find -printf` walk; peak "
                   "memory under 500 MB at 300k files.**\n")
        for s in scale["sizes"]:
            ratio = s["dry_run_seconds"] / s["find_seconds"]
            mem = s["dry_run_peak_rss"] / 2**20
            out.append(f"- {s['files']:,} files: dry-run {s['dry_run_seconds']:.2f}s = "
                       f"{ratio:.1f}× find ({s['find_seconds']:.2f}s): "
                       f"{'met' if ratio <= 5 else '**not met**'} (reading 'a few' as ≤5×); "
                       f"peak {mem:.0f} MiB: {'met' if mem < 500 else '**not met**'}")
    # 3. verification cost
    out.append("\n**Verification costs no more than importing every top-level module once before "
               "and once after.**\n")
    for name, env in envs.items():
        runs = _runs(env)
        base = runs.get("none", {}).get("imports", {}).get("seconds")
        parts = []
        for prof in ("safe", "standard", "aggressive"):
            v, nv = runs.get(prof), runs.get(f"{prof} --no-verify")
            if base and v and nv and v.get("status") == nv.get("status") == "ok":
                cost = v["seconds"] - nv["seconds"]
                parts.append(f"{prof} +{cost:.1f}s")
        if parts and base:
            worst = max(float(p.split("+")[1][:-1]) for p in parts)
            out.append(f"- {name}: verification adds {', '.join(parts)}; importing every "
                       f"top-level module twice takes {2 * base:.1f}s "
                       f"({'met' if worst <= 2 * base else '**not met**'})")
    return "\n".join(out) + "\n"


def problems(results: dict) -> str:
    out = []
    for name, env in results["envs"].items():
        for r in env["runs"]:
            if r.get("status") == "unavailable":
                continue
            what = []
            if r.get("status") not in ("ok", None):
                what.append(f"exit {r.get('returncode')}: " + _one_line(r.get("tail", "")))
            if r.get("imports", {}).get("broken"):
                what.append("imports broken: " + "; ".join(
                    f"`{k}` ({_one_line(v)[:120]})" for k, v in r["imports"]["broken"].items()))
            if r.get("workload") and not r["workload"]["ok"]:
                what.append("workload failed: " + _one_line(r["workload"]["tail"])[-240:])
            for f in r.get("verification_failures") or []:
                what.append(f"verification: {f.get('kind')} `{f.get('name')}` "
                            f"({f.get('distribution')}): {_one_line(str(f.get('error')))[:160]}; "
                            f"removed by {', '.join((f.get('rules') or [])[:2])}")
            rep = (r.get("report") or {}).get("totals") or {}
            if r.get("status") == "ok" and "bytes_removed" in rep and "size" in r:
                measured = removed(r, env)
                claimed = rep["bytes_removed"] + rep.get("bytes_saved_by_strip", 0)
                if abs(measured - claimed) > max(1e6, 0.02 * max(measured, 1)):
                    what.append(f"report says {mb(claimed)} MB removed, tree shrank by "
                                f"{mb(measured)} MB")
            if what:
                out.append(f"- **{name} / {r['method']}**: " + " — ".join(what))
    if not out:
        return ""
    return "## What went wrong (generated from the runs)\n\n" + "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def scale_section(scale: dict) -> str:
    lines = [
        "## Scale: a generated environment\n",
        f"Generated by `{scale['command']}` on {scale['date']}. A real `python -m venv` plus "
        "synthetic distributions (dist-info with RECORD, packages with `tests/`, `__pycache__`, "
        "`.c`/`.h`, data files). Each timing is on a fresh identical copy with a warm page "
        "cache; `find` is one `find V -type f -printf '%s %p\\n' > /dev/null` walk; the prune "
        f"is `venv-prune V --profile {scale['profile']} --no-verify`; the recipe is the bash "
        "find/rm recipe.\n",
        "| files | MB | find walk s | dry-run s (× find) | dry-run peak MiB | prune s | "
        "recipe s | prune / recipe | removed MB venv-prune / recipe |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scale["sizes"]:
        lines.append(
            f"| {s['files']:,} | {mb(s['apparent'])} | {s['find_seconds']:.2f} | "
            f"{s['dry_run_seconds']:.2f} ({s['dry_run_seconds'] / s['find_seconds']:.1f}×) | "
            f"{s['dry_run_peak_rss'] / 2**20:.0f} | {s['prune_seconds']:.2f} | "
            f"{s['recipe_seconds']:.2f} | {s['prune_seconds'] / s['recipe_seconds']:.2f} | "
            f"{mb(s['prune_removed'])} / {mb(s['recipe_removed'])} |")
    lin = scale.get("linearity")
    if lin:
        lines.append(
            "\nGrowth: per 100k files, dry-run takes "
            + ", ".join(f"{x:.2f}s" for x in lin["dry_run_per_100k"])
            + " and peak memory is "
            + ", ".join(f"{x:.0f} MiB" for x in lin["rss_per_100k"])
            + f" at the three sizes; {lin['verdict']}")
    for note in scale.get("notes", []):
        lines.append(f"\n- {note}")
    return "\n".join(lines) + "\n"


def write_results_md() -> Path:
    results_file = c.RESULTS_DIR / "results.json"
    scale_file = c.RESULTS_DIR / "scale.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else None
    scale = json.loads(scale_file.read_text()) if scale_file.is_file() else None
    parts = ["# venv-prune benchmarks\n",
             "Regenerate everything (environments are built once and cached under "
             "`benchmarks/work/`):\n",
             "```\npython benchmarks/run.py --envs all\n```\n",
             "A small subset for CI, as a report only (no timing assertions): "
             "`python benchmarks/run.py --envs web,flaskdev --quick`. Scale alone: "
             "`python benchmarks/scale.py`.\n"]
    if results:
        m = results["machine"]
        parts.append(
            f"Last run: `{results['command']}` on {results['date']} (UTC), venv-prune "
            f"{results['venv_prune']['version'] or '?'} at revision "
            f"`{results['venv_prune']['revision']}`.\n\n"
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux "
            f"{m['kernel']}, {m['filesystem']} filesystem; {m['find']}; {m['tar']}.\n")
        loads = [r["loadavg_1min"] for e in results["envs"].values() for r in e["runs"]
                 if "loadavg_1min" in r]
        if loads:
            parts.append(
                f"The 1-minute load average when each method started ranged {min(loads):.1f}–"
                f"{max(loads):.1f} on these {m['cores']} cores (the machine is shared with other "
                "work): read the times as indicative, and ratios measured side by side as more "
                "telling than any single figure.\n")
        parts.append(_methods_text(results))
        parts.append(targets(results, scale))
        parts.append("![bytes saved per method per environment](results/saved.png)\n")
        parts.append(render_env_tables(results))
        parts.append(problems(results))
    if scale:
        parts.append(scale_section(scale))
    overlay = c.RESULTS_DIR / "overlay.md"  # benchmarks/overlay.py (issue 14)
    if overlay.is_file():
        parts.append(overlay.read_text())
    sizes_file = c.RESULTS_DIR / "docker_sizes.json"
    if sizes_file.is_file():  # python benchmarks/docker_sizes.py (issue 14)
        from docker_sizes import render_section

        parts.append(render_section(json.loads(sizes_file.read_text())))
    notes = c.BENCH_DIR / "observations.md"
    if notes.is_file():
        parts.append(notes.read_text())
    path = c.BENCH_DIR / "RESULTS.md"
    path.write_text("\n".join(p for p in parts if p).rstrip() + "\n")
    return path


def _methods_text(results: dict) -> str:
    return (
        "## Methods and measures\n\n"
        "Each method runs on a fresh `cp -a` copy of the same built environment.\n\n"
        "- **safe / standard / aggressive**: `venv-prune V --profile P` (with its import "
        "verification), and the same with `--no-verify`, so the cost of verification shows.\n"
        "- **minimal (traced)**: `venv-prune trace V -o trace.json -- V/bin/python -B "
        "benchmarks/workloads/ENV.py`, then `venv-prune V --profile minimal --keep-from "
        "trace.json`; the time column is the prune, the trace time is shown beside it.\n"
        "- **recipe**: the hand-written recipe users copy today, run by `bash -c` and by "
        "`/bin/sh -c` (dash here; a Dockerfile `RUN` uses `/bin/sh`, where the "
        "`{pip,setuptools,wheel}*` brace expansion does nothing):\n\n"
        f"  ```sh\n  {results['recipe']}\n  ```\n"
        "- **serverless slim**: Serverless python-requirements `slim: true` defaults on "
        "site-packages: delete `**/*.py[c|o]`, `**/__pycache__*`, `**/*.dist-info*`, then "
        "`find … -name '*.so' -exec strip {} ;` (`benchmarks/_slim.py`).\n"
        "- **none**: the untouched copy; its import run lists what imports before pruning.\n\n"
        "Measures: *removed* = apparent bytes of the whole environment before minus after; "
        "*disk* = allocated blocks as `du` counts them; *files* = non-directory entries; "
        "*.tar.gz* = `tar --sort=name … | gzip -6` of site-packages (an image-layer proxy); "
        "*time* = the method's wall time. *Imports*: every top-level module in site-packages "
        "that imported before is imported again, in batches of 25 per `python -B -I` process; "
        "*broken* = it fails while its files are still there, *removed* = its files are gone "
        "entirely (a deliberately removed distribution such as pip, or leaked dev tools). "
        "*Workload*: `benchmarks/workloads/ENV.py` run by the environment's interpreter. "
        "A run is BROKEN if any import broke or the workload failed.\n")


if __name__ == "__main__":  # re-render RESULTS.md from the JSON files without running anything
    print(write_results_md())
