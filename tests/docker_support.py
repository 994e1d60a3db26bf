"""Real Docker builds for the tests and the image-size benchmark (issue 14).

No image registry is reachable here or in CI, so every image starts from the base image that
``tools/docker_engine.sh`` makes with debootstrap (``local/python:3.11-bookworm``: Debian's
python3, python3-venv and ca-certificates). :func:`slim_base` derives from it an image shaped like
``python:3.x-slim`` as the README's Dockerfiles expect it: ``python`` and ``pip`` on ``PATH``
(a venv at ``/usr/local/python``, since Debian's own Python refuses ``pip install``, PEP 668),
Python's headers (``python:3.x-slim`` ships them), and the CA bundle pip's ``cert`` setting
names, so pip, uv and poetry reach the package index from inside a build. Builds use the
legacy builder with the host's network (``DOCKER_BUILDKIT=0 docker build --network host``);
containers run with ``--network none``. Nothing here touches a bridge network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = ROOT / "tools" / "docker_engine.sh"
BASE_IMAGE = os.environ.get("VENV_PRUNE_BASE_IMAGE", "local/python:3.11-bookworm")
SLIM_IMAGE = "venv-prune-test/python-slim:3.11"
SLIM_DEV_IMAGE = "venv-prune-test/python-slim-dev:3.11"
CA_NAME = "venv-prune-build-ca.crt"

# The README's Dockerfiles name python:3.12-slim; the tests substitute this one.
README_BASE = re.compile(r"^FROM python:[\w.-]+-slim\b", re.M)


class EngineUnavailable(Exception):
    """No Docker engine answers and none could be started; the message says why."""


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def ensure_engine(*, start: bool = True) -> str:
    """A Docker engine that answers and the base image; returns the base image's name.

    :raises EngineUnavailable: not root, or ``tools/docker_engine.sh`` could not install or
        start the engine or build the base image (its last stderr line is the message).
    """
    if docker_answers() and subprocess.run(["docker", "image", "inspect", BASE_IMAGE],
                                           capture_output=True, check=False).returncode == 0:
        return BASE_IMAGE
    if os.geteuid() != 0:
        raise EngineUnavailable("not root: starting dockerd and building the base image need root")
    if not start:
        raise EngineUnavailable("no Docker engine answers")
    proc = subprocess.run(["sh", str(ENGINE_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EngineUnavailable(f"tools/docker_engine.sh failed: {last}")
    return proc.stdout.strip().splitlines()[-1]


def pip_cert() -> Optional[Path]:
    """The CA bundle pip uses here: ``PIP_CERT``, else the ``cert`` that ``pip config list``
    names; ``None`` when neither is set (the image's own ca-certificates then serve)."""
    if os.environ.get("PIP_CERT"):
        return Path(os.environ["PIP_CERT"])
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                          text=True, check=False)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".cert"):
            return Path(value.strip().strip("'\""))
    return None


def index_env() -> dict[str, str]:
    """The package index pip uses here, when it is not the default and is reachable from a
    container (an http(s) URL; the ``file://`` indexes and find-links of this machine's pip
    config do not exist inside one, so they are not passed)."""
    url = os.environ.get("PIP_INDEX_URL", "")
    if not url:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                              text=True, check=False)
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.endswith(".index-url") and not key.endswith("extra-index-url"):
                url = value.strip().strip("'\"")
    if url.startswith(("http://", "https://")):
        return {"PIP_INDEX_URL": url, "UV_DEFAULT_INDEX": url}
    return {}


def slim_dockerfile(base: str, with_cert: bool) -> str:
    ca = f"/usr/local/share/ca-certificates/{CA_NAME}"
    lines = [f"FROM {base}"]
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore",
           "PATH": "/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           **index_env()}
    if with_cert:
        lines.append(f"COPY {CA_NAME} {ca}")
        env.update({"PIP_CERT": ca, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca})
    lines.append("ENV " + " ".join(f"{k}={v}" for k, v in env.items()))
    lines.append("RUN python3 -m venv /usr/local/python")
    return "\n".join(lines) + "\n"


def slim_base(base: str = BASE_IMAGE) -> tuple[str, str]:
    """Build (or reuse through the layer cache) the python:3.x-slim-shaped images; their names:
    (runtime, builder). The builder image adds Python's headers, which python:3.x-slim carries
    and Debian splits into python3-dev (150 MB with its dependencies: kept out of the runtime
    image, so the sizes measured are those of a slim base)."""
    cert = pip_cert()
    with tempfile.TemporaryDirectory(prefix="venv-prune-slim-") as tmp:
        ctx = Path(tmp)
        if cert is not None and cert.is_file():
            shutil.copyfile(cert, ctx / CA_NAME)
        (ctx / "Dockerfile").write_text(slim_dockerfile(base, (ctx / CA_NAME).exists()))
        build(ctx, SLIM_IMAGE)
        (ctx / "Dockerfile").write_text(
            f"FROM {SLIM_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends "
            "python3-dev && rm -rf /var/lib/apt/lists/*\n")
        build(ctx, SLIM_DEV_IMAGE)
    return SLIM_IMAGE, SLIM_DEV_IMAGE


class BuildFailed(Exception):
    def __init__(self, tag: str, output: str) -> None:
        tail = "\n".join(output.splitlines()[-60:])
        super().__init__(f"docker build -t {tag} failed:\n{tail}")
        self.output = output


def build(context: Path, tag: str, *, target: Optional[str] = None, dockerfile: Optional[Path] = None,
          timeout: float = 1800) -> str:
    """``DOCKER_BUILDKIT=0 docker build --no-cache --network host``; returns the build's output.

    ``--no-cache``: every step runs, so its output is there to check. An engine that keeps its
    images between runs (a CI machine) otherwise answers a step whose Dockerfile line and context
    are unchanged from its cache and prints nothing for it: the pyz example's prune step, with a
    pyz unchanged by a README-only commit, said nothing at all.

    :raises BuildFailed: the build failed (the message holds the last 60 lines).
    """
    cmd = ["docker", "build", "--no-cache", "--force-rm", "--network", "host", "-t", tag]
    if target:
        cmd += ["--target", target]
    if dockerfile is not None:
        cmd += ["-f", str(dockerfile)]
    proc = subprocess.run([*cmd, str(context)], capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise BuildFailed(tag, output)
    return output


def run(image: str, *args: str, user: Optional[str] = None, mounts: tuple[tuple[Path, str], ...] = (),
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``docker run --rm --network none IMAGE ARGS`` (no check: callers assert)."""
    cmd = ["docker", "run", "--rm", "--network", "none"]
    if user:
        cmd += ["--user", user]
    for src, dst in mounts:
        cmd += ["-v", f"{src}:{dst}:ro"]
    return subprocess.run([*cmd, image, *args], capture_output=True, text=True, check=False,
                          timeout=timeout)


def image_size(image: str) -> int:
    """``docker image inspect``'s Size, bytes."""
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True,
                         text=True, check=True).stdout
    return int(out.strip())


@dataclass(frozen=True)
class Layer:
    created_by: str
    size: int


def history(image: str) -> list[Layer]:
    """``docker history``: the image's layers, newest first, sizes in bytes."""
    out = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{json .}}", "--human=false",
                          image], capture_output=True, text=True, check=True).stdout
    layers = []
    for line in out.splitlines():
        row = json.loads(line)
        layers.append(Layer(row["CreatedBy"], int(row["Size"])))
    return layers


def layer_size(image: str, dest: str = "/opt/venv") -> int:
    """The size of the newest layer that copied a directory to ``dest`` (the runtime stage's
    ``COPY --from=builder /opt/venv /opt/venv``), bytes, from ``docker history``."""
    pattern = re.compile(rf"COPY dir:\S+ in {re.escape(dest)}/?\s*$")
    for layer in history(image):
        if pattern.search(layer.created_by):
            return layer.size
    raise LookupError(f"{image}: no layer copied a directory to {dest}")


def build_wheel(dest: Path) -> Path:
    """The project's wheel, built from the checkout (tools/build_pyz.py's scratch copy, so no
    build/ or egg-info lands in the checkout)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_pyz  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "tools"))
    with tempfile.TemporaryDirectory(prefix="venv-prune-wheel-") as tmp:
        src = build_pyz.copy_source(ROOT, Path(tmp) / "src")
        dest.mkdir(parents=True, exist_ok=True)
        return build_pyz.build_wheel(src, dest)


def build_pyz(dest: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_pyz.py"), "-o", str(dest)],
                   check=True, capture_output=True)
    return dest


def readme_dockerfiles(readme: Path = ROOT / "README.md") -> list[str]:
    """Every fenced ```Dockerfile block of the README, in order."""
    return re.findall(r"^```Dockerfile\n(.*?)^```", readme.read_text(encoding="utf-8"), re.M | re.S)


def adapt(dockerfile: str, images: tuple[str, str], wheel_name: Optional[str]) -> str:
    """A README Dockerfile as the tests build it: only the base image and the install route of
    venv-prune change. ``FROM python:3.x-slim`` becomes ``images[0]`` (``images[1]``, the same
    plus Python's headers, for the ``AS builder`` stage); where venv-prune is installed from the
    package index (``pip install ... venv-prune``, ``uvx venv-prune``), the wheel built from
    this checkout is copied in and installed instead (it is not on the index yet).

    :raises ValueError: the Dockerfile has no ``FROM python:3.x-slim`` to substitute.
    """
    runtime, builder = images
    out = re.sub(r"^FROM python:[\w.-]+-slim AS builder\b", f"FROM {builder} AS builder", dockerfile, flags=re.M)
    out, n = README_BASE.subn(f"FROM {runtime}", out)
    if not n and out == dockerfile:
        raise ValueError("no FROM python:3.x-slim line")
    if wheel_name is not None:
        wheel = f"/tmp/venv-prune-dist/{wheel_name}"
        out, pips = re.subn(r"(\bpip install (?:[\w.\[\]=<>-]+ )*)venv-prune\b", rf"\g<1>{wheel}", out)
        out, uvxs = re.subn(r"\buvx venv-prune\b", f"uvx --from {wheel} venv-prune", out)
        if pips or uvxs:
            first, _, rest = out.partition("\n")
            out = f"{first}\nCOPY venv-prune-dist/ /tmp/venv-prune-dist/\n{rest}"
    return out


def same_run(dockerfile: str) -> str:
    """The builder's prune ``RUN`` joined to the ``RUN`` before it (install and prune in one
    layer). :raises ValueError: there is no separate prune RUN."""
    lines = dockerfile.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("RUN ") and "venv-prune" in line and i and lines[i - 1].startswith("RUN "):
            lines[i - 1] = f"{lines[i - 1]} && {line[4:]}"
            del lines[i]
            return "\n".join(lines) + "\n"
    raise ValueError("no RUN with venv-prune right after another RUN")


def without_prune(dockerfile: str) -> str:
    """The Dockerfile with its venv-prune ``RUN`` lines removed: the baseline for image sizes."""
    lines = [ln for ln in dockerfile.splitlines() if not (ln.startswith("RUN ") and "venv-prune" in ln)]
    return "\n".join(lines) + "\n"
