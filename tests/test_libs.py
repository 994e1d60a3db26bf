"""``libs``: system libraries an environment's extensions need and do not carry."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_strip import build_extension, site_packages

from prune.cli.libs import libs_command, render_text
from prune.env import locate
from prune.errors import EnvironmentNotFound
from prune.libs import (
    BASE_IMAGE_LIBRARIES,
    MissingLibrary,
    debian_packages,
    known_packages,
    missing_libraries,
    resolve_library,
    scan_needs,
)

YEXT_SOURCE = textwrap.dedent(
    """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #include <yaml.h>
    #include <zlib.h>
    static PyObject *versions(PyObject *self, PyObject *args) {
        return Py_BuildValue("ss", yaml_get_version_string(), zlibVersion());
    }
    static PyMethodDef methods[] = {{"versions", versions, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "yext", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_yext(void) { return PyModule_Create(&def); }
    """
)

YAML_SONAME = "libyaml-0.so.2"


@pytest.fixture(scope="module")
def yaml_env(venvs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose extension links libyaml (not carried, not in python:slim) and zlib (in it)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    if not (Path("/usr/include/yaml.h").is_file() and Path("/usr/include/zlib.h").is_file()):
        pytest.skip("needs libyaml-dev and zlib1g-dev headers")
    env = venvs.fresh([], tmp_path_factory.mktemp("libs") / "env")
    build_extension(env, YEXT_SOURCE, "yext", site_packages(env), "-lyaml", "-lz")
    return env


def test_names_the_library_and_the_extension(yaml_env: Path) -> None:
    missing = missing_libraries(locate(yaml_env))
    assert [m.name for m in missing] == [YAML_SONAME]
    (lib,) = missing
    assert len(lib.needed_by) == 1
    assert lib.needed_by[0].startswith("lib/python3.")
    assert Path(lib.needed_by[0]).name.startswith("yext.")
    assert lib.resolvable and Path(lib.resolved or "").exists()
    if shutil.which("dpkg-query"):
        assert lib.package == "libyaml-0-2"


def test_carried_and_base_libraries_are_not_reported(yaml_env: Path, tmp_path: Path) -> None:
    env = locate(yaml_env)
    # zlib is in python:slim; with an empty base list it is reported too
    names = {m.name for m in missing_libraries(env, base=(), resolve=False)}
    assert {"libz.so.1", YAML_SONAME} <= names
    # once the environment carries the library (as auditwheel would), it is not missing
    carried = site_packages(yaml_env) / "yext.libs"
    carried.mkdir()
    try:
        resolved = resolve_library(YAML_SONAME)
        assert resolved
        shutil.copy2(resolved, carried / YAML_SONAME)
        assert missing_libraries(env) == ()
    finally:
        shutil.rmtree(carried)


def test_pure_mode_does_not_resolve(yaml_env: Path) -> None:
    (lib,) = missing_libraries(locate(yaml_env), resolve=False)
    assert (lib.resolved, lib.package) == (None, None)


def test_numpy_needs_nothing_beyond_slim(venvs) -> None:
    """numpy's wheel carries libopenblas/libgfortran/libquadmath; libgfortran's libz is in slim."""
    env = locate(venvs.pristine(["numpy"]))
    elves, carried = scan_needs(env.root, env.walk)
    assert any("numpy.libs/" in e.path for e in elves)
    assert any(n.startswith("libquadmath") for n in carried)
    assert missing_libraries(env) == ()


def test_resolution_helpers() -> None:
    cache = {"libfoo.so.1": [("libc6", "/lib32/libfoo.so.1"),
                             ("libc6,x86-64", "/lib64/libfoo.so.1")]}
    assert resolve_library("libfoo.so.1", 64, cache) == "/lib64/libfoo.so.1"
    assert resolve_library("libfoo.so.1", 32, cache) == "/lib32/libfoo.so.1"
    assert resolve_library("libnot-a-real-library.so.9", 64, {}) is None
    if shutil.which("dpkg-query"):
        libc = resolve_library("libc.so.6")
        assert libc and debian_packages([libc])[libc].startswith("libc6")
    assert debian_packages([]) == {}


def test_base_list_is_data() -> None:
    assert "libc.so.6" in BASE_IMAGE_LIBRARIES
    assert BASE_IMAGE_LIBRARIES["libstdc++.so.6"] == "libstdc++6"
    assert "libGL.so.1" not in BASE_IMAGE_LIBRARIES  # opencv's classic slim-image failure
    assert "libpq.so.5" not in BASE_IMAGE_LIBRARIES  # psycopg2 from source


def test_cli_text_and_json(yaml_env: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(libs_command, [str(yaml_env)])
    assert text.exit_code == 0, text.output
    assert YAML_SONAME in text.output and "yext." in text.output
    if shutil.which("dpkg-query"):
        assert "apt-get install -y --no-install-recommends libyaml-0-2" in text.output
    as_json = runner.invoke(libs_command, [str(yaml_env), "--format", "json"])
    doc = json.loads(as_json.output)
    assert [m["name"] for m in doc["missing"]] == [YAML_SONAME]
    assert list(doc) == sorted(doc)
    missing = runner.invoke(libs_command, [str(yaml_env / "nope")])
    assert isinstance(missing.exception, EnvironmentNotFound)
    helptext = runner.invoke(libs_command, ["--help"]).output
    assert helptext.rstrip().splitlines()[-1].strip().startswith("venv-prune libs")


def test_render_text_without_findings() -> None:
    assert "No missing libraries" in render_text(())
    out = render_text((MissingLibrary("libGL.so.1", ("a/b.so",)),))
    assert "not found on this machine" in out and "apt-get" not in out


def test_pyodbc_names_libodbc2_on_a_machine_without_it(venvs) -> None:
    """pyodbc's manylinux wheel links unixODBC's libodbc.so.2 and does not carry it; the
    runtime stage needs the package name even where the build machine lacks the library
    (issue 17): it comes from the shipped bookworm table when dpkg cannot say."""
    env = venvs.pristine(["pyodbc"])
    by_name = {m.name: m for m in missing_libraries(locate(env))}
    lib = by_name["libodbc.so.2"]
    assert lib.package == "libodbc2"
    if resolve_library("libodbc.so.2") is None:
        assert (lib.resolved, lib.package_from) == (None, "table")
    text = CliRunner().invoke(libs_command, [str(env)]).output
    assert "libodbc2  (Debian 12 bookworm; not installed on this machine)" in text or lib.package_from == "dpkg"
    assert "apt-get install -y --no-install-recommends libodbc2" in text
    doc = json.loads(CliRunner().invoke(libs_command, [str(env), "--format", "json"]).output)
    assert "libodbc2" in doc["packages"]


def test_soname_table_names_real_bookworm_packages() -> None:
    table = known_packages()
    assert table["libpq.so.5"] == "libpq5" and table["libGL.so.1"] == "libgl1"
    assert all(".so" in soname and "/" not in soname for soname in table)
    assert not set(table) & set(BASE_IMAGE_LIBRARIES)  # the base image's are never missing
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None or "bookworm" not in Path("/etc/os-release").read_text():
        pytest.skip("checking names needs a Debian 12 package index")
    import subprocess

    packages = sorted(set(table.values()))
    proc = subprocess.run([apt_cache, "show", "--no-all-versions", *packages], capture_output=True, text=True)
    found = {line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("Package: ")}
    assert set(packages) - found == set()
