"""prune/pipeline: a library caller of ``run`` gets the whole job the command line does
(requirements roots, --output, --relocate, the size gate), and the request is checked whole
before anything is read (issue 18)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import tree_digest
from synth import SITE, add_dist, make_venv_tree

from prune.errors import UsageError
from prune.pipeline import PruneRequest, run
from prune.pipeline.finish import relocate
from prune.plan import PlanOptions


def _env(root: Path) -> Path:
    make_venv_tree(root, python=False)
    add_dist(root, "app", {"app/__init__.py": "import lib\n"}, requires=("lib",))
    add_dist(root, "lib", {"lib/__init__.py": "", "lib/tests/test_x.py": "", "lib/x.pyi": ""}, requested=False)
    add_dist(root, "extra", {"extra/__init__.py": ""}, requested=False)
    return root


def _request(path: Path, **fields: object) -> PruneRequest:
    return PruneRequest(str(path), profile="standard", verify=False, measure_startup=False, **fields)  # type: ignore[arg-type]


def test_relocate_rewrites_pyvenv_cfg_also_without_bin(tmp_path: Path) -> None:
    # cli.py:287 read ``[cfg] + sorted(bin/*) if bin/ exists else []``: without bin/ (a
    # prefix-less copy) pyvenv.cfg kept naming the source.
    out = tmp_path / "out"
    out.mkdir()
    (out / "pyvenv.cfg").write_text("home = /src/env/bin\ncommand = /src/env/bin/python -m venv /src/env\n")
    relocate(out, "/opt/final", "/src/env")
    assert (out / "pyvenv.cfg").read_text() == ("home = /opt/final/bin\n"
                                                "command = /opt/final/bin/python -m venv /opt/final\n")


def test_relocate_rewrites_scripts_but_not_binaries_or_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "bin").mkdir(parents=True)
    (out / "pyvenv.cfg").write_text("home = /src/env/bin\n")
    (out / "bin" / "tool").write_text("#!/src/env/bin/python\n")
    (out / "bin" / "blob").write_bytes(b"\0ELF /src/env/lib")
    os.symlink("/src/env/bin/python3", out / "bin" / "python")
    relocate(out, "/opt/final", "/src/env")
    assert (out / "pyvenv.cfg").read_text() == "home = /opt/final/bin\n"
    assert (out / "bin" / "tool").read_text() == "#!/opt/final/bin/python\n"
    assert (out / "bin" / "blob").read_bytes() == b"\0ELF /src/env/lib"
    assert os.readlink(out / "bin" / "python") == "/src/env/bin/python3"


def test_a_library_run_copies_relocates_and_gates_as_the_command_does(tmp_path: Path) -> None:
    src = _env(tmp_path / "src").resolve()
    (src / "bin" / "tool").write_text(f"#!{src}/bin/python\n")
    before = tree_digest(src)
    out = tmp_path / "out"
    outcome = run(_request(src, output=str(out), relocate="/opt/final", max_size=1))
    assert tree_digest(src) == before, "--output leaves the source alone"
    assert outcome.plan.inventory.env.root == out.resolve(), "the outcome is seen at DIR"
    assert outcome.result is not None and outcome.over_max_size
    assert not (out / SITE / "lib" / "x.pyi").exists() and (src / SITE / "lib" / "x.pyi").exists()
    assert (out / "bin" / "tool").read_text() == "#!/opt/final/bin/python\n", "--relocate rewrote the copy"
    assert not any(n.startswith(".out.venv-prune-output-") for n in os.listdir(tmp_path))
    assert outcome.extras.max_size == 1 and outcome.extras.layer_note is None
    assert not run(_request(out, dry_run=True, max_size=10**9)).over_max_size


def test_requirements_roots_join_the_roots_once_the_scan_has_seen_the_project(tmp_path: Path) -> None:
    env = _env(tmp_path / "env")
    req = tmp_path / "requirements.txt"
    req.write_text("app\n")
    plain = run(_request(env, dry_run=True))
    assert set(plain.plan.roots) == {"app"}, "without roots: what was installed by name"
    outcome = run(_request(env, dry_run=True, requirements=str(req), options=PlanOptions(roots=("extra",))))
    assert set(outcome.plan.roots) == {"app", "extra"}
    project = tmp_path / "pyproject.toml"
    project.write_text('[project]\nname = "lib"\ndependencies = ["app"]\n')
    outcome = run(_request(env, dry_run=True, requirements=str(project)))
    assert set(outcome.plan.roots) == {"app", "lib"}, "the installed project itself is a root"


@pytest.mark.parametrize(("fields", "says"), [
    ({"relocate": "/opt/x"}, "--relocate needs --output"),
    ({"extras": ("dev",)}, "--extra needs --requirements"),
    ({"requirements": "/nonexistent/requirements.txt"}, "no such file"),
    ({"options": PlanOptions(remove=("!x",))}, "--keep 'x'"),
    ({"optimize": 3}, "--optimize 3"),
    ({"checks": ("true",), "verify": False}, "--no-verify"),
])
def test_a_bad_request_is_refused_before_anything_is_read(tmp_path: Path, fields: dict[str, object],
                                                          says: str) -> None:
    env = _env(tmp_path / "env")
    before = tree_digest(env)
    with pytest.raises(UsageError, match=says.replace("(", r"\(")):
        run(PruneRequest(str(env), **fields))  # type: ignore[arg-type]
    assert tree_digest(env) == before
