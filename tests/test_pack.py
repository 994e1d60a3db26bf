"""Reproducible archives: same tree, same bytes; unpacked elsewhere, the environment works."""

from __future__ import annotations

import gzip
import os
import py_compile
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prune.cli.pack import pack_command
from prune.errors import EnvironmentNotFound, UsageError
from prune.pack import DEFAULT_EPOCH, pack, resolve_epoch


def make_tree(root: Path) -> Path:
    """Files, an executable, nested and empty dirs, relative and dangling links, a hard link,
    a non-ASCII name and a path longer than ustar's 100 characters."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o750)
    (root / "lib" / "pkg").mkdir(parents=True)
    (root / "lib" / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "lib" / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 40)
    os.chmod(root / "lib" / "pkg" / "data.bin", 0o600)
    (root / "empty").mkdir()
    (root / "bin" / "python").symlink_to("/usr/bin/python3")
    (root / "lib" / "link").symlink_to("pkg")
    (root / "lib" / "dangling").symlink_to("nowhere")
    os.link(root / "lib" / "pkg" / "__init__.py", root / "lib" / "hard.py")
    (root / "lib" / "ünïcode.txt").write_text("ü\n", encoding="utf-8")
    deep = root / "lib" / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "long-name.txt").write_text("deep\n")
    return root


def extracted_view(root: Path) -> dict[str, tuple[str, object, bool]]:
    """What must survive a round trip: kind, content or link target, exec bit."""
    out: dict[str, tuple[str, object, bool]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st_ = os.lstat(p)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(p), False)
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", None, False)
            else:
                out[rel] = ("file", p.read_bytes(), bool(st_.st_mode & 0o111))
    return out


def extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="tar")
        else:  # pragma: no cover - Python < 3.12 without the backport
            tar.extractall(dest)


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz"])
def test_same_tree_same_bytes_even_after_touch(tmp_path: Path, suffix: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = make_tree(tmp_path / "tree")
    first = pack(tree, tmp_path / f"a{suffix}")
    os.utime(tree / "lib" / "pkg" / "__init__.py", (1_800_000_000, 1_800_000_000))
    os.utime(tree / "bin", None)
    second = pack(tree, tmp_path / f"b{suffix}")
    assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()
    assert first.sha256 == second.sha256
    assert first.compression == (None if suffix == ".tar" else "gz")
    assert first.entries == len(extracted_view(tree))
    assert first.epoch == DEFAULT_EPOCH


def test_member_metadata_is_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = make_tree(tmp_path / "tree")
    out = tmp_path / "t.tar.gz"
    pack(tree, out)
    raw = out.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0  # FLG: no file name, no comment, no extra field
    assert raw[4:8] == b"\0\0\0\0"  # MTIME
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names.index("lib") < names.index("lib/pkg") < names.index("lib/pkg/__init__.py")
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == 0
        if m.isdir():
            assert m.mode == 0o755
        elif m.issym():
            assert m.mode == 0o777
        else:
            assert m.isfile(), m.name  # the hard link is stored as a plain file
    modes = {m.name: m.mode for m in members}
    assert modes["bin/tool"] == 0o755
    assert modes["lib/pkg/data.bin"] == 0o644
    links = {m.name: m.linkname for m in members if m.issym()}
    assert links == {"bin/python": "/usr/bin/python3", "lib/dangling": "nowhere",
                     "lib/link": "pkg"}


def test_round_trip_and_prefix(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, tmp_path / "t.tar")
    extract(tmp_path / "t.tar", tmp_path / "x")
    assert extracted_view(tmp_path / "x") == extracted_view(tree)
    pack(tree, tmp_path / "p.tar.gz", prefix="/opt/venv/")
    extract(tmp_path / "p.tar.gz", tmp_path / "y")
    assert extracted_view(tmp_path / "y" / "opt" / "venv") == extracted_view(tree)


def test_source_date_epoch_clamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "tree")
    os.utime(tree / "lib" / "pkg" / "__init__.py", (500, 500))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000")
    result = pack(tree, tmp_path / "t.tar")
    assert result.epoch == 1_000_000
    with tarfile.open(tmp_path / "t.tar") as tar:
        times = {m.name: m.mtime for m in tar.getmembers()}
    assert times["lib/pkg/__init__.py"] == 500  # older than the epoch: kept
    assert times["bin/tool"] == 1_000_000  # newer: clamped
    assert pack(tree, tmp_path / "u.tar", epoch=7).epoch == 7


def test_stale_bytecode_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, mode in (("ts", py_compile.PycInvalidationMode.TIMESTAMP),
                       ("hashed", py_compile.PycInvalidationMode.UNCHECKED_HASH)):
        (tree / f"{name}.py").write_text("VALUE = 1\n")
        py_compile.compile(str(tree / f"{name}.py"), doraise=True, invalidation_mode=mode)
    result = pack(tree, tmp_path / "t.tar")
    assert len(result.stale_bytecode) == 1
    assert result.stale_bytecode[0].startswith("__pycache__/ts.")


def test_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "tree")
    with pytest.raises(UsageError, match="FILE.tar or FILE.tar.gz"):
        pack(tree, tmp_path / "t.zip")
    with pytest.raises(UsageError, match="inside the tree"):
        pack(tree, tree / "lib" / "self.tar")
    with pytest.raises(EnvironmentNotFound):
        pack(tmp_path / "missing", tmp_path / "t.tar")
    with pytest.raises(UsageError, match="does not exist"):
        pack(tree, tmp_path / "nodir" / "t.tar")
    with pytest.raises(UsageError, match="prefix"):
        pack(tree, tmp_path / "t.tar", prefix="../up")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        pack(tree, tmp_path / "t.tar")
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    os.mkfifo(tree / "fifo")
    with pytest.raises(UsageError, match="FIFO"):
        pack(tree, tmp_path / "t.tar")
    assert not list(tmp_path.glob(".t.tar*"))  # no temporary file left behind
    assert not (tmp_path / "t.tar").exists()


def test_resolve_epoch() -> None:
    assert resolve_epoch(None, {}) == DEFAULT_EPOCH
    assert resolve_epoch(None, {"SOURCE_DATE_EPOCH": " 1700000000 "}) == 1_700_000_000
    assert resolve_epoch(5, {"SOURCE_DATE_EPOCH": "9"}) == 5
    with pytest.raises(UsageError):
        resolve_epoch(-1)


names = st.text(alphabet="abcXYZ_-.é0", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.dictionaries(
        st.lists(names, min_size=1, max_size=3).map(tuple),
        st.tuples(st.binary(max_size=300), st.booleans(), st.integers(1_000, 2_000_000_000)),
        max_size=12,
    )
)
def test_property_reproducible_and_faithful(files: dict[tuple[str, ...], tuple[bytes, bool, int]]) -> None:
    """Any tree packs to the same bytes after its mtimes move (within the clamp: every time at
    or after the epoch, as a touch gives), and extracts to the same content."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree = base / "tree"
        tree.mkdir()
        for parts, (data, executable, mtime) in files.items():
            target = tree.joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a path that is a prefix of another; skip it
            os.chmod(target, 0o755 if executable else 0o644)
            os.utime(target, (mtime, mtime))
        a = pack(tree, base / "a.tar.gz", epoch=1_000)
        for p in tree.rglob("*"):
            os.utime(p, None, follow_symlinks=False)
        b = pack(tree, base / "b.tar.gz", epoch=1_000)
        assert (base / "a.tar.gz").read_bytes() == (base / "b.tar.gz").read_bytes()
        assert a.sha256 == b.sha256
        with gzip.open(base / "a.tar.gz") as fh:
            assert fh.read(1)  # a valid gzip stream
        extract(base / "a.tar.gz", base / "x")
        assert extracted_view(base / "x") == extracted_view(tree)


def test_numpy_env_packed_and_unpacked_elsewhere_works(venvs, tmp_path: Path) -> None:
    env = venvs.fresh(["numpy"], tmp_path / "env")
    first = pack(env, tmp_path / "a.tar")
    os.utime(next((env / "lib").glob("python3.*/site-packages/numpy/__init__.py")), None)
    second = pack(env, tmp_path / "b.tar")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    moved = tmp_path / "elsewhere"
    extract(tmp_path / "a.tar", moved)
    code = ("import sys, numpy as np; a = np.array([[2.0, 1.0], [1.0, 3.0]]); "
            "print(sys.prefix); print(round(float((np.linalg.inv(a) @ a).trace()), 6))")
    proc = run_python(moved, code)
    assert proc.returncode == 0, proc.stderr
    prefix, trace = proc.stdout.split()
    assert Path(prefix).resolve() == moved.resolve()
    assert trace == "2.0"


def test_cli(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    runner = CliRunner()
    result = runner.invoke(pack_command, [str(tree), "-o", str(tmp_path / "t.tar.gz")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "sha256" in result.output
    bad = runner.invoke(pack_command, [str(tree), "-o", str(tmp_path / "t.rar")])
    assert isinstance(bad.exception, UsageError)
    missing = runner.invoke(pack_command, [str(tree)])
    assert isinstance(missing.exception, UsageError)
    helptext = runner.invoke(pack_command, ["--help"]).output
    assert helptext.rstrip().splitlines()[-1].strip().startswith("venv-prune pack")


def test_real_subprocess_cli(tmp_path: Path, project_root: Path) -> None:
    """The installed console script, if the lead's group has registered ``pack``."""
    exe = Path(os.environ.get("VIRTUAL_ENV", project_root / ".venv")) / "bin" / "venv-prune"
    if not exe.exists():
        pytest.skip("venv-prune console script not installed")
    tree = make_tree(tmp_path / "tree")
    proc = subprocess.run([str(exe), "pack", str(tree), "-o", str(tmp_path / "t.tar")],
                          capture_output=True, text=True, check=False)
    if "No such command" in proc.stderr:
        pytest.skip("pack not registered in the main command group yet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t.tar").is_file()
    bad = subprocess.run([str(exe), "pack", str(tree), "-o", str(tmp_path / "t.zip")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_an_unreadable_file_is_one_line_exit_4_and_nothing_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: an unreadable file in the tree was a traceback and exit 1."""
    import builtins

    from prune import pack as packmod
    from prune.cli import main

    tree = make_tree(tmp_path / "tree")
    locked = tree / "lib" / "pkg" / "data.bin"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads everything: the operating system's answer to anyone else, injected
        real_open = builtins.open

        def refusing(file, *args, **kw):  # type: ignore[no-untyped-def]
            if str(file) == str(locked):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kw)

        monkeypatch.setattr(packmod, "open", refusing, raising=False)
    out = tmp_path / "env.tar.gz"
    code = main(["pack", str(tree), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 4
    assert len(err.strip().splitlines()) == 1 and "data.bin: Permission denied" in err, err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["tree"]


def test_an_unreadable_file_through_the_console_script(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything (the in-process test injects the refusal)")
    tree = make_tree(tmp_path / "tree")
    (tree / "lib" / "pkg" / "data.bin").chmod(0)
    proc = subprocess.run([str(Path(sys.executable).parent / "venv-prune"), "pack", str(tree), "-o",
                           str(tmp_path / "env.tar")], capture_output=True, text=True)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "data.bin" in proc.stderr


@pytest.mark.parametrize("state", [".venv-prune", ".venv-prune-bytecode"])
def test_a_tree_with_an_interrupted_runs_state_is_not_packed(tmp_path: Path, state: str) -> None:
    from prune.errors import PendingJournal

    tree = make_tree(tmp_path / "tree")
    (tree / state).mkdir()
    (tree / state / "journal.json").write_text("{}")
    with pytest.raises(PendingJournal, match="recover"):
        pack(tree, tmp_path / "env.tar")
    assert not (tmp_path / "env.tar").exists()
