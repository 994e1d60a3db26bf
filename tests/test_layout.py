"""The house rules of issue 18, checked on the source: rooms small enough to live in, a pure
planner, a command line that only parses and renders, and a wheel that ships every room."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PRUNE = ROOT / "prune"
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 700


def _modules() -> list[Path]:
    return sorted(p for p in PRUNE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_function_over_100_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_no_module_over_700_lines() -> None:
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert big == []


def test_the_planner_starts_no_process_and_leaves_the_garbage_collector_alone() -> None:
    planner = sorted((PRUNE / "plan").rglob("*.py"))
    assert planner, "prune/plan/ is the planner package"
    banned = {"subprocess", "gc", "prune._grep", "prune._gc", "prune.sources"}
    offending = {str(p.relative_to(ROOT)): sorted(_imports(p) & banned) for p in planner}
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_prune_command_scans_and_copies_nothing() -> None:
    """The prune command parses options, calls the pipeline and renders: the scan, the
    --output copy, bytecode compile, relocation and the size gate are the pipeline's."""
    banned = {"prune.scan", "prune.env", "prune.output", "prune.bytecode", "shutil"}
    command = PRUNE / "cli" / "prune.py"
    assert sorted(_imports(command) & banned) == []


def test_the_wheel_ships_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PRUNE.rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_module_imports() -> None:
    """Every module of the package imports (a move that left a stale relative import fails here)."""
    import importlib

    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in _modules()]
    names = [n.removesuffix(".__init__") for n in names
             if not n.startswith("prune._trace_hook") and n != "prune.__main__"]  # __main__ runs the command
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported below
            failed[name] = repr(exc)
    assert failed == {}
