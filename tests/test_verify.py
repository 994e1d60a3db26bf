"""Tests for prune.verify: baseline and verification with the target's own interpreter.

Real virtual environments from the session fixtures are the ground truth; failure cases add a
small hand-made distribution (dist-info with METADATA, RECORD and entry points) to their
site-packages. The inventory helper here reads dist-infos with importlib-metadata so that
these tests do not depend on prune.scan.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import importlib_metadata
import pytest
from conftest import tree_digest

from prune.env import Environment, locate
from prune.errors import UsageError
from prune.model import Distribution, EntryPoint, FileEntry, Inventory
from prune.verify import (
    Baseline,
    EntryPointTarget,
    Failure,
    ModuleTarget,
    Outcome,
    VerificationCost,
    capture_baseline,
    entry_point_targets,
    importable_modules,
    verification_cost,
    verify,
)
from prune.verify import _worker as probe_worker

FreshVenv = Callable[..., Path]


# --------------------------------------------------------------------------- helpers


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def inventory_of(root: Path) -> Inventory:
    """A minimal Inventory of a real environment, read with importlib-metadata."""
    env = locate(root)
    dists: list[Distribution] = []
    owners: dict[str, str] = {}
    for site in env.site_packages:
        base = env.root / site
        for dist in importlib_metadata.distributions(path=[str(base)]):
            name = _canonical(dist.metadata["Name"])
            files = sorted(
                p for p in (
                    os.path.normpath(os.path.join(site, str(f))).replace(os.sep, "/")
                    for f in dist.files or ()
                ) if not p.startswith("..")
            )
            owners.update(dict.fromkeys(files, name))
            dists.append(Distribution(
                name=name, display_name=dist.metadata["Name"], version=dist.version,
                metadata_dir="", site=site, files=tuple(files),
                top_level=tuple((dist.read_text("top_level.txt") or "").split()),
                requires=(), extras=(),
                entry_points=tuple(EntryPoint(e.group, e.name, e.value) for e in dist.entry_points),
                requested=False, editable=False,
            ))
    entries = []
    for dirpath, _, filenames in os.walk(env.root):
        for filename in filenames:
            rel = os.path.relpath(os.path.join(dirpath, filename), env.root)
            entries.append(FileEntry(rel, 0, False, owners.get(rel)))
    return Inventory(env=env, distributions=tuple(sorted(dists, key=lambda d: d.name)),
                     files=tuple(sorted(entries, key=lambda f: f.path)), dirs=())


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def add_dist(site: Path, name: str, files: Mapping[str, str], entry_points: str = "") -> None:
    """Install a hand-made distribution: its files plus a dist-info importlib.metadata finds."""
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    listed = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    if entry_points:
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        listed.append(f"{info.name}/entry_points.txt")
    (info / "RECORD").write_text("".join(f"{p},,\n" for p in listed))


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def mods(*names: str, dist: str = "demo") -> tuple[ModuleTarget, ...]:
    return tuple(ModuleTarget(n, dist) for n in names)


def by_name(baseline: Baseline) -> dict[str, Outcome]:
    return {o.name: o for o in baseline.outcomes}


DEMO = {
    "pkg/__init__.py": "import pkg.core\nVALUE = pkg.core.VALUE\n",
    "pkg/core.py": "VALUE = 42\n",
    "pkg/cli.py": "def main():\n    return 0\n",
    "pkg/plugin.py": "class Plugin:\n    pass\n",
    "standalone.py": "X = 1\n",
}
DEMO_EPS = """\
    [console_scripts]
    demo-tool = pkg.cli:main

    [demo.plugins]
    plug = pkg.plugin:Plugin
"""


@pytest.fixture
def demo_env(fresh_venv: FreshVenv) -> Path:
    """A real venv (requests) plus the hand-made distribution ``demo``."""
    env = fresh_venv(["requests"])
    add_dist(site_packages(env), "demo", DEMO, DEMO_EPS)
    return env


# --------------------------------------------------------------------------- pure parts


def _fake_env(site: str) -> Environment:
    return Environment(root=Path("/nonexistent"), kind="venv", site_packages=(site,),
                       python=None, python_version=(3, 12), scripts_dir="bin", walk=("",))


def _inventory(files: list[tuple[str, str | None]], dists: dict[str, list[str]], *,
               top: tuple[str, ...] = (), editable: bool = False) -> Inventory:
    """An inventory of a fake environment: only what importable_modules reads."""
    site = "lib/python3.12/site-packages"
    distributions = tuple(
        Distribution(
            name=name, display_name=name, version="1", metadata_dir="", site=site,
            files=tuple(f"{site}/{p}" for p in paths), top_level=tuple(top),
            requires=(), extras=(), entry_points=(), requested=False,
            editable=editable,
        )
        for name, paths in dists.items()
    )
    return Inventory(
        env=_fake_env(site),
        distributions=distributions,
        files=tuple(FileEntry(f"{site}/{p}", 1, False, owner) for p, owner in files),
        dirs=(),
    )


def test_importable_modules_from_record_files() -> None:
    inv = _inventory(
        [("loose.py", None), ("looseext.cpython-312-x86_64-linux-gnu.so", None),
         ("pkg/__init__.py", "pkg"), ("owned_by_two.py", None)],
        {
            "pkg": ["pkg/__init__.py", "pkg/core.py", "pkg/__pycache__/core.cpython-312.pyc",
                    "pkg-1.0.dist-info/METADATA", "single.py", "fast.cpython-312-x86_64-linux-gnu.so",
                    "abi.abi3.so", "win.cp312-win_amd64.pyd", "sourceless.pyc",
                    "bad-name.py", ".hidden.py", "pkg.libs/libx.so", "data_only/table.csv",
                    "__pycache__/single.cpython-312.pyc", "owned_by_two.py",
                    "ns/sub/__init__.py", "ns/sub/x.py", "ns/mod.py", "ns/deep/inner/__init__.py",
                    "ns/data/file.json", "extpkg/__init__.cpython-312-x86_64-linux-gnu.so",
                    "../../../bin/tool"],
            "aaa": ["owned_by_two.py"],
        },
    )
    names = [(m.name, m.distribution) for m in importable_modules(inv)]
    assert names == sorted(names)
    assert names == [
        ("abi", "pkg"), ("extpkg", "pkg"), ("fast", "pkg"), ("loose", ""), ("looseext", ""),
        ("ns.deep.inner", "pkg"), ("ns.mod", "pkg"), ("ns.sub", "pkg"), ("owned_by_two", "aaa"),
        ("pkg", "pkg"), ("single", "pkg"), ("sourceless", "pkg"), ("win", "pkg"),
    ]


def test_importable_modules_editable_adds_top_level() -> None:
    inv = _inventory([], {"proj": ["__editable__.proj-1.0.pth"]}, editable=True,
                     top=("proj", "not-a-module"))
    assert importable_modules(inv) == (ModuleTarget("proj", "proj"),)


def test_entry_point_targets_sorted_and_labelled() -> None:
    site = "s"
    dist = Distribution(
        name="b", display_name="b", version="1", metadata_dir="", site=site, files=(),
        top_level=(), requires=(), extras=(), requested=False, editable=False,
        entry_points=(EntryPoint("console_scripts", "z", "b:z"), EntryPoint("a.group", "y", "b:y")),
    )
    inv = Inventory(env=_fake_env(site), distributions=(dist,), files=(), dirs=())
    targets = entry_point_targets(inv)
    assert [t.label for t in targets] == ["a.group:y", "console_scripts:z"]
    assert targets[0] == EntryPointTarget("b", "a.group", "y", "b:y")


def test_baseline_sorts_working_from_broken() -> None:
    baseline = Baseline(
        python="/opt/venv/bin/python", python_version="3.8.18", paths=("/wheelhouse",),
        modules=(ModuleTarget("pkg", "demo"), ModuleTarget("ünïcode", "")),
        entry_points=(EntryPointTarget("demo", "console_scripts", "demo-tool", "pkg.cli:main"),),
        checks=("python -m app --selftest",),
        outcomes=(
            Outcome("import", "pkg", "demo", True, ""),
            Outcome("import", "ünïcode", "", False, "SyntaxError: invalid syntax"),
            Outcome("entry_point", "console_scripts:demo-tool", "demo", True, ""),
            Outcome("check", "python -m app --selftest", "", False, "exit status 2: boom"),
        ),
        seconds=1.25,
    )
    assert [o.name for o in baseline.broken] == ["ünïcode", "python -m app --selftest"]
    assert baseline.ok_modules == ("pkg",)


def test_verification_cost() -> None:
    cost = VerificationCost(1.5, 0.5)
    assert cost.seconds == 2.0
    assert cost.share(8.0) == 0.25
    assert cost.share(0) == 0.0
    baseline = Baseline("p", "3.12.0", (), (), (), (), (), 1.5)
    assert verification_cost(baseline).seconds == 1.5


def test_worker_runs_on_python_38_grammar() -> None:
    """The probe runs inside targets as old as 3.8: it must parse with 3.8's grammar."""
    source = inspect.getsource(probe_worker)
    ast.parse(source, feature_version=(3, 8))


# --------------------------------------------------------------------------- real environments


def test_real_venv_baseline_verify_and_nothing_written(fresh_venv: FreshVenv) -> None:
    env = fresh_venv(["requests"])
    inv = inventory_of(env)
    modules = importable_modules(inv)
    names = {m.name for m in modules}
    assert {"requests", "urllib3", "idna", "certifi", "charset_normalizer"} <= names
    before = tree_digest(env)
    baseline = capture_baseline(python_of(env), modules, entry_point_targets(inv),
                                env_root=env, timeout=30)
    outcomes = by_name(baseline)
    for name in ("requests", "urllib3", "idna", "certifi", "charset_normalizer"):
        assert outcomes[name].ok, outcomes[name]
    assert outcomes["console_scripts:normalizer"].ok
    assert baseline.python_version.count(".") == 2
    result = verify(python_of(env), baseline, env_root=env,
                    timeout=30)
    assert result.ok, result.failures
    assert result.checked == len(baseline.working)
    assert result.cost.seconds >= result.seconds > 0
    assert tree_digest(env) == before  # no __pycache__, nothing at all written


def test_module_that_loses_a_file_is_reported(demo_env: Path) -> None:
    env = demo_env
    inv = inventory_of(env)
    modules = importable_modules(inv)
    assert ModuleTarget("pkg", "demo") in modules
    assert ModuleTarget("standalone", "demo") in modules
    before = tree_digest(env)
    baseline = capture_baseline(python_of(env), modules, entry_point_targets(inv), env_root=env)
    assert by_name(baseline)["pkg"].ok
    assert tree_digest(env) == before
    (site_packages(env) / "pkg" / "core.py").unlink()
    result = verify(python_of(env), baseline, env_root=env)
    assert Failure("import", "pkg", "demo",
                   "ModuleNotFoundError: No module named 'pkg.core'") in result.failures
    assert {f.distribution for f in result.failures} == {"demo"}
    assert not (site_packages(env) / "pkg" / "__pycache__").exists()


def test_module_broken_in_baseline_is_ignored(fresh_venv: FreshVenv) -> None:
    env = fresh_venv(["requests"])
    add_dist(site_packages(env), "demo", {
        "broken.py": "raise RuntimeError('was never working')\n",
        "fine.py": "import broken_dep\n",
        "broken_dep.py": "Y = 2\n",
    })
    targets = mods("broken", "fine")
    baseline = capture_baseline(python_of(env), targets, env_root=env)
    assert by_name(baseline)["broken"].error == "RuntimeError: was never working"
    (site_packages(env) / "broken.py").write_text("raise ValueError('worse now')\n")
    result = verify(python_of(env), baseline, env_root=env)
    assert result.ok and result.checked == 1
    (site_packages(env) / "broken_dep.py").unlink()
    result = verify(python_of(env), baseline, env_root=env)
    assert [f.name for f in result.failures] == ["fine"]
    assert result.failures[0].error == "ModuleNotFoundError: No module named 'broken_dep'"


BAD_MODULES = {
    "a_first.py": "A = 1\n",
    "b_segv.py": "import ctypes\nctypes.string_at(0)\n",
    "c_mid.py": "C = 1\n",
    "d_exit.py": "import os\nos._exit(3)\n",
    "e_sysexit.py": "import sys\nsys.exit(4)\n",
    "f_hang.py": "import time\ntime.sleep(120)\n",
    "g_chatty.py": (
        "import os, sys\nprint('x' * 200000)\nsys.stderr.write('e' * 200000)\n"
        "os.write(1, b'{\"ok\": false}\\n')\nsys.stdin.read()\n"
    ),
    "h_last.py": "H = 1\n",
}


@pytest.mark.parametrize("jobs", [1, 2])
def test_crashing_and_hanging_modules_are_isolated(fresh_venv: FreshVenv, jobs: int) -> None:
    env = fresh_venv()
    add_dist(site_packages(env), "demo", BAD_MODULES)
    targets = mods(*(name[:-3] for name in sorted(BAD_MODULES)))
    started = time.monotonic()
    baseline = capture_baseline(python_of(env), targets, env_root=env, jobs=jobs, timeout=2)
    assert time.monotonic() - started < 20
    outcomes = by_name(baseline)
    assert outcomes["b_segv"].error == "crashed the interpreter (SIGSEGV)"
    assert outcomes["d_exit"].error == "ended the interpreter (exit status 3)"
    assert outcomes["e_sysexit"].error == "SystemExit: 4"
    assert outcomes["f_hang"].error == "timed out after 2s"
    assert {n for n, o in outcomes.items() if o.ok} == {"a_first", "c_mid", "g_chatty", "h_last"}
    result = verify(python_of(env), baseline, env_root=env, jobs=jobs, timeout=2)
    assert result.ok and result.checked == 4


def test_crash_and_hang_that_appear_after_pruning_are_failures(fresh_venv: FreshVenv) -> None:
    env = fresh_venv()
    site = site_packages(env)
    add_dist(site, "demo", {"a.py": "", "b.py": "", "c.py": "", "d.py": ""})
    baseline = capture_baseline(python_of(env), mods("a", "b", "c", "d"), env_root=env,
                                timeout=2)
    assert len(baseline.working) == 4
    (site / "b.py").write_text("import ctypes\nctypes.string_at(0)\n")
    (site / "c.py").write_text("import time\ntime.sleep(120)\n")
    result = verify(python_of(env), baseline, env_root=env, timeout=2, jobs=1)
    assert result.failures == (
        Failure("import", "b", "demo", "crashed the interpreter (SIGSEGV)"),
        Failure("import", "c", "demo", "timed out after 2s"),
    )


def test_interrupt_stops_promptly_and_kills_interpreters(fresh_venv: FreshVenv,
                                                         tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM turned into an exception) during a baseline ends it within a
    moment, and no interpreter it started is left running.

    The signal is sent once both interpreters have really started (their pid files exist),
    not after a fixed delay: with both cores busy they took longer than one (issue 16). The
    imports sleep, and the baseline waits, far longer than any machine takes to start them, so
    the baseline cannot end on its own first: on a CI run at load 10 beside other work, a
    60-second timeout ended it before the signal came."""
    env = fresh_venv()
    pids = tmp_path / "pids"
    pids.mkdir()
    hang = f"import os, time\nopen(os.path.join({str(pids)!r}, str(os.getpid())), 'w').close()\n"
    add_dist(site_packages(env), "demo", {"hang1.py": hang + "time.sleep(600)\n",
                                          "hang2.py": hang + "time.sleep(600)\n"})
    sent: list[float] = []
    stop = threading.Event()

    def interrupt_when_both_run() -> None:
        deadline = time.monotonic() + 600
        while not stop.is_set() and time.monotonic() < deadline:
            if len(list(pids.iterdir())) >= 2:
                time.sleep(0.05)  # let them reach their sleep
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=interrupt_when_both_run, daemon=True)
    # A process started as a background job of a non-interactive shell (a CI script's `cmd &`)
    # inherits SIGINT ignored, and Python then installs no handler: Ctrl-C's handler is what
    # this test is about, so it is put in place for the test and restored after.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            capture_baseline(python_of(env), mods("hang1", "hang2"), env_root=env, timeout=600, jobs=2)
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGINT, previous)
    assert sent, "the interpreters never started"
    assert time.monotonic() - sent[0] < 10
    started_pids = [int(p.name) for p in pids.iterdir()]
    assert len(started_pids) == 2
    for pid in started_pids:
        deadline = time.monotonic() + 10
        while True:  # killed at once; reaped within a moment even on a busy machine
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"interpreter {pid} still running"
            time.sleep(0.05)


def test_import_order_is_not_a_failure(fresh_venv: FreshVenv) -> None:
    """A module that fails only after another import in the same process is re-checked in a
    fresh interpreter, where it imports: not a failure, in the baseline or after."""
    env = fresh_venv()
    add_dist(site_packages(env), "demo", {
        "aa_polluter.py": "import sys\nsys.modules['victim_dep'] = None\n",
        "victim.py": "import victim_dep\n",
        "victim_dep.py": "",
    })
    targets = mods("aa_polluter", "victim")
    baseline = capture_baseline(python_of(env), targets, env_root=env, jobs=1)
    assert len(baseline.working) == 2
    result = verify(python_of(env), baseline, env_root=env, jobs=1)
    assert result.ok


def test_entry_points_load_through_importlib_metadata(demo_env: Path) -> None:
    env = demo_env
    site = site_packages(env)
    inv = inventory_of(env)
    eps = tuple(t for t in entry_point_targets(inv) if t.distribution == "demo")
    assert [t.label for t in eps] == ["console_scripts:demo-tool", "demo.plugins:plug"]
    baseline = capture_baseline(python_of(env), (), eps, env_root=env)
    assert len(baseline.working) == 2
    (site / "pkg" / "cli.py").unlink()
    (site / "pkg" / "plugin.py").write_text("class Other:\n    pass\n")
    result = verify(python_of(env), baseline, env_root=env)
    assert [(f.kind, f.name, f.error) for f in result.failures] == [
        ("entry_point", "console_scripts:demo-tool",
         "ModuleNotFoundError: No module named 'pkg.cli'"),
        ("entry_point", "demo.plugins:plug",
         "AttributeError: module 'pkg.plugin' has no attribute 'Plugin'"),
    ]
    # Plugin discovery reads entry_points.txt at run time: losing it breaks the entry point.
    (site / "pkg" / "cli.py").write_text("def main():\n    return 0\n")
    (site / "demo-1.0.dist-info" / "entry_points.txt").unlink()
    result = verify(python_of(env), baseline, env_root=env)
    assert result.failures[0] == Failure(
        "entry_point", "console_scripts:demo-tool", "demo",
        "LookupError: importlib.metadata finds no entry point console_scripts:demo-tool in demo",
    )


def test_check_commands(demo_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = demo_env
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # a user's check keeps its PYTHONPATH
    (tmp_path / "app.py").write_text("import pkg\nprint('app ok')\n")
    checks = [
        "python -c 'import app'",
        f"test \"$VIRTUAL_ENV\" = '{env}' && test \"$(command -v python)\" = '{env}/bin/python'",
        "echo already failing; exit 3",
    ]
    baseline = capture_baseline(python_of(env), (), (), checks, env_root=env)
    assert [o.ok for o in baseline.outcomes] == [True, True, False]
    assert baseline.outcomes[2].error == "exit status 3: already failing"
    (site_packages(env) / "pkg" / "core.py").unlink()
    result = verify(python_of(env), baseline, env_root=env)
    assert result.failures == (
        Failure("check", "python -c 'import app'", "",
                "exit status 1: ModuleNotFoundError: No module named 'pkg.core'"),
    )
    assert result.checked == 2


def test_target_directory_with_named_python(tmp_path: Path) -> None:
    """A ``pip install --target`` directory is verified with a named interpreter via paths."""
    target = tmp_path / "wheelhouse"
    target.mkdir()
    add_dist(target, "demo", {"only_here.py": "import os\n"})
    baseline = capture_baseline(sys.executable, mods("only_here"), env_root=target,
                                paths=[target])
    assert baseline.working and baseline.paths == (str(target),)
    (target / "only_here.py").unlink()
    result = verify(sys.executable, baseline, env_root=target)
    assert [f.name for f in result.failures] == ["only_here"]


def test_interpreter_that_does_not_start(fresh_venv: FreshVenv, tmp_path: Path) -> None:
    env = fresh_venv()
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match="init_fs_encoding"):
        capture_baseline(fake, mods("os"), env_root=env)
    with pytest.raises(UsageError, match="no runnable interpreter"):
        capture_baseline(tmp_path / "missing", mods("os"), env_root=env)
    baseline = capture_baseline(python_of(env), mods("json", dist=""), env_root=env)
    result = verify(fake, baseline, env_root=env)
    assert len(result.failures) == 1
    assert result.failures[0].error.startswith("the interpreter no longer starts")
    assert "init_fs_encoding" in result.failures[0].error
    result = verify(tmp_path / "gone", baseline, env_root=env)
    assert result.failures[0].error.startswith("the interpreter no longer starts: cannot run")


def test_rejects_bad_options(fresh_venv: FreshVenv) -> None:
    env = fresh_venv()
    with pytest.raises(UsageError):
        capture_baseline(python_of(env), (), env_root=env, jobs=0)
    with pytest.raises(UsageError):
        capture_baseline(python_of(env), (), env_root=env, timeout=0)


@pytest.mark.slow
def test_batched_baseline_beats_one_process_per_module(fresh_venv: FreshVenv) -> None:
    """requests + numpy: the batched baseline (modules and entry points) against the naive
    ``python -c "import X"`` per module (imports only)."""
    env = fresh_venv(["requests", "numpy"])
    inv = inventory_of(env)
    modules = importable_modules(inv)
    entry_points = entry_point_targets(inv)
    started = time.perf_counter()
    baseline = capture_baseline(python_of(env), modules, entry_points, env_root=env)
    batched = time.perf_counter() - started
    assert by_name(baseline)["numpy"].ok
    started = time.perf_counter()
    for module in modules:
        subprocess.run([str(python_of(env)), "-c", f"import {module.name}"],
                       capture_output=True, check=False)
    naive = time.perf_counter() - started
    print(f"\nbaseline {batched:.2f}s for {len(modules)} modules + {len(entry_points)} entry "
          f"points; naive {naive:.2f}s for the modules alone")
    assert batched < naive + 1.0


# --------------------------------------------------------------------------- issue 15: kinds E, case 7

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PRUNE), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_touched_modules_are_the_packages_and_modules_beside_removed_files() -> None:
    site = "lib/python3.12/site-packages"
    inv = _inventory(
        [("lazy/__init__.py", "lazy"), ("lazy/filters/__init__.py", "lazy"),
         ("lazy/filters/__init__.pyi", "lazy"), ("lazy/filters/edges.py", "lazy"),
         ("lazy/filters/__main__.py", "lazy"), ("lazy/filters/_c.cpython-312-x86_64-linux-gnu.so", "lazy"),
         ("lazy/measure/__init__.py", "lazy"), ("lazy/measure/tests/__init__.py", "lazy"),
         ("lazy/measure/tests/test_x.py", "lazy"), ("lazy/other/__init__.py", "lazy"),
         ("lazy/other/core.py", "lazy"), ("gone/__init__.py", "lazy"), ("gone/sub/__init__.py", "lazy"),
         ("gone/sub/a.pyi", "lazy"), ("lazy/__pycache__/x.cpython-312.pyc", "lazy"),
         ("top.pyi", "lazy"), ("top.py", "lazy")],
        {"lazy": []},
    )
    removed = [f"{site}/{p}" for p in ("lazy/filters/__init__.pyi", "lazy/measure/tests",
                                       "gone/__init__.py", "gone/sub/a.pyi", "top.pyi")]
    from prune.verify import touched_modules

    names = [m.name for m in touched_modules(inv, removed)]
    # The lazily loaded subpackage and the modules beside the removed stub; the package
    # that lost its tests directory; not __main__, not a package under a removed __init__,
    # not the top of site-packages (top-level modules are checked anyway).
    assert names == ["lazy.filters", "lazy.filters._c", "lazy.filters.edges", "lazy.measure"]
    assert {m.distribution for m in touched_modules(inv, removed)} == {"lazy"}
    assert touched_modules(inv, []) == ()


# A lazily loaded subpackage that parses the stub beside it when imported, as
# lazy_loader.attach_stub does (skimage.filters); the name is put together at run time so that
# no evidence scan sees it: verification is the backstop for what the planner cannot know.
LAZY = {
    "lazypkg/__init__.py": "VALUE = 1\n",
    "lazypkg/filters/__init__.py": textwrap.dedent("""\
        import os
        _stub = os.path.join(os.path.dirname(__file__), "__init__." + "py" + chr(105))
        if not os.path.exists(_stub):
            raise ValueError(f"Cannot load imports from non-existent stub {_stub!r}")
        def otsu():
            return 3
    """),
    "lazypkg/filters/__init__.pyi": "def otsu() -> int: ...\n",
}


def test_a_lazily_loaded_subpackage_beside_a_removed_stub_is_verified(
        fresh_venv: FreshVenv) -> None:
    from synth import add_dist as synth_add_dist

    env = fresh_venv()
    synth_add_dist(env, "lazypkg", LAZY, site=site_packages(env).relative_to(env).as_posix())
    before = tree_digest(env)
    proc = _cli(env, "--profile", "standard", "--format", "json", "-q")
    # Before issue 15: exit 0, "verification: passed", and `import lazypkg.filters` failed.
    assert proc.returncode == 1, proc.stderr
    import json

    report = json.loads(proc.stdout)
    (failure,) = [f for f in report["verification"]["failures"] if f["name"] == "lazypkg.filters"]
    assert "non-existent stub" in failure["error"]
    assert failure["rules"] == [
        f"type-stubs ({site_packages(env).relative_to(env).as_posix()}/lazypkg/filters/__init__.pyi)"]
    assert tree_digest(env) == before
    assert run_python_in(env, "import lazypkg.filters; print(lazypkg.filters.otsu())") == "3"


def run_python_in(env: Path, code: str) -> str:
    proc = subprocess.run([str(python_of(env)), "-B", "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_report_says_what_was_checked_and_what_was_removed_on_purpose(
        fresh_venv: FreshVenv) -> None:
    import json

    env = fresh_venv(["six"])
    proc = _cli(env, "--profile", "standard", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    verification = json.loads(proc.stdout)["verification"]
    assert verification["status"] == "passed"
    assert verification["checked"]["modules"] >= 1  # six, at least
    # pip goes with the standard profile: removed on purpose, so not "verified".
    not_verified = {(g["kind"], g["name"]) for g in verification["not_verified"]}
    assert ("distribution", "pip") in not_verified
    text = _cli(fresh_venv(["six"]), "--profile", "standard", "-q").stdout
    assert "not verified, removed on purpose: distribution pip" in text


def test_a_check_that_fails_before_pruning_is_refused(fresh_venv: FreshVenv) -> None:
    env = fresh_venv()
    before = tree_digest(env)
    proc = _cli(env, "--check", "false", "-q")
    # Before issue 15: exit 0, "verification: passed", the environment pruned.
    assert proc.returncode == 2, proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--check 'false' already fails before pruning" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_digest(env) == before


def test_the_library_refuses_a_check_that_fails_before_pruning(fresh_venv: FreshVenv) -> None:
    from prune import PruneRequest, run

    env = fresh_venv()
    before = tree_digest(env)
    with pytest.raises(UsageError, match="already fails before pruning"):
        run(PruneRequest(path=str(env), checks=("exit 3",)))
    assert tree_digest(env) == before


def test_a_check_is_never_dropped_by_no_verify(fresh_venv: FreshVenv) -> None:
    env = fresh_venv()
    before = tree_digest(env)
    proc = _cli(env, "--check", "true", "--no-verify", "-q")
    assert proc.returncode == 2, proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "--no-verify" in proc.stderr, proc.stderr
    assert tree_digest(env) == before


def test_a_module_beside_removed_files_gets_a_short_deadline_and_no_recheck(
        fresh_venv: FreshVenv, monkeypatch: pytest.MonkeyPatch) -> None:
    # Modules checked only because a file beside them goes (kind E) must not cost the full
    # per-import timeout when one hangs, nor a fresh interpreter per failure.
    import prune.verify.pool as verify_pool

    env = fresh_venv()
    add_dist(site_packages(env), "extra", {"extra/__init__.py": "",
                                           "extra/hangs.py": "import time\ntime.sleep(600)\n",
                                           "extra/broken.py": "raise ImportError('optional dep')\n",
                                           "extra/fine.py": "X = 1\n"})
    monkeypatch.setattr(verify_pool, "FIRST_TRY_TIMEOUT", 2.0)
    started = time.monotonic()
    baseline = capture_baseline(python_of(env), mods("extra.broken", "extra.fine", "extra.hangs", dist="extra"),
                                env_root=env, jobs=1, timeout=120,
                                first_try={"extra.broken", "extra.fine", "extra.hangs"})
    assert time.monotonic() - started < 60
    outcome = by_name(baseline)
    assert outcome["extra.fine"].ok and not outcome["extra.broken"].ok
    assert outcome["extra.hangs"].error == "timed out after 2s"


# -------------------------------------------------- imports that only the order decides

ORDER = {
    # pkg.m imported first: m imports pkg.s, which asks m for X while m is still
    # initializing ("cannot import name 'X' from partially initialized module"); pkg.s
    # imported first works, and so does pkg.m after it (scipy 1.17's
    # scipy.linalg._matfuncs_sqrtm_triu and _matfuncs_sqrtm).
    "pkg/__init__.py": "",
    "pkg/m.py": "import pkg.s\nX = 1\n",
    "pkg/s.py": "from pkg.m import X\n",
    "pkg/gone.py": "import pkg.removed_helper\n",
    "pkg/removed_helper.py": "",
}


def test_a_circular_import_is_asked_again_as_the_baseline_asked_it(fresh_venv: FreshVenv) -> None:
    """A module that worked in the baseline only after its interpreter imported a sibling
    fails when the check after pruning imports it first; it is asked again after what ran
    before it in the baseline, and passes. Without that history the failure stands, and a
    removed file's failure always stands."""
    env = fresh_venv()
    add_dist(site_packages(env), "demo", ORDER, "")
    python = python_of(env)
    targets = mods("pkg.s", "pkg.m", "pkg.gone")
    baseline = capture_baseline(python, targets, env_root=env, jobs=1)
    assert [(o.name, o.ok, o.after) for o in baseline.outcomes] == [
        ("pkg.s", True, ()), ("pkg.m", True, (("import", "pkg.s"),)),
        ("pkg.gone", True, (("import", "pkg.s"), ("import", "pkg.m")))]
    # The check after pruning asks pkg.m first (another order, as parallel workers may).
    reordered = Baseline(baseline.python, baseline.python_version, baseline.paths,
                         mods("pkg.m", "pkg.s", "pkg.gone"), (), (),
                         (baseline.outcomes[1], baseline.outcomes[0], baseline.outcomes[2]), baseline.seconds)
    (site_packages(env) / "pkg" / "removed_helper.py").unlink()
    result = verify(python, reordered, env_root=env, jobs=1)
    assert [(f.name, f.error.split(":")[0]) for f in result.failures] == [("pkg.gone", "ModuleNotFoundError")]
    # No history (it ran first in the baseline): the circular-import failure stands.
    bare = Baseline(baseline.python, baseline.python_version, baseline.paths, mods("pkg.m"), (), (),
                    (Outcome("import", "pkg.m", "demo", True, ""),), baseline.seconds)
    failures = verify(python, bare, env_root=env, jobs=1).failures
    assert len(failures) == 1 and "partially initialized module" in failures[0].error
