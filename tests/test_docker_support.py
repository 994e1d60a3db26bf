"""The substitutions the Docker tests make in the README's Dockerfiles (no engine needed)."""

from __future__ import annotations

import docker_support as ds
import pytest

IMAGES = ("local/slim", "local/slim-dev")
WHEEL = "venv_prune-0.1.0-py3-none-any.whl"


def test_readme_has_dockerfiles_and_each_names_a_slim_base() -> None:
    blocks = ds.readme_dockerfiles()
    assert len(blocks) >= 3
    for block in blocks:
        assert ds.README_BASE.search(block), block


def test_adapt_changes_only_the_base_and_the_install_route() -> None:
    src = ("FROM python:3.12-slim AS builder\n"
           "RUN python -m venv /opt/venv\n"
           "RUN pip install venv-prune && venv-prune /opt/venv --profile aggressive\n"
           "RUN uvx venv-prune /opt/venv\n"
           "RUN pip install poetry venv-prune\n"
           "FROM python:3.12-slim\n"
           "COPY --from=builder /opt/venv /opt/venv\n")
    out = ds.adapt(src, IMAGES, WHEEL).splitlines()
    wheel = f"/tmp/venv-prune-dist/{WHEEL}"
    assert out == [
        "FROM local/slim-dev AS builder",
        "COPY venv-prune-dist/ /tmp/venv-prune-dist/",
        "RUN python -m venv /opt/venv",
        f"RUN pip install {wheel} && venv-prune /opt/venv --profile aggressive",
        f"RUN uvx --from {wheel} venv-prune /opt/venv",
        f"RUN pip install poetry {wheel}",
        "FROM local/slim",
        "COPY --from=builder /opt/venv /opt/venv",
    ]


def test_adapt_without_a_wheel_keeps_the_install_route() -> None:
    src = "FROM python:3.12-slim AS builder\nRUN python3 /tmp/venv-prune.pyz /opt/venv\n"
    assert ds.adapt(src, IMAGES, None) == "FROM local/slim-dev AS builder\nRUN python3 /tmp/venv-prune.pyz /opt/venv\n"
    with pytest.raises(ValueError):
        ds.adapt("FROM debian\n", IMAGES, WHEEL)


def test_same_run_and_without_prune() -> None:
    src = "FROM b AS builder\nRUN install\nRUN pip install venv-prune && venv-prune /v\nFROM b\n"
    assert ds.same_run(src) == "FROM b AS builder\nRUN install && pip install venv-prune && venv-prune /v\nFROM b\n"
    assert ds.without_prune(src) == "FROM b AS builder\nRUN install\nFROM b\n"
    with pytest.raises(ValueError):
        ds.same_run("FROM b\nRUN install\n")
