"""Evidence for keeping a distribution beyond Requires-Dist and imports (issue 15, kind C),
and the user's word against profile lists (kind D), on real venvs pruned by the real command.

Kind C: kept code that runs ``python -m pip`` keeps pip (spaCy's ``download``, case 3); on a
Python 3.12+ target, kept code importing ``distutils`` keeps setuptools, its only provider
there (undetected-chromedriver, case 4). Kind D: a distribution installed by name is not
removed by the development-tools list in standard (black shipped as the product, case 6);
notebook kernels and servers are not development tools (the kernel gateway, case 5); a plan
that removes every distribution installed by name is refused unless forced.

The cheap cases use real packages from the index (black, jinja2, setuptools on 3.12) or a
small synthetic distribution that reproduces the mechanism inside a real venv; spaCy, the
kernel gateway and undetected-chromedriver themselves are in the slow tier.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import VenvFactory, tree_digest
from synth import add_dist

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
PY312 = "/root/.pyenv/versions/3.12.1/bin/python"
PY313 = "/root/.pyenv/versions/3.13.0/bin/python"
PROFILES = ("standard", "aggressive")


def prune(env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PRUNE), str(env), *args], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "NO_COLOR": "1"})


def prune_ok(env: Path, *args: str) -> dict[str, Any]:
    """Prune for real with a JSON report; assert exit 0, verification passed, bytes removed."""
    res = prune(env, *args, "--format", "json")
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stderr[-4000:]}\n{res.stdout[-2000:]}"
    data: dict[str, Any] = json.loads(res.stdout)
    assert data["verification"]["status"] == "passed", data["verification"]
    assert data["totals"]["bytes_removed"] > 0
    return data


def decisions(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in data["distribution_decisions"]}


def run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env / "bin" / "python"), "-B", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def site_of(env: Path) -> str:
    return str(next((env / "lib").glob("python*/site-packages")).relative_to(env))


def requested(env: Path) -> set[str]:
    site = env / site_of(env)
    return {p.parent.name.split("-", 1)[0].lower().replace("_", "-")
            for p in site.glob("*.dist-info/REQUESTED")}


# --- kind C: what kept code runs --------------------------------------------------------------

# spaCy 3.8's spacy/cli/download.py, reduced to the mechanism: it looks pip up, then runs it.
INSTALLER_USER = textwrap.dedent('''
    import importlib.util
    import shutil
    import sys


    def installer():
        if importlib.util.find_spec("pip") is not None:
            return [sys.executable, "-m", "pip", "install"]
        elif shutil.which("uv"):
            return ["uv", "pip", "install"]
        raise SystemExit("No package installer found")
''')


@pytest.mark.parametrize("profile", PROFILES)
def test_kept_code_running_python_m_pip_keeps_pip(profile: str, fresh_venv: Callable[..., Path],
                                                  tmp_path: Path) -> None:
    env = fresh_venv([])  # python -m venv: ensurepip marks pip REQUESTED, a seed, not a root
    add_dist(env, "modeldl", {"modeldl/__init__.py": INSTALLER_USER}, site=site_of(env))
    data = prune_ok(env, "--profile", profile)
    pip = decisions(data)["pip"]
    assert not pip["remove"], pip
    assert pip["reason"] == ("kept: modeldl 1.0 runs python -m pip or looks the module up "
                             f"({site_of(env)}/modeldl/__init__.py)")
    proc = run(env, "-c", "import modeldl, subprocess; cmd = modeldl.installer(); "
                          "print(subprocess.run(cmd[:3] + ['--version'], check=True))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert run(env, "-m", "pip", "list", cwd=tmp_path).returncode == 0


# IPython 9's %pip magic (IPython/core/magics/packaging.py), reduced to the mechanism.
PIP_MAGIC = textwrap.dedent('''
    import subprocess
    import sys


    def pip(line):
        subprocess.run([sys.executable, "-m", "pip", *line.split()])
''')


@pytest.mark.parametrize("profile", PROFILES)
def test_what_a_kept_development_tool_runs_keeps_pip_only_in_standard(
        profile: str, fresh_venv: Callable[..., Path]) -> None:
    """A kept interactive shell's ``%pip`` runs ``python -m pip``: standard keeps pip for it;
    aggressive (``keep_what_dev_tools_run = false``) removes pip and warns, naming the run
    and ``--keep-dist pip`` (the flaskdev benchmark: IPython kept for matplotlib-inline)."""
    env = fresh_venv([])
    site = site_of(env)
    add_dist(env, "ipython", {"IPython/__init__.py": "", "IPython/magics.py": PIP_MAGIC},
             site=site, top_level=("IPython",), requested=False)
    add_dist(env, "plotapp", {"plotapp/__init__.py": "import IPython\n"}, site=site, requires=("ipython",))
    data = prune_ok(env, "--profile", profile)
    pip, ipython = decisions(data)["pip"], decisions(data)["ipython"]
    assert not ipython["remove"], ipython
    warnings = [d["message"] for d in data["diagnostics"] if d["code"] == "dev-tool-run"]
    if profile == "standard":
        assert not pip["remove"] and "kept: ipython 1.0 runs python -m pip" in pip["reason"], pip
        assert warnings == []
    else:
        assert pip["remove"], pip
        assert len(warnings) == 1 and f"({site}/IPython/magics.py)" in warnings[0], warnings
        assert "--keep-dist pip keeps it" in warnings[0] and "interactive shell" in warnings[0]
        assert not (env / site / "pip").exists()


def test_graph_command_shows_what_kept_code_runs(fresh_venv: Callable[..., Path]) -> None:
    env = fresh_venv([])
    add_dist(env, "modeldl", {"modeldl/__init__.py": INSTALLER_USER}, site=site_of(env))
    res = subprocess.run([str(VENV_PRUNE), "graph", str(env), "--format", "json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    pip = next(d for d in json.loads(res.stdout)["distributions"] if d["name"] == "pip")
    assert not pip["remove"] and "modeldl 1.0 runs python -m pip" in pip["reason"], pip


def test_pip_still_goes_when_nothing_runs_it(fresh_venv: Callable[..., Path]) -> None:
    env = fresh_venv([])
    add_dist(env, "quiet", {"quiet/__init__.py": "MESSAGE = 'run python -m pip install x'\n"},
             site=site_of(env))
    data = prune_ok(env, "--profile", "standard")
    assert decisions(data)["pip"]["remove"]


DISTUTILS_USER = "from distutils.version import LooseVersion\n\nV = LooseVersion('1.2')\n"


@pytest.mark.parametrize("profile", PROFILES)
def test_distutils_import_keeps_setuptools_on_python_312(
        profile: str, fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    """undetected-chromedriver's mechanism (case 4): on 3.12 setuptools, installed by name,
    is the only provider of distutils."""
    env = fresh_venv(["setuptools==84.2.1"], python=PY312)
    add_dist(env, "chromedriverish", {"chromedriverish/__init__.py": DISTUTILS_USER},
             site=site_of(env))
    assert "setuptools" in requested(env)
    data = prune_ok(env, "--profile", profile)
    st = decisions(data)["setuptools"]
    assert not st["remove"], st
    assert st["reason"].startswith("kept: chromedriverish 1.0 imports distutils.version")
    proc = run(env, "-c", "import chromedriverish; print(chromedriverish.V)", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "1.2", proc.stderr


# --- kind D: the user's word beats profile lists ----------------------------------------------

@pytest.fixture(scope="session")
def virtualenv_exe(venvs: VenvFactory) -> Path:
    """``virtualenv`` from a helper venv (case 6 makes its venv with virtualenv)."""
    return venvs.pristine(["virtualenv"]) / "bin" / "virtualenv"


@pytest.fixture(scope="session")
def black_product(virtualenv_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install black jinja2` in a virtualenv-made venv: black is the product."""
    env = tmp_path_factory.mktemp("case6") / "venv"
    subprocess.run([str(virtualenv_exe), "-q", str(env)], check=True, timeout=600)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "black", "jinja2"], check=True, timeout=600)
    return env


def copy_of(env: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "env"
    subprocess.run(["cp", "-a", str(env), str(dest)], check=True)
    return dest


def test_black_installed_by_name_stays_in_standard(black_product: Path, tmp_path: Path) -> None:
    env = copy_of(black_product, tmp_path)
    assert {"black", "jinja2"} <= requested(env)
    text = prune(env, "--profile", "standard", "--dry-run")
    assert text.returncode == 0, text.stderr
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith("  ? black "))
    assert "MiB)" in line and "--remove-dist black removes it" in line, line

    data = prune_ok(env, "--profile", "standard")
    black = decisions(data)["black"]
    assert not black["remove"] and black["requested"] and black["bytes"] > 1_000_000, black
    assert black["remove_with"] == "--remove-dist black"
    for dep in ("click", "pathspec", "platformdirs", "mypy-extensions", "packaging"):
        assert not decisions(data)[dep]["remove"], dep
    fmt = subprocess.run([str(env / "bin" / "black"), "--check", "-q", "-"], input="x = 1\n",
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert fmt.returncode == 0, fmt.stderr
    assert run(env, "-c", "import jinja2", cwd=tmp_path).returncode == 0


def test_black_installed_by_name_goes_in_aggressive_with_a_warning(
        black_product: Path, tmp_path: Path) -> None:
    env = copy_of(black_product, tmp_path)
    data = prune_ok(env, "--profile", "aggressive")
    assert decisions(data)["black"]["remove"] and not (env / "bin" / "black").exists()
    warned = [d for d in data["diagnostics"] if d["code"] == "requested-removed"]
    assert [d["message"].split(" ", 1)[0] for d in warned] == ["black"], data["diagnostics"]
    assert "--keep-dist black keeps it" in warned[0]["message"]
    assert run(env, "-c", "import jinja2; print(jinja2.Template('{{ 6 * 7 }}').render())",
               cwd=tmp_path).stdout.strip() == "42"


def test_removing_every_distribution_installed_by_name_is_refused(
        black_product: Path, tmp_path: Path) -> None:
    env = copy_of(black_product, tmp_path)
    before = tree_digest(env)
    # jinja2 on the user's word, black by the aggressive list: nothing installed by name stays.
    for extra in ((), ("--dry-run",)):
        res = prune(env, "-q", "--profile", "aggressive", "--remove-dist", "jinja2", *extra)
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert "every distribution installed by name" in res.stderr
        assert "black 26" in res.stderr or "black " in res.stderr
        assert "--force" in res.stderr
    assert tree_digest(env) == before
    data = prune_ok(env, "--profile", "aggressive", "--remove-dist", "jinja2", "--force")
    assert decisions(data)["black"]["remove"] and decisions(data)["jinja2"]["remove"]


UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


@pytest.mark.heavy  # makes a real uv venv
@pytest.mark.skipif(UV is None, reason="needs uv (pip install '.[test]' installs it)")
def test_uv_marks_everything_requested_only_the_top_counts(tmp_path: Path) -> None:
    """`uv pip install black jinja2` marks all nine distributions REQUESTED: black and jinja2
    (nothing installed requires them) count as installed by name, black's dependencies do
    not (only black is warned about, only black is a candidate), but their marks keep them
    as roots: the application may import click itself."""
    env = tmp_path / "uv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(env)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(env / "bin" / "python"),
                    "black", "jinja2"], check=True, timeout=600)
    assert {"black", "click", "jinja2", "markupsafe", "pathspec"} <= requested(env)
    standard = json.loads(prune(env, "--profile", "standard", "--dry-run", "--format", "json").stdout)
    assert decisions(standard)["black"]["remove_with"] == "--remove-dist black"
    assert decisions(standard)["click"]["reason"] == (
        "kept: root (marked REQUESTED by uv, which marks dependencies too)")
    assert not decisions(standard)["click"]["requested"]
    data = prune_ok(env, "--profile", "aggressive")
    gone = {n for n, d in decisions(data).items() if d["remove"]}
    assert gone == {"black"}, gone
    assert [d["message"].split(" ", 1)[0] for d in data["diagnostics"]
            if d["code"] == "requested-removed"] == ["black"]
    assert run(env, "-c", "import jinja2", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_notebook_kernel_and_gateway_installed_by_name_stay(
        profile: str, fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    """The kernel gateway's mechanism (case 5) with small stand-ins of the same names: the
    development-tools list no longer names notebook servers and kernels."""
    env = fresh_venv([])
    site = site_of(env)
    add_dist(env, "ipykernel", {"ipykernel/__init__.py": "KERNEL = 'python3'\n"}, site=site)
    add_dist(env, "jupyter-server", {"jupyter_server/__init__.py": "import ipykernel\n"},
             requested=False, site=site)
    add_dist(env, "jupyter-kernel-gateway",
             {"kernel_gateway/__init__.py": "import jupyter_server, ipykernel\n"},
             requires=("jupyter-server", "ipykernel"), site=site)
    data = prune_ok(env, "--profile", profile)
    for name in ("ipykernel", "jupyter-server", "jupyter-kernel-gateway"):
        assert not decisions(data)[name]["remove"], decisions(data)[name]
    proc = run(env, "-c", "import kernel_gateway, ipykernel; print(ipykernel.KERNEL)", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "python3", proc.stderr


# --- the cases themselves (slow) --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_spacy_download_finds_pip(profile: str, fresh_venv: Callable[..., Path],
                                  tmp_path: Path) -> None:
    """Case 3: `spacy download` runs `python -m pip install`."""
    env = fresh_venv(["spacy==3.8.18"], python=PY312)
    data = prune_ok(env, "--profile", profile)
    assert not decisions(data)["pip"]["remove"]
    proc = run(env, "-c", "from spacy.cli.download import _get_pip_install_cmd as g; "
                          "import subprocess; subprocess.run(g()[:3] + ['--version'], check=True)",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_undetected_chromedriver_on_python_312(profile: str, fresh_venv: Callable[..., Path],
                                               tmp_path: Path) -> None:
    """Case 4: `from distutils.version import LooseVersion` on 3.12 needs setuptools."""
    env = fresh_venv(["undetected-chromedriver==3.5.5", "setuptools==84.2.1",
                      "selenium==4.51.0"], python=PY312)
    data = prune_ok(env, "--profile", profile)
    assert not decisions(data)["setuptools"]["remove"]
    proc = run(env, "-c", "import undetected_chromedriver", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


KERNEL_CHECK = textwrap.dedent('''
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        msg_id = kc.execute("print(6 * 7)")
        out = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        print("".join(out).strip())
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
''')


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_kernel_gateway_kernel_still_starts(profile: str, fresh_venv: Callable[..., Path],
                                            tmp_path: Path) -> None:
    """Case 5: the kernel gateway and ipykernel, installed by name, on Python 3.13."""
    env = fresh_venv(["jupyter-kernel-gateway==3.0.1", "ipykernel==7.4.0"], python=PY313)
    data = prune_ok(env, "--profile", profile)
    assert data["totals"]["distributions_removed"] < data["totals"]["distributions_before"]
    for name in ("ipykernel", "jupyter-kernel-gateway"):
        assert not decisions(data)[name]["remove"]
    proc = run(env, "-c", KERNEL_CHECK, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("42"), proc.stderr[-3000:]
