"""venv-prune in real Docker builds (issue 14): the README's Dockerfiles, built as written on a
real engine (overlay2), their runtime images answering as a non-root user.

Every ```Dockerfile block of the README is built here, with only the base image and the route
that installs venv-prune replaced (tests/docker_support.py). Builds use the legacy builder with
the host's network (pip reaches the package index); containers run with ``--network none`` and
the app answers on the container's own loopback. Skipped with the reason when no engine can be
started or this is not root; under CI (``CI`` set) that is a failure instead, since .ci/run
starts the engine (tools/docker_engine.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

import docker_support as ds
import pytest

pytestmark = pytest.mark.docker

APP = '''\
from typing import Optional

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
def read_item(item_id: int, q: Optional[str] = None) -> dict:
    return {"item_id": item_id, "q": q, "item": Item(name="widget", price=2.5).model_dump()}
'''

REQUIREMENTS = "fastapi\nuvicorn\n"

# Serves app.py with uvicorn on the container's loopback and asks it once: the real request path
# (uvicorn, h11, starlette routing, pydantic validation and serialisation, json).
PROBE = '''\
import json, os, sys, threading, time, urllib.request
sys.path.insert(0, "/app")
import uvicorn
from app import app
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8000, log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.monotonic() + 60
while True:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:8000/items/7?q=hi", timeout=5).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
server.should_exit = True
thread.join(10)
print(json.dumps({"uid": os.getuid(), "body": json.loads(body)}))
'''

EXPECTED = {"item_id": 7, "q": "hi", "item": {"name": "widget", "price": 2.5}}

POETRY_PYPROJECT = '''\
[project]
name = "app"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["fastapi", "uvicorn"]

[tool.poetry]
package-mode = false
'''


@pytest.fixture(scope="session")
def engine() -> str:
    try:
        return ds.ensure_engine()
    except ds.EngineUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Docker tests cannot run in CI: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def slim(engine: str) -> tuple[str, str]:
    return ds.slim_base(engine)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the wheel built from this checkout."""
    d = tmp_path_factory.mktemp("dist")
    ds.build_wheel(d)
    return d


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ds.build_pyz(tmp_path_factory.mktemp("pyz") / "venv-prune.pyz")


@pytest.fixture(scope="session")
def readme() -> dict[str, str]:
    """The README's Dockerfiles by kind."""
    found: dict[str, str] = {}
    for block in ds.readme_dockerfiles():
        kind = _kind(block)
        assert kind not in found, f"two README Dockerfiles of kind {kind}; name them apart in _kind"
        found[kind] = block
    return found


def _kind(block: str) -> str:
    if "psycopg2" in block:
        return "libs"
    if "poetry" in block:
        return "poetry"
    if "uv venv" in block:
        return "uv"
    if ".pyz" in block:
        return "pyz"
    if "pip install -r" in block:
        return "pip"
    raise AssertionError(f"a README Dockerfile this test does not build:\n{block}")


KINDS = {"pip", "uv", "poetry", "pyz", "libs"}


def test_every_readme_dockerfile_is_one_these_tests_build(readme: dict[str, str]) -> None:
    assert set(readme) == KINDS
    for block in readme.values():
        assert ds.README_BASE.search(block), block


def _context(tmp: Path, dockerfile: str, dist: Optional[Path] = None,
             files: Optional[dict[str, Union[str, Path]]] = None) -> Path:
    ctx = tmp / f"ctx{len(list(tmp.glob('ctx*')))}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    if dist is not None:
        shutil.copytree(dist, ctx / "venv-prune-dist")
    for name, content in (files or {}).items():
        if isinstance(content, Path):
            shutil.copyfile(content, ctx / name)
        else:
            (ctx / name).write_text(content)
    return ctx


def _wheel(dist: Path) -> str:
    (wheel,) = dist.glob("*.whl")
    return wheel.name


def _probe(image: str, tmp: Path, user: str = "10001") -> dict:
    """Serve app.py from the image's /opt/venv on loopback and ask it; the parsed answer."""
    (tmp / "probe").mkdir(exist_ok=True)
    (tmp / "probe" / "probe.py").write_text(PROBE)
    (tmp / "probe" / "app.py").write_text(APP)
    proc = ds.run(image, "/opt/venv/bin/python", "/probe/probe.py", user=user,
                  mounts=((tmp / "probe", "/probe"),))
    assert proc.returncode == 0, f"the app did not answer in {image}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _layer_rule_said(output: str) -> bool:
    return bool(re.search(r"layers: the environment lies on overlayfs", output))


def _serve_as_written(image: str) -> tuple[str, dict]:
    """Run the image's own CMD (uvicorn) detached with no network, ask it over the container's
    loopback with docker exec (as the image's USER); (uid, answer)."""
    name = f"venv-prune-test-{os.getpid()}-{time.monotonic_ns()}"
    ds.subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", "--name", name, image],
                      check=True, capture_output=True)
    try:
        ask = ("import json, time, urllib.request\n"
               "for _ in range(150):\n"
               "    try:\n"
               "        url = 'http://127.0.0.1:8000/items/7?q=hi'\n"
               "        print(urllib.request.urlopen(url, timeout=5).read().decode()); break\n"
               "    except OSError:\n"
               "        time.sleep(0.2)\n"
               "else:\n"
               "    raise SystemExit('no answer')\n")
        proc = ds.subprocess.run(["docker", "exec", name, "/opt/venv/bin/python", "-c", ask],
                                 capture_output=True, text=True, check=False, timeout=120)
        logs = ds.subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{image} did not answer: {proc.stderr}\n{logs.stdout}{logs.stderr}"
        uid = ds.subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True,
                                check=True).stdout.strip()
        return uid, json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        ds.subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def _build(ctx: Path, tag: str, **kw: object) -> str:
    try:
        return ds.build(ctx, tag, **kw)  # type: ignore[arg-type]
    except ds.BuildFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def pip_images(slim: tuple[str, str], dist: Path, readme: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """The README's pip example built three ways: as written (install and prune in separate
    RUNs), install and prune in the same RUN, and without the prune. kind -> (tag, output)."""
    tmp = tmp_path_factory.mktemp("pip")
    written = ds.adapt(readme["pip"], slim, _wheel(dist))
    built: dict[str, tuple[str, str]] = {}
    for kind, dockerfile in (("without", ds.without_prune(written)),
                             ("separate", written),
                             ("same", ds.same_run(written))):
        tag = f"venv-prune-test/pip-{kind}"
        ctx = _context(tmp, dockerfile, dist, files={"requirements.txt": REQUIREMENTS, "app.py": APP})
        try:
            built[kind] = (tag, ds.build(ctx, tag))
        except ds.BuildFailed as exc:
            built[kind] = ("", str(exc))
    yield built


def _need(built: dict[str, tuple[str, str]], kind: str) -> str:
    tag, output = built[kind]
    if not tag:
        pytest.fail(output)
    return tag


def test_pip_example_prune_in_the_same_run_as_the_install(pip_images: dict[str, tuple[str, str]]) -> None:
    tag = _need(pip_images, "same")
    assert _layer_rule_said(pip_images["same"][1]), "the report did not say the layer rule on overlayfs"
    uid, answer = _serve_as_written(tag)
    assert (uid, answer) == ("10001", EXPECTED)


def test_pip_example_as_written_prune_in_a_later_run(pip_images: dict[str, tuple[str, str]]) -> None:
    tag = _need(pip_images, "separate")
    assert _layer_rule_said(pip_images["separate"][1])
    uid, answer = _serve_as_written(tag)
    assert (uid, answer) == ("10001", EXPECTED)


def test_pruned_runtime_image_is_smaller(pip_images: dict[str, tuple[str, str]]) -> None:
    without = _need(pip_images, "without")
    sizes = {"without": ds.image_size(without)}
    layers = {"without": ds.layer_size(without)}
    for kind in ("separate", "same"):
        if pip_images[kind][0]:
            sizes[kind] = ds.image_size(pip_images[kind][0])
            layers[kind] = ds.layer_size(pip_images[kind][0])
    print(f"\nruntime image sizes (bytes): {sizes}; venv layers: {layers}")
    assert len(sizes) > 1, "no pruned image was built"
    for kind in sizes.keys() - {"without"}:
        assert layers[kind] < layers["without"] * 0.9, (kind, layers)
        assert sizes[kind] < sizes["without"], (kind, sizes)
    # Same pruned venv either way: the runtime image does not depend on where the prune ran.
    if {"separate", "same"} <= sizes.keys():
        assert abs(layers["separate"] - layers["same"]) < 0.02 * layers["same"], layers


def test_uv_example(slim: tuple[str, str], dist: Path, readme: dict[str, str], tmp_path: Path) -> None:
    dockerfile = ds.adapt(readme["uv"], slim, _wheel(dist))
    assert "uvx --from /tmp/venv-prune-dist/" in dockerfile
    ctx = _context(tmp_path, dockerfile, dist, files={"requirements.txt": REQUIREMENTS})
    output = _build(ctx, "venv-prune-test/uv")
    assert _layer_rule_said(output)
    probe = _probe("venv-prune-test/uv", tmp_path)
    assert probe == {"uid": 10001, "body": EXPECTED}
    # uv venvs have no pip; the prune did not need one and did not add one.
    assert ds.run("venv-prune-test/uv", "test", "-e", "/opt/venv/bin/pip").returncode != 0


@pytest.fixture(scope="session")
def poetry_lock(slim: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """poetry.lock for the app, made by poetry inside a build (it needs the index)."""
    tmp = tmp_path_factory.mktemp("lock")
    dockerfile = (f"FROM {slim[0]}\nRUN pip install poetry\nWORKDIR /app\nCOPY pyproject.toml ./\n"
                  "RUN poetry lock\n")
    ctx = _context(tmp, dockerfile, files={"pyproject.toml": POETRY_PYPROJECT})
    _build(ctx, "venv-prune-test/poetry-lock")
    proc = ds.run("venv-prune-test/poetry-lock", "cat", "/app/poetry.lock")
    assert proc.returncode == 0 and "[[package]]" in proc.stdout, proc.stderr
    return proc.stdout


def test_poetry_example_output_relocated(slim: tuple[str, str], dist: Path, readme: dict[str, str], poetry_lock: str,
                                         tmp_path: Path) -> None:
    dockerfile = ds.adapt(readme["poetry"], slim, _wheel(dist))
    assert "--output /opt/venv --relocate /opt/venv" in dockerfile
    ctx = _context(tmp_path, dockerfile, dist, files={"pyproject.toml": POETRY_PYPROJECT, "poetry.lock": poetry_lock})
    output = _build(ctx, "venv-prune-test/poetry")
    # --output prunes a copy this RUN made: the layer rule does not apply to it.
    assert not _layer_rule_said(output)
    probe = _probe("venv-prune-test/poetry", tmp_path)
    assert probe == {"uid": 10001, "body": EXPECTED}
    # Relocated: scripts and pyvenv.cfg name /opt/venv, nothing names the builder's /app/.venv.
    proc = ds.run("venv-prune-test/poetry", "sh", "-c",
                  "head -1 /opt/venv/bin/uvicorn; grep -rl /app/.venv /opt/venv/bin /opt/venv/pyvenv.cfg; true")
    assert proc.stdout.splitlines()[0] == "#!/opt/venv/bin/python", proc.stdout
    assert proc.stdout.splitlines()[1:] == [], f"still naming /app/.venv: {proc.stdout}"
    served = ds.run("venv-prune-test/poetry", "/opt/venv/bin/uvicorn", "--help", user="10001")
    assert served.returncode == 0, served.stderr


def test_pyz_example_installs_nothing_into_the_builders_python(slim: tuple[str, str], pyz: Path, readme: dict[str, str],
                                                               tmp_path: Path) -> None:
    dockerfile = ds.adapt(readme["pyz"], slim, None)
    ctx = _context(tmp_path, dockerfile, files={"requirements.txt": REQUIREMENTS, "venv-prune.pyz": pyz})
    (ctx / "venv-prune.pyz").chmod(0o755)
    output = _build(ctx, "venv-prune-test/pyz")
    assert _layer_rule_said(output)
    assert re.search(r"^\s+removed \S+", output, re.M), "the prune report is not in the build output"
    probe = _probe("venv-prune-test/pyz", tmp_path)
    assert probe == {"uid": 10001, "body": EXPECTED}
    # The builder's own Python holds exactly what the base gave it.
    _build(ctx, "venv-prune-test/pyz-builder", target="builder")
    listing = "python3 -m pip list --format freeze"
    before = ds.run(slim[1], "sh", "-c", listing)
    after = ds.run("venv-prune-test/pyz-builder", "sh", "-c", listing)
    assert before.returncode == 0 and after.stdout == before.stdout, (before.stdout, after.stdout)
    assert ds.run("venv-prune-test/pyz-builder", "python3", "-c", "import prune").returncode != 0


def test_libs_names_what_the_runtime_stage_needs(slim: tuple[str, str], dist: Path, readme: dict[str, str],
                                                 tmp_path: Path) -> None:
    """psycopg2 compiled from source against libpq-dev: the runtime stage from the bare base
    fails to import it until the apt-get line with the packages ``venv-prune libs`` names."""
    written = ds.adapt(readme["libs"], slim, _wheel(dist))
    ctx = _context(tmp_path, written, dist)
    _build(ctx, "venv-prune-test/libs-builder", target="builder")
    proc = ds.run("venv-prune-test/libs-builder", "venv-prune", "libs", "/opt/venv", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    named = sorted({p.strip() for lib in json.loads(proc.stdout)["missing"]
                    for p in (lib.get("package") or "").split(",") if p.strip()})
    assert "libpq5" in named, proc.stdout
    apt = [ln for ln in written.splitlines() if "apt-get install" in ln and "libpq-dev" not in ln]
    assert len(apt) == 1 and apt[0].split("--no-install-recommends ")[1].split(" &&")[0].split() == named, \
        f"the README's runtime apt-get line does not install what venv-prune libs names ({named})"

    without = written.replace(apt[0] + "\n", "")
    ctx_without = _context(tmp_path, without, dist)
    _build(ctx_without, "venv-prune-test/libs-without")
    _build(ctx, "venv-prune-test/libs-with")
    check = ("import psycopg2, psycopg2.extensions; "
             "print(psycopg2.__version__, psycopg2.extensions.libpq_version())")
    bad = ds.run("venv-prune-test/libs-without", "/opt/venv/bin/python", "-c", check, user="10001")
    assert bad.returncode != 0 and "libpq.so.5" in bad.stderr, bad.stderr
    good = ds.run("venv-prune-test/libs-with", "/opt/venv/bin/python", "-c", check, user="10001")
    assert good.returncode == 0, good.stderr
    assert "dt dec pq3 ext" in good.stdout or good.stdout.strip(), good.stdout
