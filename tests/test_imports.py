"""The static import scanner: hand-written cases, and agreement with ast on generated code."""

from __future__ import annotations

import ast
import importlib.util
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune.imports import (
    imported_modules,
    module_name_for,
    required_modules,
    resolve_relative,
    run_references,
)

SAMPLE = b'''"""Docstring mentioning
import not_a_docstring_import
from nowhere import nothing
"""
import a.b as c, d
from x.y import (p,  # a comment ) with a parenthesis
   q as r)
from . import tests
from .tests import helper
from .. import up
try:
    import json
except ImportError:  # import not_a_comment_import
    json = None
def f():
        __import__("zz.top")
        importlib.import_module('mod.sub')
        import_module(".rel", __name__)
        import_module("..rel2", "other.pkg")
s = 'import not_a_string_import'
raise X from e
import after_raise
from os . path import join
import cont \\
   , inued
if 1: import colon; import semi
from star import *
from . import importlib
'''


def test_sample() -> None:
    got = imported_modules(SAMPLE, "pkg.sub.mod", False)
    assert got == {
        "a.b", "d", "x.y", "x.y.p", "x.y.q",
        "pkg.sub", "pkg.sub.tests", "pkg.sub.tests.helper",
        "pkg", "pkg.up", "json", "zz.top", "mod.sub", "pkg.sub.mod.rel", "other.rel2",
        "after_raise",
        "os.path", "os.path.join", "cont", "inued", "colon", "semi", "star", "pkg.sub.importlib",
    }


def test_relative_from_package_init() -> None:
    src = b"from . import tests\nfrom .tests import x\nfrom .. import y\n"
    assert imported_modules(src, "pkg.sub", True) == {
        "pkg.sub", "pkg.sub.tests", "pkg.sub.tests.x", "pkg", "pkg.y",
    }


def test_relative_beyond_top_level_is_ignored() -> None:
    assert imported_modules(b"from ... import x\n", "pkg.mod", False) == frozenset()
    assert imported_modules(b"from . import x\n", "", False) == frozenset()
    assert imported_modules(b"from . import x\n", "toplevel", False) == frozenset()


def test_no_imports_and_garbage() -> None:
    assert imported_modules(b"", "m", False) == frozenset()
    assert imported_modules(b"x = 1\n", "m", False) == frozenset()
    # Never raises on non-Python input.
    assert isinstance(imported_modules(bytes(range(256)) * 4 + b"import", "m", False), frozenset)
    assert imported_modules(b"print 'import x'\nimport y\n", "", False) == {"y"}


def test_crlf_and_unicode_identifiers() -> None:
    src = "import caf\u00e9\r\nfrom a import (b,\r\n c)\r\n".encode()
    assert imported_modules(src) == {"caf\u00e9", "a", "a.b", "a.c"}


def test_resolve_relative() -> None:
    assert resolve_relative(0, "a.b", "x") == "a.b"
    assert resolve_relative(1, "", "p.q") == "p.q"
    assert resolve_relative(2, "z", "p.q") == "p.z"
    assert resolve_relative(3, "z", "p.q") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pkg/sub/__init__.py", ("pkg.sub", True)),
        ("pkg/x.py", ("pkg.x", False)),
        ("six.py", ("six", False)),
        ("pkg/__main__.py", ("pkg.__main__", False)),
        ("pkg/_c.cpython-312-x86_64-linux-gnu.so", ("pkg._c", False)),
        ("_cffi_backend.cpython-311-x86_64-linux-gnu.so", ("_cffi_backend", False)),
        ("pkg/_speedups.abi3.so", ("pkg._speedups", False)),
        ("pkg/__init__.cpython-311-x86_64-linux-gnu.so", ("pkg", True)),
        ("pkg/legacy.pyc", ("pkg.legacy", False)),
        ("pkg/__pycache__/x.cpython-311.pyc", None),
        ("pkg/x.pyi", None),
        ("pkg/data.json", None),
        ("foo-1.0.dist-info/METADATA", None),
        ("foo-1.0.dist-info/x.py", None),
        ("numpy.libs/libopenblas.so", None),
        ("pkg/libfoo.so.1", None),
        ("__init__.py", None),
        ("pkg/foo.bar.py", None),
    ],
)
def test_module_name_for(path: str, expected: tuple[str, bool] | None) -> None:
    assert module_name_for(path) == expected


# --- agreement with ast on generated sources -------------------------------------------------

_identifiers = st.text("abfirtxyz_0", min_size=1, max_size=6).filter(
    lambda s: s.isidentifier() and not keyword.iskeyword(s) and s not in ("as", "_")
)
_dotted = st.lists(_identifiers, min_size=1, max_size=3).map(".".join)


def _alias(name: str, alias: str | None) -> str:
    return f"{name} as {alias}" if alias else name


@st.composite
def _statement(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(
        ["import", "from", "from_paren", "relative", "call", "comment", "string", "raise_from"]
    ))
    aliases = st.one_of(st.none(), _identifiers)
    if kind == "import":
        items = draw(st.lists(st.tuples(_dotted, aliases), min_size=1, max_size=3))
        return "import " + ", ".join(_alias(n, a) for n, a in items)
    if kind in ("from", "from_paren", "relative"):
        dots = "." * draw(st.integers(1, 3)) if kind == "relative" else ""
        module = draw(st.one_of(st.just(""), _dotted)) if dots else draw(_dotted)
        if draw(st.booleans()) and kind != "from_paren":
            return f"from {dots}{module} import *"
        items = draw(st.lists(st.tuples(_identifiers, aliases), min_size=1, max_size=3))
        names = [_alias(n, a) for n, a in items]
        if kind == "from_paren":
            return f"from {dots}{module} import (\n    " + ",  # note\n    ".join(names) + ",\n)"
        return f"from {dots}{module} import " + ", ".join(names)
    if kind == "call":
        fn = draw(st.sampled_from(["__import__", "importlib.import_module", "import_module"]))
        quote = draw(st.sampled_from(["'", '"']))
        return f"{fn}({quote}{draw(_dotted)}{quote})"
    if kind == "comment":
        return f"x = 1  # import {draw(_dotted)}"
    if kind == "string":
        return f's = """\nimport {draw(_dotted)}\nfrom {draw(_dotted)} import y\n"""'
    return f"raise ValueError from {draw(_identifiers)}"


_WRAPPERS = {
    # name: (lines before, indentation, lines after)
    "def": (["def f():"], "        ", []),
    "try_import": (["try:"], "    ", ["except ImportError:", "    pass"]),
    "try_tuple": (["try:"], "    ", ["except (OSError, ModuleNotFoundError) as e:", "    x = e"]),
    "try_bare": (["try:"], "    ", ["except:  # anything", "    pass"]),
    "try_value": (["try:"], "    ", ["except ValueError:", "    pass"]),
    "try_reraise": (["try:"], "    ", ["except ImportError as e:", "    raise SystemExit(e)"]),
    "try_finally": (["try:"], "    ", ["finally:", "    pass"]),
    "except_body": (["try:", "    pass", "except ImportError:"], "    ", []),
    "else_body": (["try:", "    pass", "except Exception:", "    pass", "else:"], "    ", []),
    "if": (["if True:"], "\t", []),
    "type_checking": (["if TYPE_CHECKING:"], "    ", []),
    "typing_type_checking": (["if typing.TYPE_CHECKING:"], "    ", []),
    "elif_type_checking": (["if x:", "    pass", "elif t.TYPE_CHECKING:"], "    ", []),
    "else_type_checking": (["if TYPE_CHECKING:", "    pass", "else:"], "    ", []),
    "suppress": (["with contextlib.suppress(ImportError):"], "    ", []),
    "class": (["class C:", '    """doc', "import not_this", '"""'], "    ", []),
    "continuation": (["if (a and", "b):"], "    ", []),
}


@st.composite
def _source(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for stmt in draw(st.lists(_statement(), min_size=1, max_size=8)):
        block = stmt.split("\n")
        for wrap in draw(st.lists(st.sampled_from(sorted(_WRAPPERS)), max_size=3)):
            before, indent, after = _WRAPPERS[wrap]
            block = [*before, *(indent + line for line in block), *after]
        lines += block
    return "\n".join(lines) + "\n"


_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        types: list[ast.expr] = []
    elif isinstance(handler.type, ast.Tuple):
        types = handler.type.elts
    else:
        types = [handler.type]
    catches = handler.type is None or any(
        isinstance(t, ast.Name) and t.id in _GUARDS for t in types)
    return catches and not (handler.body and isinstance(handler.body[0], ast.Raise))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _unconditional(tree: ast.AST) -> list[ast.AST]:
    """Import statements and calls outside TYPE_CHECKING blocks and ImportError guards."""
    out: list[ast.AST] = []

    def visit(node: ast.AST, conditional: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)) and not conditional:
            out.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            conditional = False  # the body runs later, outside any guard around the def
        if isinstance(node, ast.Try):
            guarded = any(_catches_import_error(h) for h in node.handlers)
            for stmt in node.body:
                visit(stmt, conditional or guarded)
            for other in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(other, conditional)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, True)
            for stmt in node.orelse:
                visit(stmt, conditional)
            return
        if isinstance(node, ast.With) and any(
            isinstance(i.context_expr, ast.Call) and "suppress" in ast.dump(i.context_expr.func)
            for i in node.items
        ):
            for stmt in node.body:
                visit(stmt, True)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, conditional)

    visit(tree, False)
    return out


def _reference(
    tree: ast.AST, module: str, is_package: bool, *, required: bool = False
) -> set[str]:
    """What the scanner promises, computed with ast and importlib's own resolver."""
    package = module if is_package else module.rpartition(".")[0]

    def resolve(level: int, name: str) -> str | None:
        if level == 0:
            return name
        if not package:
            return None
        try:
            return importlib.util.resolve_name("." * level + name, package)
        except (ImportError, ValueError):
            return None

    out: set[str] = set()
    for node in _unconditional(tree) if required else ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.level, node.module or "")
            if base:
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            arg = node.args[0]
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            if name in ("__import__", "import_module") and isinstance(arg, ast.Constant):
                out.add(str(arg.value))
    return out


@settings(max_examples=200, deadline=None)
@given(source=_source(), module=_dotted, is_package=st.booleans())
def test_agrees_with_ast(source: str, module: str, is_package: bool) -> None:
    tree = ast.parse(source)
    assert imported_modules(source.encode(), module, is_package) == _reference(
        tree, module, is_package
    )


@settings(max_examples=200, deadline=None)
@given(source=_source(), module=_dotted, is_package=st.booleans())
def test_required_agrees_with_ast(source: str, module: str, is_package: bool) -> None:
    tree = ast.parse(source)
    assert required_modules(source.encode(), module, is_package) == _reference(
        tree, module, is_package, required=True
    )


REQUIRED_SAMPLE = b'''import a
try:
    import b
except ImportError:
    import c
try:
    import d
except ImportError:
    raise
if TYPE_CHECKING:
    import e
elif typing.TYPE_CHECKING:
    import e2
else:
    import f
try:
    def g():
        import h
    x = (
1)
    import i
except Exception:
    pass
try: import j
except: pass
with suppress(ImportError):
    import k
try:
    import m
except (ImportError,
        AttributeError):
    m = None
'''


def test_required_modules() -> None:
    assert required_modules(REQUIRED_SAMPLE) == {"a", "c", "d", "f", "h"}
    assert imported_modules(REQUIRED_SAMPLE) >= required_modules(REQUIRED_SAMPLE)
    # werkzeug/testapp.py: an optional pkg_resources does not need setuptools.
    werkzeug = (b"def f():\n    try:\n        import pkg_resources\n"
                b"    except ImportError:\n        eggs = ()\n")
    assert required_modules(werkzeug) == frozenset()
    assert imported_modules(werkzeug) == {"pkg_resources"}


# spaCy 3.8's `spacy download` (spacy/cli/download.py), issue 15 case 3.
SPACY_DOWNLOAD = b'''
def _get_pip_install_cmd() -> list:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install"]
    elif shutil.which("uv"):
        return ["uv", "pip", "install"]
'''


def test_run_references_spacy_download() -> None:
    assert run_references(SPACY_DOWNLOAD) == {("module", "pip"), ("program", "uv")}


@pytest.mark.parametrize(("source", "expected"), [
    # a module run as a program, in a list, a command string, a formatted command
    (b'cmd = [python, "-m",\n       "pytest", "-q"]', {("module", "pytest")}),
    (b"self.shell.system(' '.join([python, '-m', 'pip', line]))", {("module", "pip")}),
    (b'cmd = f"{sys.executable} -m black --check ."', {("module", "black")}),
    (b'os.system("%s -m coverage run app.py" % sys.executable)', {("module", "coverage")}),
    (b'check_call("python3 -m pip install x", shell=True)',
     {("module", "pip"), ("program", "python3")}),
    (b'spec = pkgutil.find_loader("mypy.api")', {("module", "mypy.api")}),
    # a program run or looked up by name
    (b'subprocess.run(["black", "--check", "."])', {("program", "black")}),
    (b'os.system("ruff check .")', {("program", "ruff")}),
    (b'path = shutil.which("pytest")', {("program", "pytest")}),
    # advice to the user is not a reference (django/db/models/fields/files.py, urllib3)
    (b"msg = 'or run command \"python -m pip install Pillow\".'", set()),
    (b'"""Install with:\n\n    $ python -m pip install pyopenssl\n"""', set()),
    (b"# subprocess.run(['black', '.']) and python -m pip", set()),
    (b'colors = ["black", "white"]', set()),
    # torch/utils/_cxx_pytree.py: advice quoted in backticks
    (b'msg = ("optree is missing. "\n       "`python3 -m pip install --upgrade optree`")', set()),
    (b'cmd = "/usr/bin/python3.12 -m pip list"', {("module", "pip")}),
    (b'args = ["-m"]\nname = "pip"', set()),
])
def test_run_references(source: bytes, expected: set[tuple[str, str]]) -> None:
    assert run_references(source) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_run_references_never_fails(data: bytes) -> None:
    assert isinstance(run_references(data), frozenset)


_PIECES = [b"import", b"import_module", b"__import__", b"from", b"x", b" ", b"\n", b"#", b"(",
           b")", b",", b"tests", b"\t", b"importlib", b"."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_import_statements_equal_the_plain_regex(pieces: list[bytes]) -> None:
    # The pre-filter's fast path must find exactly what the regex finds on its own.
    from prune.imports import _IMPORT_STMT, _import_statements

    data = b"".join(pieces)
    assert _import_statements(data) == _IMPORT_STMT.findall(data)
