"""Tests for prune/trace.py, prune/_trace_hook and prune/cli/trace.py (issue 5).

Traced runs use real venvs: a child started with sys.executable, multiprocessing workers of
every start method, ctypes and extension modules, importlib.resources and metadata reads.
The trace format is checked by example and by hypothesis properties.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import VenvFactory, run_python, tree_digest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune.cli.trace import trace_command
from prune.env import Environment, locate
from prune.errors import TraceError, UsageError
from prune.trace import (
    TRACE_SCHEMA,
    Trace,
    TracedCommand,
    command_environ,
    load_trace,
    merge,
    parse_trace,
    run_trace,
    write_trace,
)

# requests brings certifi (data read through importlib.resources), idna and
# charset-normalizer (compiled); markupsafe has a C extension (_speedups).
REQS = ["requests", "markupsafe"]


@pytest.fixture(scope="module")
def shared_env(venvs: VenvFactory, tmp_path_factory: pytest.TempPathFactory) -> Environment:
    """One private copy for the tests that only trace (tracing must not change it anyway)."""
    return locate(venvs.fresh(REQS, tmp_path_factory.mktemp("trace") / "env"))


def site(env: Environment) -> str:
    return env.site_packages[0]


def speedups(env: Environment) -> str:
    (so,) = (env.root / site(env) / "markupsafe").glob("_speedups*.so")
    return so.relative_to(env.root).as_posix()


def py(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


# -- processes -------------------------------------------------------------------------------


def test_child_started_with_sys_executable_is_traced(shared_env: Environment) -> None:
    run = run_trace(
        shared_env,
        py("""
            import subprocess, sys
            subprocess.run([sys.executable, "-c", "import requests"], check=True)
        """),
    )
    assert run.exit_code == 0
    assert run.processes == 2
    files = run.trace.module_files()
    # Imported only in the child: the parent never touched requests.
    assert files["requests"] == f"{site(shared_env)}/requests/__init__.py"
    assert "urllib3" in run.trace.module_names()
    assert f"{site(shared_env)}/requests/__init__.py" in run.trace.used_paths()
    assert not any(name.startswith(("json", "subprocess")) for name in files)  # stdlib: not ours


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing_worker_is_traced(
    shared_env: Environment, tmp_path: Path, method: str
) -> None:
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(f"""
            import importlib, multiprocessing, sys
            if __name__ == "__main__":
                ctx = multiprocessing.get_context({method!r})
                worker = ctx.Process(target=importlib.import_module, args=("markupsafe",))
                worker.start()
                worker.join()
                assert "markupsafe" not in sys.modules
                sys.exit(worker.exitcode)
        """)
    )
    run = run_trace(shared_env, ["python", str(script)], cwd=tmp_path)
    assert run.exit_code == 0
    assert run.processes >= 2
    files = run.trace.module_files()
    assert files["markupsafe"] == f"{site(shared_env)}/markupsafe/__init__.py"
    # The worker's extension module, imported last (fork workers end with os._exit).
    assert files["markupsafe._speedups"] == speedups(shared_env)
    assert speedups(shared_env) in run.trace.libraries
    assert run.trace.commands == (
        TracedCommand(("python", str(script)), str(tmp_path), 0, run.processes),
    )


def test_ctypes_dlopen_is_recorded(shared_env: Environment) -> None:
    so = shared_env.root / speedups(shared_env)
    run = run_trace(
        shared_env, ["python", "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(so)]
    )
    assert run.exit_code == 0
    assert speedups(shared_env) in run.trace.libraries
    assert "markupsafe" not in run.trace.module_names()
    assert speedups(shared_env) not in run.trace.files  # a library is listed once


def test_compiled_dependency_extensions_show_in_libraries(shared_env: Environment) -> None:
    run = run_trace(shared_env, py("import charset_normalizer"))
    libs = [lib for lib in run.trace.libraries if "/charset_normalizer/" in lib]
    if not libs:
        pytest.skip("this charset-normalizer wheel is pure Python")
    assert all(lib.endswith(".so") for lib in libs)


# -- what is recorded ------------------------------------------------------------------------


def test_resources_metadata_and_relative_paths(shared_env: Environment) -> None:
    run = run_trace(
        shared_env,
        py("""
            import glob, importlib.metadata, certifi
            certifi.contents()  # importlib.resources files().read_text()
            importlib.metadata.version("idna")
            for path in glob.glob("lib/python*/site-packages/urllib3-*.dist-info/RECORD"):
                open(path).close()
        """),
        cwd=shared_env.root,
    )
    assert run.exit_code == 0, run
    sp = site(shared_env)
    trace = run.trace
    assert f"{sp}/certifi/cacert.pem" in trace.files
    assert any(f.startswith(f"{sp}/idna-") and f.endswith("/METADATA") for f in trace.files)
    assert any(f.startswith(f"{sp}/urllib3-") and f.endswith("/RECORD") for f in trace.files)
    assert {"idna", "urllib3"} <= set(trace.distributions)
    assert "requests" not in trace.distributions
    assert sp in trace.dirs and "lib" in trace.dirs
    assert "pyvenv.cfg" in trace.files
    assert all(not p.startswith("/") and "\\" not in p for p in trace.reached_paths())


def test_environment_is_byte_identical_after_tracing(
    fresh_venv: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fresh_venv(REQS)
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache)  # so an untraced import would write bytecode
    before = tree_digest(root)
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent("""
            import importlib, multiprocessing, subprocess, sys
            import certifi, requests
            certifi.contents()
            subprocess.run([sys.executable, "-c", "import markupsafe, idna"], check=True)
            if __name__ == "__main__":
                p = multiprocessing.get_context("spawn").Process(
                    target=importlib.import_module, args=("charset_normalizer",))
                p.start(); p.join()
        """)
    )
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    run = run_trace(locate(root), ["python", str(script)], cwd=tmp_path)
    assert run.exit_code == 0
    assert {"requests", "markupsafe", "charset_normalizer"} <= run.trace.module_names()
    assert tree_digest(root) == before
    # The check is sensitive: the same imports without the tracer do write into the env.
    run_python(root, "import requests", check=True, write_bytecode=True)
    assert tree_digest(root) != before


def test_existing_sitecustomize_still_runs_and_is_traced(fresh_venv: Any) -> None:
    root = fresh_venv(REQS)
    env = locate(root)
    (root / site(env) / "sitecustomize.py").write_text(
        "import os, idna\nos.environ['APP_SITECUSTOMIZE'] = 'ran'\n"
    )
    run = run_trace(
        env,
        py("""
            import os, sys, sitecustomize
            assert os.environ.get("APP_SITECUSTOMIZE") == "ran"
            assert sitecustomize.__file__.startswith(sys.prefix), sitecustomize.__file__
        """),
    )
    assert run.exit_code == 0
    assert "idna" in run.trace.module_names()  # imported by the chained sitecustomize
    assert run.trace.module_files()["sitecustomize"] == f"{site(env)}/sitecustomize.py"


def test_exit_code_is_passed_through_and_trace_kept(shared_env: Environment) -> None:
    run = run_trace(shared_env, py("import idna, sys; sys.exit(7)"))
    assert run.exit_code == 7
    assert run.trace.commands[0].exit_code == 7
    assert "idna" in run.trace.module_names()


def test_killed_command_keeps_what_it_recorded(shared_env: Environment) -> None:
    # No atexit runs under SIGKILL: records are written as they happen.
    run = run_trace(shared_env, py("import os, signal, idna; os.kill(os.getpid(), signal.SIGKILL)"))
    assert run.exit_code == 128 + 9
    assert "idna" in run.trace.module_names()


def test_command_environment_uses_the_env(shared_env: Environment) -> None:
    environ = command_environ(shared_env, {"PATH": "/usr/bin"})
    assert environ["PATH"] == f"{shared_env.root}/bin{os.pathsep}/usr/bin"
    assert environ["VIRTUAL_ENV"] == str(shared_env.root)
    run = run_trace(
        shared_env, py("import sys, os; sys.exit(sys.prefix != os.environ['VIRTUAL_ENV'])")
    )
    assert run.exit_code == 0


def test_bad_commands(shared_env: Environment, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot start"):
        run_trace(shared_env, ["no-such-command-venv-prune"])
    with pytest.raises(UsageError, match="no command"):
        run_trace(shared_env, [])
    with pytest.raises(UsageError, match="working directory"):
        run_trace(shared_env, ["true"], cwd=tmp_path / "missing")


# -- the trace file ----------------------------------------------------------------------------


def test_to_json_is_documented_and_round_trips(shared_env: Environment, tmp_path: Path) -> None:
    run = run_trace(shared_env, py("import requests"))
    path = tmp_path / "trace.json"
    write_trace(run.trace, path)
    data = json.loads(path.read_text())
    assert list(data) == [
        "schema",
        "root",
        "python_version",
        "commands",
        "modules",
        "files",
        "dirs",
        "libraries",
        "distributions",
    ]
    assert data["schema"] == TRACE_SCHEMA
    assert data["python_version"] == "{}.{}".format(*sys.version_info[:2])  # the venvs' Python
    assert list(data["modules"]) == sorted(data["modules"])
    for key in ("files", "dirs", "libraries", "distributions"):
        assert data[key] == sorted(set(data[key]))
    assert load_trace(path) == run.trace
    assert load_trace(path).to_json() == path.read_text()


def test_merge_unions_everything() -> None:
    a = parse_trace(
        json.dumps(
            {
                "schema": TRACE_SCHEMA,
                "root": "/a",
                "python_version": "3.11",
                "commands": [{"argv": ["python", "-m", "a"], "cwd": "/", "exit_code": 0}],
                "modules": {"a": "a/__init__.py", "ns": None},
                "files": ["a/data.txt", "x.so"],
                "dirs": ["a"],
                "libraries": [],
                "distributions": ["A_Dist"],
            }
        )
    )
    b = parse_trace(
        json.dumps(
            {
                "schema": TRACE_SCHEMA,
                "root": "/b",
                "python_version": "3.11",
                "commands": [
                    {"argv": ["python", "-m", "b"], "cwd": "/", "exit_code": 1},
                    {"argv": ["python", "-m", "a"], "cwd": "/", "exit_code": 3},
                ],
                "modules": {"b": "b.py", "ns": "ns/__init__.py"},
                "files": [],
                "dirs": [],
                "libraries": ["x.so"],
                "distributions": ["b"],
            }
        )
    )
    m = merge(a, b)
    assert m.root == "/b"
    assert [c.argv[-1] for c in m.commands] == ["a", "b"]
    assert m.commands[0].exit_code == 3  # re-traced: latest result, first place
    assert m.module_files() == {"a": "a/__init__.py", "b": "b.py", "ns": "ns/__init__.py"}
    assert m.reached_paths() == a.reached_paths() | b.reached_paths()
    assert m.libraries == ("x.so",) and m.files == ("a/data.txt",)
    assert m.distributions == ("a-dist", "b")
    assert m.traced_commands() == m.commands


_names = st.text("abcxyz_.", min_size=1, max_size=6).filter(lambda s: s.strip(".") == s)
_paths = (
    st.lists(_names, min_size=1, max_size=3)
    .map("/".join)
    .filter(lambda p: ".." not in p.split("/") and "." not in p.split("/"))
)
_traces = st.builds(
    lambda cmds, mods, files, dirs, libs: parse_trace(
        json.dumps(
            {
                "schema": TRACE_SCHEMA,
                "root": "/r",
                "python_version": "3.12",
                "commands": [{"argv": ["python", c], "cwd": "/", "exit_code": 0} for c in cmds],
                "modules": mods,
                "files": files,
                "dirs": dirs,
                "libraries": libs,
            }
        )
    ),
    st.lists(_names, max_size=3),
    st.dictionaries(_names, st.none() | _paths, max_size=4),
    st.lists(_paths, max_size=5),
    st.lists(_paths, max_size=3),
    st.lists(_paths, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(_traces, _traces)
def test_merge_properties(a: Trace, b: Trace) -> None:
    assert parse_trace(a.to_json()) == a
    assert merge(a, a) == a
    m = merge(a, b)
    assert m.reached_paths() == a.reached_paths() | b.reached_paths()
    assert m.module_names() == a.module_names() | b.module_names()
    assert m.used_paths() == a.used_paths() | b.used_paths() <= m.reached_paths()
    assert m.reached_paths() == merge(b, a).reached_paths()
    assert m.module_files() == merge(b, a).module_files()
    assert merge(m, b) == m


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such trace file"),
        ("{", "invalid JSON"),
        ("[]", "not a venv-prune trace"),
        ('{"schema": "venv-prune-trace/2"}', "schema 'venv-prune-trace/2'"),
        (json.dumps({"schema": TRACE_SCHEMA, "files": ["/etc/passwd"]}), "not a relative POSIX"),
        (json.dumps({"schema": TRACE_SCHEMA, "dirs": ["a/../../x"]}), "not a relative POSIX"),
        (json.dumps({"schema": TRACE_SCHEMA, "files": "a"}), "must be a list"),
        (json.dumps({"schema": TRACE_SCHEMA, "modules": {"m": "/abs.py"}}), "module 'm'"),
        (json.dumps({"schema": TRACE_SCHEMA, "commands": [{"argv": "python"}]}), "commands[0]"),
    ],
)
def test_load_trace_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "trace.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    text = str(info.value)
    assert message in text
    assert str(path) in text and "\n" not in text


# -- the command line ----------------------------------------------------------------------------


def test_cli_append_merges_and_passes_exit_code(shared_env: Environment, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    runner = CliRunner()
    first = runner.invoke(
        trace_command,
        [
            str(shared_env.root),
            "-o",
            str(out),
            "--",
            "python",
            "-c",
            "import idna; raise SystemExit(3)",
        ],
    )
    assert first.exit_code == 3, first.output
    second = runner.invoke(
        trace_command,
        [
            str(shared_env.root),
            "-o",
            str(out),
            "--append",
            "--",
            "python",
            "-c",
            "import markupsafe",
        ],
    )
    assert second.exit_code == 0, second.output
    trace = load_trace(out)
    assert [c.exit_code for c in trace.commands] == [3, 0]
    assert {"idna", "markupsafe"} <= trace.module_names()
    assert "2 commands in the trace" in second.output
    # Without --append the file is replaced.
    third = runner.invoke(
        trace_command, [str(shared_env.root), "-o", str(out), "--", "python", "-c", "pass"]
    )
    assert third.exit_code == 0
    assert len(load_trace(out).commands) == 1


def test_cli_bad_input_raises_before_running(shared_env: Environment, tmp_path: Path) -> None:
    runner = CliRunner()
    marker = tmp_path / "ran"
    cmd = ["--", "python", "-c", f"open({str(marker)!r}, 'w')"]
    root = str(shared_env.root)
    cases: list[tuple[list[str], type[Exception], str]] = [
        ([root, "-o", str(tmp_path / "t.json")], UsageError, "no command"),
        ([root, *cmd], UsageError, "missing -o"),
        ([root, "-o", f"{root}/t.json", *cmd], UsageError, "inside the environment"),
        ([root, "-o", str(tmp_path / "no" / "t.json"), *cmd], UsageError, "does not exist"),
        (
            [str(tmp_path / "nothing"), "-o", str(tmp_path / "t.json"), *cmd],
            FileNotFoundError,
            "no such",
        ),
    ]
    (tmp_path / "bad.json").write_text("{}")
    cases.append(([root, "-o", str(tmp_path / "bad.json"), "--append", *cmd], TraceError, "schema"))
    for args, error, message in cases:
        result = runner.invoke(trace_command, args)
        assert isinstance(result.exception, error), (args, result.output)
        assert message in str(result.exception)
    assert not marker.exists()


def test_cli_help_ends_with_examples() -> None:
    result = CliRunner().invoke(trace_command, ["--help"])
    assert result.exit_code == 0
    tail = result.output.rstrip().splitlines()[-5:]
    assert tail[0].strip() == "Examples:"
    assert all("venv-prune" in line for line in tail[1:])


def test_console_script_real_run(shared_env: Environment, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prune",
            "trace",
            str(shared_env.root),
            "-o",
            str(out),
            "--",
            "python",
            "-c",
            "import idna, sys; sys.exit(5)",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 5, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    assert summary.startswith("venv-prune trace: recorded ") and "CMD exited 5" in summary
    assert "idna" in load_trace(out).module_names()


# -- a real application ----------------------------------------------------------------------


@pytest.mark.slow
def test_boto3_child_presign_mentions_s3_not_ec2(fresh_venv: Any) -> None:
    root = fresh_venv(["boto3"])
    before = tree_digest(root)
    child = (
        "import boto3; "
        "c = boto3.client('s3', region_name='eu-west-1', aws_access_key_id='AKIDEXAMPLE', "
        "aws_secret_access_key='secret'); "
        "print(c.generate_presigned_url('get_object', Params={'Bucket': 'b', 'Key': 'k'}))"
    )
    parent = (
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    )
    run = run_trace(locate(root), ["python", "-c", parent])
    assert run.exit_code == 0
    used = run.trace.used_paths()
    data = f"{site(locate(root))}/botocore/data"
    assert f"{data}/s3/2006-03-01/service-2.json.gz" in used
    assert not any(p.startswith(f"{data}/ec2/") for p in used)
    # botocore lists every service's directory to know which exist, and reads one.
    assert f"{data}/ec2" in run.trace.dirs
    assert "botocore" in run.trace.module_names()
    assert tree_digest(root) == before


@pytest.mark.slow
def test_uvicorn_workers_are_traced(fresh_venv: Any, tmp_path: Path) -> None:
    root = fresh_venv(["uvicorn"])
    before = tree_digest(root)
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
            async def app(scope, receive, send):
                if scope["type"] == "http":
                    await send({"type": "http.response.start", "status": 200, "headers": []})
                    await send({"type": "http.response.body", "body": b"ok"})
        """)
    )
    # Start the server with two (spawned) workers on loopback, request once, stop it.
    (tmp_path / "smoke.py").write_text(
        textwrap.dedent("""
            import socket, subprocess, sys, time, urllib.request
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--host",
                                       "127.0.0.1", "--port", str(port), "--workers", "2"])
            try:
                for _ in range(120):
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                            sys.exit(0 if r.read() == b"ok" else 1)
                    except OSError:
                        time.sleep(0.25)
                sys.exit(2)
            finally:
                server.terminate()
                server.wait(timeout=30)
        """)
    )
    run = run_trace(locate(root), ["python", "smoke.py"], cwd=tmp_path)
    assert run.exit_code == 0
    assert run.processes >= 4  # smoke.py, the supervisor, two workers
    names = run.trace.module_names()
    # The HTTP protocol is loaded only inside the workers.
    assert {"uvicorn", "h11", "uvicorn.protocols.http.h11_impl"} <= names
    assert tree_digest(root) == before
