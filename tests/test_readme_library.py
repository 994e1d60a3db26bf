"""The README's library examples do what the README says (issue 17, item 8): ``run`` does the
command's job (strip and verify included); ``apply_plan`` alone neither strips nor verifies,
and with the verifier shown it verifies."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from elftools.elf.elffile import ELFFile

README = Path(__file__).resolve().parent.parent / "README.md"


def library_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Library API\n"):text.index("## Dependencies\n")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def has_symbols(path: Path) -> bool:
    with open(path, "rb") as fh:
        return ELFFile(fh).get_section_by_name(".symtab") is not None


def execute(source: str, env: Path) -> dict[str, Any]:
    code = source.replace("/opt/venv", str(env)).replace("python -m app --selftest", "python -c pass")
    scope: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    return scope


@pytest.mark.skipif(shutil.which("strip") is None, reason="needs binutils")
def test_readme_library_examples_do_what_the_readme_says(fresh_venv: Callable[..., Path]) -> None:
    whole_job, step_by_step = library_examples()
    env = fresh_venv(["pyyaml==6.0.3"])
    ext = next(env.glob("lib/python3.*/site-packages/yaml/_yaml.*.so"))
    assert has_symbols(ext)
    scope = execute(whole_job, env)
    assert scope["outcome"].extras.verification == "passed"
    assert any(s["path"].endswith(ext.name) for s in scope["outcome"].extras.stripped)
    assert not has_symbols(ext)

    env = fresh_venv(["pyyaml==6.0.3"])
    ext = next(env.glob("lib/python3.*/site-packages/yaml/_yaml.*.so"))
    scope = execute(step_by_step, env)
    result = scope["result"]
    assert result.committed and result.verified is True
    assert has_symbols(ext), "the README says apply_plan alone does not strip"
    assert scope["plan"].bytes_removed > 0 and not list(env.rglob("__pycache__"))
