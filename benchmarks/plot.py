"""Plot bytes saved per method per environment from results.json (bench venv: matplotlib).

Usage: ``python plot.py results.json saved.png``. One panel per environment, one bar per
method; runs that broke an import or the workload are red, hatched and labelled BROKEN;
runs where venv-prune rolled back are grey.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"venv-prune": "#2b7bba", "recipe": "#e0a030", "slim": "#8a63b8", "none": "#999999"}


def main(src: str, dest: str) -> int:
    with open(src) as f:
        results = json.load(f)
    envs = list(results["envs"])
    methods = [m for m in results["methods"] if m != "none"]
    cols = 2 if len(envs) > 1 else 1
    rows = (len(envs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 0.42 * len(methods) * rows + 1.6),
                             squeeze=False)
    for ax, name in zip(axes.flat, envs):
        env = results["envs"][name]
        before = env["size"]["apparent"]
        runs = {r["method"]: r for r in env["runs"]}
        for i, m in enumerate(methods):
            r = runs.get(m)
            if r is None or "size" not in r:
                ax.text(0, i, "  not run", va="center", fontsize=8, color="#777777")
                continue
            saved = (before - r["size"]["apparent"]) / 1e6
            broken, rolled = r["broken"], r["status"] != "ok"
            colour = "#d62728" if broken else ("#bbbbbb" if rolled else COLOURS[r["family"]])
            ax.barh(i, saved, color=colour, hatch="///" if broken else None,
                    edgecolor="black" if broken else colour)
            label = f" {saved:,.0f} MB ({100 * saved * 1e6 / before:.0f}%)"
            if broken:
                label += "  ✗ BROKEN"
            elif r["status"] == "rolled back":
                label += "  ↺ rolled back"
            elif rolled:
                label += f"  ⚠ {r['status']}"
            ax.text(max(saved, 0), i, label, va="center", fontsize=8,
                    color="#d62728" if broken else "black",
                    fontweight="bold" if broken else "normal")
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{name} — {before / 1e6:,.0f} MB before", fontsize=10)
        ax.set_xlabel("MB saved (apparent size, whole environment)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlim(0, max(ax.get_xlim()[1], 1) * 1.45)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    from matplotlib.patches import Patch

    handles = [Patch(color=COLOURS["venv-prune"], label="venv-prune"),
               Patch(color=COLOURS["recipe"], label="find/rm recipe"),
               Patch(color=COLOURS["slim"], label="serverless slim"),
               Patch(facecolor="#d62728", hatch="///", edgecolor="black", label="broken"),
               Patch(color="#bbbbbb", label="venv-prune rolled back / error")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Bytes saved per method (red, hatched = broke an import or the workload)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(dest, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
