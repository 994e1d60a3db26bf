"""The command line: exit codes, one-line errors, reports. CliRunner plus real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import tree_digest
from synth import SITE, add_dist, make_venv_tree

from prune.cli import cli, main, parse_size

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"


def run_cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([str(VENV_PRUNE), *args], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def synth_env(tmp_path: Path) -> Path:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {
        "pkg/__init__.py": "from . import core\n",
        "pkg/core.py": "X = 1\n",
        "pkg/__pycache__/core.cpython-311.pyc": b"\0" * 100,
        "pkg/tests/__init__.py": "",
    })
    return root


@pytest.mark.parametrize("make_bad, needle", [
    (lambda tmp: str(tmp / "missing"), "no such directory"),
    (lambda tmp: (tmp / "f.txt").write_text("x") and str(tmp / "f.txt"), "is a file"),
    (lambda tmp: "/", "filesystem root"),
    (lambda tmp: (tmp / "empty").mkdir() or str(tmp / "empty"), "not a Python environment"),
])
def test_bad_paths_exit_2_with_one_line(tmp_path: Path, make_bad, needle: str) -> None:  # type: ignore[no-untyped-def]
    target = make_bad(tmp_path)
    before = tree_digest(tmp_path)
    code, out, err = run_cli(target, "--profile", "aggressive")
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert tree_digest(tmp_path) == before


def test_unknown_and_malformed_profiles_exit_2(synth_env: Path, tmp_path: Path) -> None:
    before = tree_digest(synth_env)
    code, _, err = run_cli(str(synth_env), "--profile", "nope")
    assert code == 2 and "unknown profile" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("extends = 'standard'\n[[rule]]\nid = 'x'\npatterns = 'notalist'\n")
    code, _, err = run_cli(str(synth_env), "--profile", str(bad))
    assert code == 2 and "patterns" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("extends = [\n")
    code, _, err = run_cli(str(synth_env), "--profile", str(broken))
    assert code == 2 and "not valid TOML" in err
    assert tree_digest(synth_env) == before


def test_unknown_option_is_one_line(synth_env: Path) -> None:
    code, _, err = run_cli(str(synth_env), "--bogus")
    assert code == 2 and "No such option" in err and len(err.strip().splitlines()) == 1


def test_user_profile_extends_and_pyproject_config(synth_env: Path, tmp_path: Path) -> None:
    prof = tmp_path / "mine.toml"
    prof.write_text('extends = "safe"\n[[rule]]\nid = "tests"\nenabled = false\n'
                    '[[rule]]\nid = "no-core"\naction = "remove"\npatterns = ["pkg/core.py"]\nreason = "demo"\n')
    code, out, _ = run_cli(str(synth_env), "--profile", str(prof), "--dry-run", "--format", "json", "-q")
    assert code == 0
    rules = {a["rule"] for a in json.loads(out)["actions"]}
    assert "no-core" in rules and "tests" not in rules
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.venv-prune]\nextends = "standard"\n[[tool.venv-prune.rule]]\n'
                         'id = "keep-tests"\naction = "keep"\npatterns = ["tests/"]\n')
    code, out, _ = run_cli(str(synth_env), "--config", str(pyproject), "--dry-run", "--format", "json", "-q")
    assert code == 0
    assert not any("tests" in a["path"] for a in json.loads(out)["actions"])


def test_dry_run_json_changes_nothing(synth_env: Path, tmp_path: Path) -> None:
    before = tree_digest(synth_env)
    report = tmp_path / "r.json"
    code, out, err = run_cli(str(synth_env), "--dry-run", "--format", "json", "--report", str(report))
    assert code == 0, err
    data = json.loads(out)
    assert data["schema"] == "venv-prune-report/1"
    assert data["totals"]["bytes_removed"] > 0
    assert set(data["actions"][0]) >= {"path", "bytes", "rule", "distribution"}
    assert json.loads(report.read_text()) == data
    assert tree_digest(synth_env) == before


def test_markdown_and_text_reports(synth_env: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, [str(synth_env), "--dry-run", "--format", "markdown", "-q"])
    assert res.exit_code == 0 and "| rule | bytes | files |" in res.output
    res = runner.invoke(cli, [str(synth_env), "--dry-run", "-q"])
    assert res.exit_code == 0 and "By rule:" in res.output and "Largest things that stay:" in res.output


def test_python_dash_m_prune_is_the_same_command(synth_env: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "prune", str(synth_env), "--dry-run", "--format", "json", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["bytes_removed"] > 0


def test_profiles_command_lists_and_resolves() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["profiles"])
    assert res.exit_code == 0 and "aggressive" in res.output and "minimal" in res.output
    res = runner.invoke(cli, ["profiles", "aggressive"])
    assert res.exit_code == 0 and "__pycache__/" in res.output and "strip: True" in res.output


def test_recover_on_clean_env_says_nothing_to_do(synth_env: Path) -> None:
    code, _, err = run_cli("recover", str(synth_env))
    assert code == 0 and "nothing to recover" in err


def test_pending_journal_exits_3(synth_env: Path) -> None:
    sdir = synth_env / ".venv-prune"
    sdir.mkdir()
    (sdir / "journal.json").write_text('{"state": "staging", "steps": []}')
    code, _, err = run_cli(str(synth_env), "--dry-run")
    assert code == 3 and "recover" in err


def test_max_size_and_sizes() -> None:
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("2048") == 2048
    assert main(["/nonexistent-dir-xyz"]) == 2


def test_explain_changes_nothing(synth_env: Path) -> None:
    before = tree_digest(synth_env)
    runner = CliRunner()
    res = runner.invoke(cli, [str(synth_env), "--explain", f"{SITE}/pkg/__pycache__/core.cpython-311.pyc", "-q"])
    assert res.exit_code == 0 and "bytecode" in res.output
    assert tree_digest(synth_env) == before


def test_help_has_examples_and_exit_codes() -> None:
    code, out, _ = run_cli("prune", "--help")
    assert code == 0 and "Examples:" in out and "Exit codes:" in out


def test_subcommands_load_only_when_named_and_all_are_listed(synth_env: Path) -> None:
    # A dry run imports neither the subcommands' modules nor the transaction code; --help
    # still lists every subcommand, and each one runs when named.
    code = ("import sys; from prune.cli import main; main([sys.argv[1], '--dry-run', '-q']);"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('prune.'))))")
    proc = subprocess.run([sys.executable, "-c", code, str(synth_env)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.splitlines()[-1].split())
    assert "prune.plan" in loaded and "prune.scan" in loaded
    assert not loaded & {"prune.cli.trace", "prune.cli.pack", "prune.cli.libs", "prune.cli.graph", "prune.trace",
                         "prune.pack", "prune.libs"}, loaded
    res = CliRunner().invoke(cli, ["--help"])
    assert all(name in res.output for name in ("graph", "libs", "pack", "trace", "profiles", "recover"))
    res = CliRunner().invoke(cli, ["pack", "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


def test_a_directory_named_like_a_subcommand_does_not_hide_it(synth_env: Path, tmp_path: Path) -> None:
    # `mkdir graph; venv-prune graph V` is the graph of V (issue 17, item 5); ./graph prunes
    # the directory, and a bare name says how to reach the directory.
    import click

    from prune._start import SUBCOMMANDS

    assert SUBCOMMANDS == set(cli.list_commands(click.Context(cli))), "the launcher's list is the group's"
    work = tmp_path / "work"
    for name in ("graph", "libs", "trace"):
        (work / name).mkdir(parents=True)

    def run_in(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_PRUNE), *args], cwd=work, capture_output=True, text=True, timeout=600)

    proc = run_in("graph", str(synth_env))
    assert proc.returncode == 0, proc.stderr
    assert "pkg" in proc.stdout
    proc = run_in("libs", str(synth_env))
    assert proc.returncode == 0, proc.stderr
    proc = run_in("./graph", "--dry-run")
    assert proc.returncode == 2 and "not a Python environment" in proc.stderr
    proc = run_in("graph")
    assert proc.returncode == 2 and "write ./graph" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_lone_remove_negation_exits_2_naming_keep(synth_env: Path) -> None:
    before = tree_digest(synth_env)
    code, out, err = run_cli(str(synth_env), "--remove", "!pkg/tests/")
    assert code == 2 and "--keep 'pkg/tests/'" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert tree_digest(synth_env) == before


def test_an_os_error_no_handler_expected_is_one_line_exit_4(synth_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16, item 6: the last resort at the command-line boundary. Any OSError that no
    specific handler turned into a PruneError is one line naming the path and the error."""
    import prune.pipeline.job

    def refuse(*args: object, **kw: object) -> None:
        raise PermissionError(13, "Permission denied", str(synth_env / "lib"))

    monkeypatch.setattr(prune.pipeline.job, "scan", refuse)
    code = main([str(synth_env), "-q"])
    err = capsys.readouterr().err
    assert code == 4
    assert len(err.strip().splitlines()) == 1, err
    assert f"{synth_env / 'lib'}: Permission denied (EACCES)" in err


def test_explain_takes_a_path_relative_to_the_current_directory(synth_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A tester wrote the path as the shell shows it from the environment's parent directory.
    monkeypatch.chdir(synth_env.parent)
    rel = f"{synth_env.name}/{SITE}/pkg/__pycache__/core.cpython-311.pyc"
    res = CliRunner().invoke(cli, [str(synth_env), "--explain", rel, "-q"])
    assert res.exit_code == 0, res.output
    assert "is removed" in res.output and "not in the environment" not in res.output


def test_a_rolled_back_run_says_what_it_would_have_removed(synth_env: Path) -> None:
    # A tester's failed run said "removed 47.2 MiB of 58.6 MiB (80.5%)" above "verification:
    # failed (rolled back)": nothing had been removed.
    from prune import build_plan, load_profile, locate, render, scan
    from prune.report import Extras

    plan = build_plan(scan(locate(str(synth_env))), load_profile("standard"))
    failed = render(plan, "text", Extras(dry_run=False, verification="failed (rolled back)"))
    passed = render(plan, "text", Extras(dry_run=False, verification="passed"))
    assert "would have removed (rolled back)" in failed and " removed " in passed
    assert "would have removed" not in passed
