"""Conventions users of pip, uv, ruff and click expect (issue 17, item 9): shell completion,
a pyproject.toml found without --config, options from environment variables, NO_COLOR,
counters on long steps."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import tree_digest
from synth import add_dist, make_venv_tree

from prune.cli import cli
from prune.cli._ui import progress_printer

BIN = Path(sys.executable).parent
VENV_PRUNE = BIN / "venv-prune"


@pytest.fixture
def synth_env(tmp_path: Path) -> Path:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": "", "pkg/core.py": "X = 1\n", "pkg/NOTES.md": "n\n",
                           "pkg/tests/__init__.py": ""})
    return root


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VENV_PRUNE", "_VENV_PRUNE"))}
    return subprocess.run([str(VENV_PRUNE), *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=600)


def test_bash_completion_script_and_words(tmp_path: Path) -> None:
    proc = run(env={"_VENV_PRUNE_COMPLETE": "bash_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_venv_prune_completion" in proc.stdout and "missing PATH" not in proc.stderr
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    # The script, sourced in a real bash, completes subcommands, options and profile names.
    (tmp_path / "venvdir").mkdir()
    script = (f'PATH={BIN}:$PATH; eval "$(_VENV_PRUNE_COMPLETE=bash_source venv-prune)"; '
              'complete_words() { COMPREPLY=(); COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_venv_prune_completion venv-prune; echo "${COMPREPLY[*]}"; }; '
              'complete_words venv-prune gra; complete_words venv-prune venvdir --prof; '
              'complete_words venv-prune venvdir --profile agg')
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("_VENV_PRUNE")})
    assert out.stdout.splitlines() == ["graph", "--profile", "aggressive"], out


def test_pyproject_found_here_or_above_and_isolated_ignores_it(synth_env: Path, tmp_path: Path) -> None:
    project = tmp_path / "app"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.venv-prune]\nname = "app-profile"\nextends = "safe"\n\n'
        '[[tool.venv-prune.rule]]\nid = "notes"\npatterns = ["*.md"]\nreason = "notes"\n')
    before = tree_digest(synth_env)
    proc = run(str(synth_env), "--dry-run", "--format", "json", cwd=project / "src")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["profile"] == "app-profile" and "notes" in {r["rule"] for r in report["rules"]}
    assert str(project / "pyproject.toml") in proc.stderr
    for opt_out in ("--isolated", "--no-config"):
        proc = run(str(synth_env), "--dry-run", "--format", "json", opt_out, cwd=project / "src")
        assert json.loads(proc.stdout)["profile"] == "standard"
    proc = run(str(synth_env), "--dry-run", "--format", "json", "--profile", "aggressive", cwd=project)
    assert json.loads(proc.stdout)["profile"] == "aggressive" and "is not used" in proc.stderr
    # A pyproject.toml without the table is passed over.
    (project / "src" / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    proc = run(str(synth_env), "--dry-run", "--format", "json", cwd=project / "src")
    assert json.loads(proc.stdout)["profile"] == "app-profile"
    assert tree_digest(synth_env) == before


def test_options_from_environment_variables(synth_env: Path, tmp_path: Path) -> None:
    before = tree_digest(synth_env)
    proc = run(str(synth_env), "--format", "json", cwd=tmp_path,
               env={"VENV_PRUNE_PROFILE": "aggressive", "VENV_PRUNE_DRY_RUN": "1",
                    "VENV_PRUNE_REMOVE": "*.md pkg/core.py"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["profile"] == "aggressive" and report["dry_run"] is True
    gone = {a["path"].rsplit("/", 1)[-1] for a in report["actions"]}
    assert {"NOTES.md", "core.py"} <= gone
    assert tree_digest(synth_env) == before
    # The command line wins over the environment; --help names the variables.
    proc = run(str(synth_env), "--format", "json", "--profile", "safe", cwd=tmp_path,
               env={"VENV_PRUNE_PROFILE": "aggressive", "VENV_PRUNE_DRY_RUN": "true"})
    assert json.loads(proc.stdout)["profile"] == "safe"
    help_text = run("prune", "--help").stdout
    for var in ("VENV_PRUNE_PROFILE", "VENV_PRUNE_KEEP_FROM", "VENV_PRUNE_FORMAT", "VENV_PRUNE_CHECK"):
        assert var in help_text.replace("\n", " ").replace("  ", ""), var


def test_check_from_environment_is_one_command_per_line() -> None:
    from prune.cli import prune_command

    check = next(p for p in prune_command.params if p.name == "checks")
    assert check.type.split_envvar_value("python -m app --smoke\nsh ./t.sh") == ["python -m app --smoke", "sh ./t.sh"]


def test_colour_only_on_a_terminal_and_never_under_no_color(synth_env: Path) -> None:
    runner = CliRunner()
    coloured = runner.invoke(cli, [str(synth_env), "--dry-run", "-q"], color=True, env={"NO_COLOR": ""})
    assert coloured.exit_code == 0 and "\x1b[" in coloured.output
    plain = runner.invoke(cli, [str(synth_env), "--dry-run", "-q"], color=True, env={"NO_COLOR": "1"})
    assert plain.exit_code == 0 and "\x1b[" not in plain.output
    assert click.unstyle(coloured.output) == plain.output
    piped = run(str(synth_env), "--dry-run")  # a pipe is not a terminal
    assert "\x1b[" not in piped.stdout + piped.stderr


def test_counter_lines_in_a_log_and_one_rewritten_line_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Log(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self._tty = tty

        def isatty(self) -> bool:
            return self._tty

    for tty in (False, True):
        log = Log(tty)
        monkeypatch.setattr(sys, "stderr", log)
        emit = progress_printer(quiet=False)
        emit("scanning /opt/venv")
        for i in range(1, 121):
            emit(f"verifying {i}/120")
        emit("committing")
        text = log.getvalue()
        if tty:
            assert text.count("\r") == 120 and text.count("\n") == 3, text[-200:]
        else:
            counted = [line for line in text.splitlines() if line.startswith("venv-prune: verifying")]
            assert 10 <= len(counted) <= 12 and counted[-1] == "venv-prune: verifying 120/120"
    assert progress_printer(quiet=True) is None


def test_verification_counts_on_stderr(synth_env: Path) -> None:
    add_dist(synth_env, "other", {f"other{i}/__init__.py": "" for i in range(12)})
    proc = run(str(synth_env))
    assert proc.returncode == 0, proc.stderr
    before = [line for line in proc.stderr.splitlines() if "checking imports before pruning" in line]
    after = [line for line in proc.stderr.splitlines() if line.startswith("venv-prune: verifying ")]
    # 13 top-level modules at least (verification may add what the prune touched).
    done, total = map(int, before[-1].split()[-1].split("/"))
    assert done == total >= 13, proc.stderr
    done, total = map(int, after[-1].split()[-1].split("/"))
    assert done == total >= 13, proc.stderr


def test_per_distribution_before_and_after_sizes_match_the_disk(synth_env: Path) -> None:
    add_dist(synth_env, "big", {"big/__init__.py": "", "big/data.bin": b"\1" * 5000,
                                "big/docs/guide.txt": "g" * 3000, "big/mod.pyi": "x: int\n"})
    site = next((synth_env / "lib").glob("python*/site-packages"))

    def on_disk(top: str) -> int:
        info = next(site.glob(f"{top}-*.dist-info"))
        return sum(p.stat().st_size for d in (site / top, info) for p in d.rglob("*") if p.is_file())

    sizes_before = {"big": on_disk("big"), "pkg": on_disk("pkg")}
    record = {n: next(site.glob(f"{n}-*.dist-info")).joinpath("RECORD").stat().st_size for n in sizes_before}
    proc = run(str(synth_env), "--format", "json", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["name"]: r for r in report["distributions"]}
    for name in ("big", "pkg"):
        assert rows[name]["bytes_before"] == sizes_before[name]
        # The RECORD is rewritten without the removed files' lines: it shrinks a little.
        assert 0 <= rows[name]["bytes_after"] - on_disk(name) < record[name], name
    assert rows["big"]["bytes_after"] < rows["big"]["bytes_before"]
    assert sum(r["bytes_after"] for r in rows.values()) == report["totals"]["bytes_after"]
    text = run(str(synth_env), "--dry-run").stdout
    assert "By distribution, largest after first (before -> after, removed):" in text
    assert any(line.rstrip().endswith(" big") and "->" in line for line in text.splitlines())


def test_graph_tree_and_reverse_tree_as_pipdeptree_draws_them(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "app", {"app/__init__.py": ""}, requires=("web>=2", "h11"))
    add_dist(root, "web", {"web/__init__.py": ""}, version="2.1", requires=("h11<1",), requested=False)
    add_dist(root, "h11", {"h11/__init__.py": ""}, version="0.16.0", requested=False)
    add_dist(root, "loop-a", {"loop_a/__init__.py": ""}, requires=("loop-b",))
    add_dist(root, "loop-b", {"loop_b/__init__.py": ""}, requires=("loop-a",), requested=False)
    proc = run("graph", str(root), "--tree")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:4] == [
        "app==1.0",
        "  - h11 [required: any, installed: 0.16.0]",
        "  - web [required: >=2, installed: 2.1]",
        "    - h11 [required: <1, installed: 0.16.0]",
    ]
    proc = run("graph", str(root), "--reverse")
    lines = proc.stdout.splitlines()
    at = lines.index("h11==0.16.0")
    assert lines[at + 1:at + 4] == ["  - app==1.0 [requires: h11]",
                                    "  - web==2.1 [requires: h11<1]",
                                    "    - app==1.0 [requires: web>=2]"]
    nodes = json.loads(run("graph", str(root), "--tree", "--format", "json").stdout)
    # A loop has no top (nothing outside it requires it): it is drawn from its first member.
    assert [n["name"] for n in nodes] == ["app", "loop-a"]
    assert nodes[1]["children"][0]["children"][0] == {
        "name": "loop-a", "version": "1.0", "remove": False, "required": "any", "cycle": True}
