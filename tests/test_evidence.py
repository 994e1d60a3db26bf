"""Evidence before removal (issue 15, kinds A and B): files a file-type or directory-name
rule matches stay when kept code reads them at run time, and the report says why.

Each mechanism is reproduced by a small synthetic distribution installed into a real venv
(the loader, where one exists, is the real package from the index), pruned for real with
standard and aggressive, then exercised. The real cases (nbconvert; scikit-image in the slow
tier) follow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from synth import SITE, add_dist

from prune.env import locate
from prune.plan import build_plan, explain
from prune.profiles import load_profile
from prune.scan import scan

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
PROFILES = ("standard", "aggressive")


def _prune(env: Path, profile: str, check: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_PRUNE), str(env), "--profile", profile, "--check", check, "--format", "json"],
        capture_output=True, text=True, timeout=900,
    )


def _report(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _kept_on_evidence(report: dict, distribution: str) -> int:  # type: ignore[type-arg]
    return sum(g["bytes"] for g in report["kept_on_evidence"] if g["distribution"] == distribution)


# --------------------------------------------------------------------------- kind A: stubs

_ATTACH = "import lazy_loader as lazy\n__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)\n"
_STUB_PKG = {
    "imgkit/__init__.py": _ATTACH,
    "imgkit/__init__.pyi": "from . import filters as filters\n",
    "imgkit/filters/__init__.py": _ATTACH,
    "imgkit/filters/__init__.pyi": "from ._otsu import threshold as threshold\n",
    "imgkit/filters/_otsu.py": "def threshold(xs):\n    return sum(xs) / len(xs)\n",
    # A stub nothing parses at run time: the rule still removes it.
    "imgkit/filters/_otsu.pyi": "def threshold(xs: list[float]) -> float: ...\n" + "# padding\n" * 200,
}
_STUB_CHECK = "python -c 'from imgkit import filters; assert filters.threshold([1, 3]) == 2'"


@pytest.mark.parametrize("profile", PROFILES)
def test_stubs_that_lazy_loader_parses_at_import_stay(fresh_venv: Callable[..., Path], profile: str) -> None:
    """scikit-image's mechanism (case 1): ``lazy_loader.attach_stub(__name__, __file__)`` parses
    the ``.pyi`` beside the module when the package is imported; the type-stubs rule must
    not take it."""
    env = fresh_venv(["lazy-loader==0.6"])
    add_dist(env, "imgkit", _STUB_PKG, requires=("lazy-loader",))
    report = _report(_prune(env, profile, _STUB_CHECK))
    pkg = env / SITE / "imgkit"
    assert (pkg / "__init__.pyi").exists() and (pkg / "filters" / "__init__.pyi").exists()
    assert not (pkg / "filters" / "_otsu.pyi").exists(), "a stub nothing parses still goes"
    assert report["totals"]["bytes_removed"] > 0
    assert any(g["saved_by"] == "evidence:reader:lazy-loader-stubs" and g["files"] == 2
               for g in report["kept_on_evidence"]), report["kept_on_evidence"]
    subprocess.run([str(env / "bin" / "python"), "-c",
                    "from imgkit import filters; assert filters.threshold([1, 3]) == 2"], check=True)


# ------------------------------------------------ kind A: files named by the owner's code

_DATA_PKG = {
    # Compiles its runtime C helper at import, as triton's driver.py and mypyc do.
    "jitkit/__init__.py": textwrap.dedent('''\
        import glob, os
        HERE = os.path.dirname(__file__)
        with open(os.path.join(HERE, "driver.c")) as fh:
            DRIVER = fh.read()
        HEADERS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "rt", "*.h")))
        assert len(HEADERS) == 2, HEADERS
        EXAMPLES = sorted(os.listdir(os.path.join(HERE, "examples")))
        assert len(EXAMPLES) == 1, EXAMPLES
        with open(os.path.join(HERE, "tests/data/reference.json")) as fh:
            REFERENCE = fh.read()
        '''),
    "jitkit/driver.c": "int driver(void) { return 1; }\n" * 20,
    "jitkit/rt/a.h": "#define A 1\n" * 20,
    "jitkit/rt/b.h": "#define B 1\n" * 20,
    "jitkit/examples/demo.txt": "an example the package lists at run time\n",
    "jitkit/tests/data/reference.json": '{"expected": 1}\n',
    "jitkit/tests/test_jit.py": "def test_ok():\n    assert True\n" * 20,
    "jitkit/tests/data/unnamed.json": '{"unused": 1}\n' * 20,
    # Named by nothing: these go.
    "jitkit/unused.pyx": "def f(): pass\n" * 50,
    "jitkit/docs/guide.txt": "documentation nobody reads at run time\n" * 50,
}
_DATA_CHECK = "python -c 'import jitkit; assert jitkit.DRIVER and jitkit.REFERENCE'"


@pytest.mark.parametrize("profile", PROFILES)
def test_files_the_owning_distribution_reads_stay(fresh_venv: Callable[..., Path], profile: str) -> None:
    """C sources and headers, an examples directory and test data that the distribution's
    own code opens by name, by type (``*.h``) and by directory stay; what it does not name
    goes."""
    env = fresh_venv()
    add_dist(env, "jitkit", _DATA_PKG)
    report = _report(_prune(env, profile, _DATA_CHECK))
    pkg = env / SITE / "jitkit"
    # tests/'s Python modules stay with tests/data/reference.json, which evidence keeps: a
    # directory a directory rule matched is never split (see the half-package tests below);
    # data nothing names still goes.
    for kept in ("driver.c", "rt/a.h", "rt/b.h", "examples/demo.txt", "tests/data/reference.json",
                 "tests/test_jit.py"):
        assert (pkg / kept).exists(), kept
    for gone in ("unused.pyx", "docs/guide.txt", "tests/data/unnamed.json"):
        assert not (pkg / gone).exists(), gone
    kinds = {g["saved_by"] for g in report["kept_on_evidence"] if g["distribution"] == "jitkit"}
    assert kinds == {"evidence:file-name", "evidence:extension", "evidence:directory",
                     "evidence:same-package"}, kinds
    assert report["totals"]["bytes_removed"] > 0
    subprocess.run([str(env / "bin" / "python"), "-c", "import jitkit"], check=True)


def test_explain_and_text_report_say_what_evidence_kept(tmp_path: Path) -> None:
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "jitkit", _DATA_PKG)
    plan = build_plan(scan(locate(root)), load_profile("standard"))
    why = explain(plan, f"{SITE}/jitkit/driver.c")
    assert "stays" in why and "evidence:file-name" in why and "'driver.c'" in why and "jitkit/__init__.py" in why
    assert "is removed" in explain(plan, f"{SITE}/jitkit/unused.pyx")
    from prune.report import render

    text = render(plan, "text")
    assert "Kept because kept code reads them at run time" in text and "jitkit [c-sources]" in text
    markdown = render(plan, "markdown")
    assert "## Kept because kept code reads them at run time" in markdown and "| jitkit | c-sources |" in markdown


def test_test_code_and_code_that_cannot_locate_files_are_no_evidence(tmp_path: Path) -> None:
    """A name in test code, or in a module that never locates a file (no ``__file__``,
    importlib.resources, ...), keeps nothing; nor does naming a test suite's directory."""
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "quiet", {
        "quiet/__init__.py": "NAMES = ['helper.c', '*.h', 'examples']\n",
        "quiet/runner.py": "import os\nSKIP = os.path.join(os.path.dirname(__file__), 'tests')\n",
        "quiet/tests/test_x.py": "import os\nP = os.path.join(os.path.dirname(__file__), 'helper.c')\n",
        "quiet/tests/conftest.py": "",
        "quiet/helper.c": "int x;\n",
        "quiet/inc/y.h": "int y;\n",
        "quiet/examples/e.txt": "e\n",
    })
    plan = build_plan(scan(locate(root)), load_profile("standard"))
    gone = {a.path for a in plan.actions}
    for rel in ("helper.c", "inc/y.h", "examples", "tests"):
        assert f"{SITE}/quiet/{rel}" in gone, (rel, sorted(gone))
    assert not [k for k in plan.kept if k.saved_by.startswith("evidence")]


# ------------------------------------- kind A: evidence never leaves half a package

# twisted's mechanism (Twisted 25/26): twisted/plugin.py names "__init__.py" and
# twisted/web/tap.py names "server.pem"; twisted/test/__init__.py does
# ``from twisted.test import proto_helpers``. Evidence kept the __init__ and server.pem while
# the tests rule removed proto_helpers.py: ``import twisted.test`` failed, the run rolled back.
_HALF_PKG = {
    "circkit/__init__.py": "",
    "circkit/plugin.py": "import os\nHERE = os.path.dirname(__file__)\n"
                         "def is_package(d):\n    return os.path.exists(os.path.join(d, '__init__.py'))\n",
    "circkit/tap.py": "import os\nCERT = os.path.join(os.path.dirname(__file__), 'test', 'server.pem')\n",
    "circkit/test/__init__.py": "from circkit.test import proto_helpers\n",
    "circkit/test/proto_helpers.py": "class StringTransport:\n    pass\n" * 10,
    "circkit/test/server.pem": "-----BEGIN CERTIFICATE-----\n" * 10,
    "circkit/test/test_proto.py": "def test_ok():\n    assert True\n" * 10,
    # Names only generic file names: its test suite goes whole.
    "genkit/__init__.py": "import os\nHERE = os.path.dirname(__file__)\n"
                          "MARKERS = ['__init__.py', '__main__.py', 'conftest.py', 'setup.py', 'py.typed',"
                          " '__pycache__']\n",
    "genkit/tests/__init__.py": "from genkit.tests import helpers\n",
    "genkit/tests/helpers.py": "X = 1\n" * 50,
    "genkit/tests/conftest.py": "import genkit\n",
    "genkit/tests/test_gen.py": "def test_ok():\n    assert True\n" * 10,
}


@pytest.mark.parametrize("profile", PROFILES)
def test_evidence_never_leaves_half_a_package(fresh_venv: Callable[..., Path], profile: str) -> None:
    """A file evidence keeps inside tests/ keeps every Python module there (never a kept
    ``__init__.py`` whose modules went; what those import, the import check keeps); a
    generic name (``"__init__.py"``) is no evidence."""
    env = fresh_venv()
    add_dist(env, "circkit", {k: v for k, v in _HALF_PKG.items() if k.startswith("circkit/")})
    add_dist(env, "genkit", {k: v for k, v in _HALF_PKG.items() if k.startswith("genkit/")})
    report = _report(_prune(env, profile, "python -c 'import circkit.test, genkit'"))
    assert report["totals"]["bytes_removed"] > 0
    site = env / SITE
    for kept in ("__init__.py", "proto_helpers.py", "server.pem", "test_proto.py"):
        assert (site / "circkit" / "test" / kept).exists(), kept
    assert not (site / "genkit" / "tests").exists(), "generic names keep nothing"
    assert any(g["saved_by"] == "evidence:same-package" and g["distribution"] == "circkit"
               for g in report["kept_on_evidence"]), report["kept_on_evidence"]
    subprocess.run([str(env / "bin" / "python"), "-c",
                    "import circkit.test; assert circkit.test.proto_helpers.StringTransport"], check=True)


@pytest.mark.parametrize("profile", ("safe",) + PROFILES)
def test_twisted_after_pruning(fresh_venv: Callable[..., Path], profile: str) -> None:
    """The real case: Twisted's test package stays importable (its __init__ imports
    proto_helpers) and the reactor still loads."""
    env = fresh_venv(["twisted==26.10.0"])
    check = "python -c 'import twisted.test; from twisted.internet import reactor'"
    report = _report(_prune(env, profile, check))
    assert report["totals"]["bytes_removed"] > 0
    subprocess.run([str(env / "bin" / "python"), "-c", check.split(" -c ", 1)[1].strip("'")], check=True)


def test_generic_file_names_are_no_evidence() -> None:
    """``"__init__.py"``, ``"conftest.py"``, ``"py.typed"``... name no particular file, bare or
    as a path's end; a specific name still is evidence."""
    from prune.evidence import Candidate, find_evidence

    code = {"kit": [("site/kit/plugin.py", "kit/plugin.py")]}
    source = (b"import os\nHERE = os.path.dirname(__file__)\n"
              b"N = ['__init__.py', 'conftest.py', 'py.typed', '__main__.py', 'setup.py', 'x/__init__.py',"
              b" 'fixture.json', '*.py']\n")
    generic = ["kit/tests/__init__.py", "kit/tests/conftest.py", "kit/tests/py.typed",
               "kit/tests/__main__.py", "kit/tests/setup.py", "kit/x/__init__.py"]
    candidates = [Candidate(g, "kit", "tests", "kit/tests") for g in generic]
    candidates += [Candidate("kit/tests/fixture.json", "kit", "tests", "kit/tests"),
                   Candidate("kit/mod.pyi", "kit", "type-stubs")]
    found = find_evidence(candidates, code, lambda p: source if p == "site/kit/plugin.py" else b"")
    assert sorted(found) == [len(generic)], found
    assert found[len(generic)].kind == "file-name"


# --------------------------------------------------------------------------- kind B: share/

_SHARE_PKG = {
    "tplkit/__init__.py": textwrap.dedent('''\
        import os, sys
        def template(name):
            with open(os.path.join(sys.prefix, "share", "tplkit", "templates", name)) as fh:
                return fh.read()
        ICON = os.path.join(sys.prefix, "share", "icons", "tplkit.svg")
        '''),
    "../../../share/tplkit/templates/lab.tpl": "<html>{{ body }}</html>\n",
    "../../../share/icons/tplkit.svg": "<svg/>\n",
    "../../../share/man/man1/tplkit.1": ".TH tplkit 1\n" * 50,
    "../../../share/applications/tplkit.desktop": "[Desktop Entry]\nName=tplkit\n" * 10,
    "../../../share/jupyter/kernels/tplkit/kernel.json": '{"argv": ["python"]}\n',
}


@pytest.mark.parametrize("profile", PROFILES)
def test_share_data_a_kept_distribution_installed_stays(fresh_venv: Callable[..., Path], profile: str) -> None:
    """nbconvert's mechanism (case 2): data a kept distribution installed into share/ (its
    RECORD lists it) is read through sys.prefix; man pages and desktop entries nothing
    reads go, an icon the code names stays, share/jupyter is protected."""
    env = fresh_venv()
    add_dist(env, "tplkit", _SHARE_PKG)
    report = _report(_prune(env, profile, "python -c 'import tplkit; assert tplkit.template(\"lab.tpl\")'"))
    share = env / "share"
    assert (share / "tplkit" / "templates" / "lab.tpl").exists()
    assert (share / "jupyter" / "kernels" / "tplkit" / "kernel.json").exists()
    assert (share / "icons" / "tplkit.svg").exists()
    assert not (share / "man" / "man1" / "tplkit.1").exists()
    assert not (share / "applications" / "tplkit.desktop").exists()
    assert report["totals"]["bytes_removed"] > 0


def test_share_data_of_a_removed_distribution_goes(tmp_path: Path) -> None:
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "app", {"app/__init__.py": ""})
    add_dist(root, "tplkit", _SHARE_PKG, requested=False)
    plan = build_plan(scan(locate(root)), load_profile("standard"), _roots("app"))
    gone = [a.path for a in plan.actions]
    for rel in ("share/tplkit/templates/lab.tpl", "share/jupyter/kernels/tplkit/kernel.json"):
        assert any(rel == g or rel.startswith(g + "/") for g in gone), (rel, gone)


def _roots(*names: str):  # type: ignore[no-untyped-def]
    from prune.plan import PlanOptions

    return PlanOptions(roots=names)


# ------------------------------------------------------------------------------ real cases

_NB_CHECK = ("python -c 'import nbformat; from nbconvert import HTMLExporter; "
             "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(\"# hi\")]); "
             "body, _ = HTMLExporter(template_name=\"lab\").from_notebook_node(nb); assert \"hi\" in body'")


@pytest.mark.parametrize("profile", PROFILES)
def test_nbconvert_lab_template_after_pruning(fresh_venv: Callable[..., Path], profile: str) -> None:
    """Case 2: nbconvert 7.17.2 reads share/jupyter/nbconvert/templates through sys.prefix."""
    env = fresh_venv(["nbconvert==7.17.2"])
    report = _report(_prune(env, profile, _NB_CHECK))
    assert (env / "share" / "jupyter" / "nbconvert" / "templates" / "lab").is_dir()
    assert report["totals"]["bytes_removed"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_scikit_image_filters_and_measure_after_pruning(fresh_venv: Callable[..., Path], profile: str) -> None:
    """Case 1: scikit-image 0.26.0's subpackages load through lazy_loader.attach_stub."""
    env = fresh_venv(["scikit-image==0.26.0", "lazy-loader==0.6", "numpy==2.4.6", "scipy==1.17.1"])
    check = ("python -c 'import numpy as np; from skimage import filters, measure; "
             "a = np.zeros((8, 8)); a[2:5, 2:5] = 1.0; t = filters.threshold_otsu(a); "
             "assert measure.label(a > t).max() == 1'")
    report = _report(_prune(env, profile, check))
    assert report["totals"]["bytes_removed"] > 0
    assert _kept_on_evidence(report, "scikit-image") > 0
    assert (env / SITE / "skimage" / "filters" / "__init__.pyi").exists()


# ------------------------------------------------------------------ the pure evidence step

def test_a_path_literal_names_only_the_files_whose_path_ends_so() -> None:
    """``"csrc/utils.h"`` names ``.../csrc/utils.h``, not every ``utils.h``; an f-string's
    placeholder directory is skipped, the plain tail after it still counts."""
    from prune.evidence import Candidate, find_evidence

    code = {"kit": [("site/kit/gen.py", "kit/gen.py")]}
    source = (b"import os\nHERE = os.path.dirname(__file__)\n"
              b"A = os.path.join(HERE, 'csrc/utils.h')\nB = f'{HERE}/rt/driver.c'\n")
    candidates = [Candidate("kit/include/csrc/utils.h", "kit", "c-sources"),
                  Candidate("kit/other/utils.h", "kit", "c-sources"),
                  Candidate("kit/rt/driver.c", "kit", "c-sources"),
                  Candidate("kit/driver.c", "kit", "c-sources"),
                  Candidate("other/include/csrc/utils.h", "other", "c-sources")]
    found = find_evidence(candidates, code, lambda p: source if p == "site/kit/gen.py" else b"")
    assert sorted(found) == [0, 2], found
    assert found[0].kind == "file-name" and found[0].source == "site/kit/gen.py"


def test_an_extension_after_globs_and_placeholders_names_the_type() -> None:
    """trytond's mechanism (issue 15 finding 00): ``iglob('%s/*.po' % localedir)`` and
    ``f'{language}.po'`` name the type of file; ``'messages.po'`` names one file only."""
    from prune.evidence import Candidate, find_evidence

    forms = {"glob-percent": b"iglob('%s/*.po' % d)", "f-string": b"open(f'{lang}.po')",
             "format": b"'{}.po'.format(lang)", "named-percent": b"'%(lang)s.po' % v",
             "concatenation": b"lang + '.po'",
             # torch._inductor.codecache names the headers it precompiles so (torch.compile).
             "conditional f-string": b"f\"{'array_ref' if ref else device}.po\""}
    for label, line in forms.items():
        source = b"import os\nd = os.path.dirname(__file__)\n" + line + b"\n"
        found = find_evidence([Candidate("kit/locale/fr.po", "kit", "gettext-sources")],
                              {"kit": [("site/kit/i18n.py", "kit/i18n.py")]}, lambda p, s=source: s)
        assert 0 in found and found[0].kind == "extension", label
    source = b"import os\nd = os.path.dirname(__file__)\nopen('messages.po')\nx = 'a.b.po'\n"
    found = find_evidence([Candidate("kit/locale/fr.po", "kit", "gettext-sources")],
                          {"kit": [("site/kit/i18n.py", "kit/i18n.py")]}, lambda p: source)
    assert found == {}


# ------------------------------------------ kind A: data read at run time through a format string

_PO_LOADER = textwrap.dedent("""\
    import glob, os
    LOCALE = os.path.join(os.path.dirname(__file__), "locale")
    def languages():
        return sorted(os.path.basename(p)[:-3] for p in glob.glob('%s/*.po' % LOCALE))
    def load(language):
        with open(os.path.join(LOCALE, f'{language}.po'), encoding="utf-8") as fh:
            return fh.read()
    """)
_PO = 'msgid "Hello"\nmsgstr "Bonjour"\n' + "# padding\n" * 100
_PO_CHECK = "python -c 'import poapp; assert poapp.languages() == [\"fr\"] and \"Bonjour\" in poapp.load(\"fr\")'"


@pytest.mark.parametrize("profile", PROFILES)
def test_po_files_kept_code_loads_through_format_strings_stay(fresh_venv: Callable[..., Path],
                                                             profile: str) -> None:
    """trytond 8.2 loads ``MODULE/locale/*.po`` itself (no gettext): the gettext-sources rule
    must not take ``.po`` files whose distribution's code globs or formats ``.po`` names; a
    distribution whose code does not still loses them."""
    env = fresh_venv()
    add_dist(env, "poapp", {"poapp/__init__.py": _PO_LOADER, "poapp/locale/fr.po": _PO})
    add_dist(env, "quietapp", {"quietapp/__init__.py": "import os\nHERE = os.path.dirname(__file__)\n",
                               "quietapp/locale/fr.po": _PO})
    report = _report(_prune(env, profile, _PO_CHECK))
    assert (env / SITE / "poapp" / "locale" / "fr.po").exists()
    assert not (env / SITE / "quietapp" / "locale" / "fr.po").exists()
    assert any(g["distribution"] == "poapp" and g["saved_by"] == "evidence:extension"
               for g in report["kept_on_evidence"]), report["kept_on_evidence"]
    run = subprocess.run([str(env / "bin" / "python"), "-c", "import poapp; print(poapp.load('fr'))"],
                         capture_output=True, text=True)
    assert "Bonjour" in run.stdout, run.stderr


# ------------------------------- kind A: readers of every distribution's files (type checkers, Cython)

_TYPED = {"typedlib/__init__.py": "def f(x):\n    return x\n", "typedlib/py.typed": "",
          "typedlib/_impl.pyi": "def g(x: int) -> int: ...\n" + "# padding\n" * 50}
_STUBS = {"foo-stubs/__init__.pyi": "def get(url: str) -> int: ...\n" + "# padding\n" * 50,
          "foo-stubs/METADATA.toml": 'version = "1.0"\n'}


def _kept_by(report: dict, saved_by: str) -> list[dict]:  # type: ignore[type-arg]
    return [g for g in report["kept_on_evidence"] if g["saved_by"] == saved_by]


def test_a_kept_type_checker_keeps_every_distributions_stubs(fresh_venv: Callable[..., Path]) -> None:
    """mypy, pyright, jedi... read the ``.pyi`` and ``py.typed`` of every distribution (PEP 561):
    while one is kept, type-stubs removes them from no kept distribution, and the report
    names the reader. Without a reader, the rule still removes them."""
    env = fresh_venv()
    add_dist(env, "typedlib", _TYPED)
    add_dist(env, "mypy", {"mypy/__init__.py": ""})
    report = _report(_prune(env, "standard", "python -c 'import typedlib'"))
    assert (env / SITE / "typedlib" / "py.typed").exists()
    assert (env / SITE / "typedlib" / "_impl.pyi").exists()
    groups = _kept_by(report, "evidence:reads-environment:type-checkers")
    assert any(g["distribution"] == "typedlib" and "mypy" in g["reasons"][0] for g in groups), report[
        "kept_on_evidence"]

    bare = fresh_venv()
    add_dist(bare, "typedlib", _TYPED)
    _report(_prune(bare, "standard", "python -c 'import typedlib'"))
    assert not (bare / SITE / "typedlib" / "py.typed").exists()
    assert not (bare / SITE / "typedlib" / "_impl.pyi").exists()


def test_a_kept_stubs_distribution_is_not_emptied(fresh_venv: Callable[..., Path]) -> None:
    """``types-requests`` is kept (installed by name) but consists of stubs only: type-stubs
    would leave it with METADATA.toml, which is removing it in effect. Its stubs stay."""
    env = fresh_venv()
    add_dist(env, "types-foo", _STUBS, top_level=("foo-stubs",))
    add_dist(env, "typedlib", _TYPED)
    report = _report(_prune(env, "standard", "python -c 'import typedlib'"))
    assert (env / SITE / "foo-stubs" / "__init__.pyi").exists()
    assert not (env / SITE / "typedlib" / "_impl.pyi").exists(), "a package with code still loses stubs"
    assert any(g["distribution"] == "types-foo" for g in _kept_by(report, "evidence:kept-distribution"))


def test_a_kept_cython_keeps_pxd_and_include_headers_of_every_distribution(
        fresh_venv: Callable[..., Path]) -> None:
    """Cython cimports numpy through numpy/__init__.pxd and compiles against the headers under
    numpy.get_include(): while Cython is kept, those stay in every kept distribution; other
    C sources still go."""
    env = fresh_venv()
    files = {"numlike/__init__.py": "import os\ndef get_include():\n"
                                    "    return os.path.join(os.path.dirname(__file__), '_core', 'include')\n",
             "numlike/__init__.pxd": "cdef extern from 'numlike/arr.h':\n    int nl_size(void*)\n",
             "numlike/_core/include/numlike/arr.h": "int nl_size(void*);\n" + "/* pad */\n" * 50,
             "numlike/_core/src/arr.c": "int nl_size(void* p) { return 0; }\n" + "/* pad */\n" * 50}
    add_dist(env, "numlike", files)
    add_dist(env, "cython", {"Cython/__init__.py": ""}, top_level=("Cython",))
    report = _report(_prune(env, "standard", "python -c 'import numlike'"))
    site = env / SITE / "numlike"
    assert (site / "__init__.pxd").exists() and (site / "_core/include/numlike/arr.h").exists()
    assert not (site / "_core/src/arr.c").exists()
    assert any(g["distribution"] == "numlike" for g in _kept_by(report, "evidence:reads-environment:cython-cimport"))


def test_capitalised_test_directories_are_test_code() -> None:
    """Cython/Debugger/Tests/TestLibCython.py is test code: no evidence of a read at run time."""
    from prune.imports import is_evidence_file

    assert not is_evidence_file("lib/python3.12/site-packages/Cython/Debugger/Tests/TestLibCython.py")
    assert not is_evidence_file("lib/python3.12/site-packages/pkg/Test/x.py")
    assert is_evidence_file("lib/python3.12/site-packages/Cython/Compiler/Main.py")


_MYPY_SAMPLE = textwrap.dedent("""\
    import attrs, requests
    @attrs.define
    class A:
        x: int
    A(x="s")
    r: int = requests.get("u").status_code
    s: str = requests.get("u").json
    """)


def test_real_mypy_reports_the_same_errors_after_a_standard_prune(fresh_venv: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    """Finding 0: with mypy, attrs, requests and types-requests, standard kept mypy and
    types-requests but emptied requests-stubs and removed attrs' py.typed: mypy lost line 7's
    error and reported a wrong one on line 5."""
    env = fresh_venv(["mypy==2.4.1", "attrs==26.1.0", "requests==2.34.2", "types-requests==2.33.0.20261030"])
    sample = tmp_path / "sample.py"
    sample.write_text(_MYPY_SAMPLE)

    def mypy() -> str:
        run = subprocess.run([str(env / "bin" / "mypy"), "--no-incremental", "--no-error-summary", str(sample)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=600)
        return "\n".join(sorted(line.rpartition("sample.py:")[2] for line in run.stdout.splitlines()
                                 if "sample.py:" in line))

    before = mypy()
    assert before.startswith("5: error:") and "\n7: error:" in before, before
    _report(_prune(env, "standard", "python -c 'import requests, attrs'"))
    assert mypy() == before
    assert (env / SITE / "attrs" / "py.typed").exists()


@pytest.mark.slow
def test_trytond_loads_its_translations_after_a_standard_prune(fresh_venv: Callable[..., Path],
                                                               tmp_path: Path) -> None:
    """Finding 00: trytond 8.2.1 loads MODULE/locale/*.po into the database itself
    (``iglob('%s/*.po' % localedir)``); after standard removed them, ``trytond-admin -l fr``
    exited 0 with no French translation at all."""
    import sqlite3

    env = fresh_venv(["trytond==8.2.1"])
    _report(_prune(env, "standard", "python -c 'import trytond.modules'"))
    assert (env / SITE / "trytond" / "ir" / "locale" / "fr.po").exists()
    db = tmp_path / "db"
    db.mkdir()
    (db / "test.sqlite").touch()
    (tmp_path / "pass").write_text("admin\n")
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TRYTOND_DATABASE__URI": "sqlite://",
               "TRYTOND_DATABASE__PATH": str(db), "TRYTONPASSFILE": str(tmp_path / "pass")}
    run = subprocess.run([str(env / "bin" / "trytond-admin"), "-d", "test", "--all", "-l", "fr",
                          "--email", "a@b.c"], capture_output=True, text=True, env=environ, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    with sqlite3.connect(db / "test.sqlite") as conn:
        (count,) = conn.execute("select count(*) from ir_translation where lang='fr'").fetchone()
    assert count > 1000, count


# --------------------------------------- kind A: headers a compiler reads, by their includes

def test_a_header_type_narrows_to_the_named_directories_and_their_include_closure() -> None:
    """torch's inductor names ``'*.h'`` only to build a header's name under
    ``torch/csrc/inductor``: what stays is the headers there and what they ``#include``
    (to a fixpoint; ``"../x.h"`` and ``<a/b.h>`` both resolve), plus the closure of a header
    named outright; an unrelated header goes. A file that names the type but no directory
    holding the owner's headers cannot be narrowed: every header stays."""
    from prune.evidence import Candidate, find_evidence

    sources = {
        "site/kit/jit.py": (b"import os\nROOT = os.path.dirname(__file__)\n"
                            b"def header(kind, dev):\n    return ('kit/csrc/jit/' f'{kind}/{dev}.h')\n"),
        "site/kit/ext.py": b"import os\nROOT = os.path.dirname(__file__)\nSRC = '#include <kit/extension.h>'\n",
        "site/kit/include/kit/csrc/jit/cpu/cpu.h": b'#include <c10/hash.h>\n#include "../../common.h"\n',
        "site/kit/include/c10/hash.h": b"#pragma once\n  #  include <c10/macros.h>\n",
        "site/kit/include/c10/macros.h": b"#define X 1\n",
        "site/kit/include/kit/csrc/common.h": b"int common;\n",
        "site/kit/include/kit/extension.h": b"#include <kit/api.h>\n",
        "site/kit/include/kit/api.h": b"int api;\n",
        "site/kit/include/unrelated/big.h": b"#include <c10/macros.h>\n",
        "site/kit/include/kit/csrc/jit/cpu/conditional.h": b"#if 0\n#include <never/else.h>\n#endif\n",
        "site/kit/include/never/else.h": b"",
    }
    headers = [p for p in sources if p.endswith(".h")]
    candidates = [Candidate(p[len("site/"):], "kit", "c-sources", "", p) for p in headers]
    code = {"kit": [("site/kit/jit.py", "kit/jit.py"), ("site/kit/ext.py", "kit/ext.py")]}
    found = find_evidence(candidates, code, lambda p: sources.get(p, b""))
    kept = {candidates[i].sub.split("include/", 1)[1]: ev.kind for i, ev in found.items()}
    assert kept == {
        "kit/csrc/jit/cpu/cpu.h": "header-directory", "kit/csrc/jit/cpu/conditional.h": "header-directory",
        "c10/hash.h": "include", "c10/macros.h": "include", "kit/csrc/common.h": "include",
        "kit/extension.h": "file-name", "kit/api.h": "include",
        "never/else.h": "include",  # #if is not evaluated: every branch counts
    }, kept
    # An include names the start of its chain, and the file that kept it.
    macros = next(ev for i, ev in found.items() if candidates[i].sub.endswith("c10/macros.h"))
    assert "#include <c10/macros.h> in site/kit/include/c10/hash.h" in macros.reason, macros.reason
    assert macros.reason.endswith("(from cpu.h, kept by site/kit/jit.py)"), macros.reason

    # The type named by a file that names no directory of the owner's headers: all stay.
    unscoped = dict(sources)
    unscoped["site/kit/jit.py"] = b"import os\nROOT = os.path.dirname(__file__)\nNAME = f'{x}.h'\n"
    found = find_evidence(candidates, code, lambda p: unscoped.get(p, b""))
    assert len(found) == len(candidates) and any(ev.kind == "extension" for ev in found.values())

    # A distribution that hands its headers to compilers (get_include(), include_paths():
    # torch's cpp_extension compiles user C++ that may include any of them) keeps them all;
    # a header inside its test suite (a directory rule) is not published.
    published = dict(sources)
    published["site/kit/ext.py"] = (b"import os\ndef get_include():\n"
                                    b"    return os.path.join(os.path.dirname(__file__), 'include')\n")
    suite = Candidate("kit/tests/fixture.h", "kit", "tests", "kit/tests", "site/kit/tests/fixture.h")
    found = find_evidence([*candidates, suite], code, lambda p: published.get(p, b""))
    kinds = {candidates[i].sub.split("include/", 1)[1]: ev.kind for i, ev in found.items() if i < len(candidates)}
    assert kinds["kit/api.h"] == "publishes-headers" and kinds["unrelated/big.h"] == "publishes-headers"
    assert len(candidates) not in found, "a test suite's header is not published"
    assert "get_include() in site/kit/ext.py" in found[headers.index("site/kit/include/kit/api.h")].reason


_JIT_PKG = {
    "jitkit/__init__.py": textwrap.dedent("""\
        import os, subprocess, sys, tempfile
        INCLUDE = os.path.join(os.path.dirname(__file__), "include")
        def header(device):
            return "jitkit/csrc/jit/" f"{device}.h"
        def compile(device="cpu"):
            # What torch.compile does on CPU: write C++ that includes a shipped header, compile it.
            with tempfile.TemporaryDirectory() as d:
                src = os.path.join(d, "k.c")
                with open(src, "w") as fh:
                    fh.write(f"#include <{header(device)}>\\nint main(void) {{ return kernel(2) - 4; }}\\n")
                subprocess.run(["cc", "-I", INCLUDE, src, "-o", os.path.join(d, "k")], check=True)
                return subprocess.run([os.path.join(d, "k")]).returncode
        """),
    "jitkit/include/jitkit/csrc/jit/cpu.h": '#include "util/twice.h"\nstatic int kernel(int x) { return twice(x); }\n',
    "jitkit/include/jitkit/csrc/jit/util/twice.h": ("#include <c10/ops.h>\n"
                                                    "static int twice(int x) { return add(x, x); }\n"),
    "jitkit/include/c10/ops.h": "static int add(int a, int b) { return a + b; }\n",
    # Headers of the C++ library nothing compiles at run time: they go.
    "jitkit/include/jitkit/api/tensor.h": "struct tensor { int n; };\n" + "/* pad */\n" * 500,
    "jitkit/include/caffe/proto.h": "/* pad */\n" * 500,
}


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("profile", ("safe",) + PROFILES)
def test_headers_a_kept_jit_compiler_includes_stay_and_the_rest_go(
        fresh_venv: Callable[..., Path], profile: str) -> None:
    """The torch.compile mechanism for real: kept code compiles C against a shipped header at
    run time, and the compiler reads that header's whole #include closure (torch 2.13's
    inductor needs 2.3 MB of torch's 31 MB of headers, cpp_extension 14 MB more). The
    closure stays, headers outside it go, the check compiles and runs after the prune."""
    env = fresh_venv()
    add_dist(env, "jitkit", _JIT_PKG)
    report = _report(_prune(env, profile, "python -c 'import jitkit, sys; sys.exit(jitkit.compile())'"))
    inc = env / SITE / "jitkit" / "include"
    for kept in ("jitkit/csrc/jit/cpu.h", "jitkit/csrc/jit/util/twice.h", "c10/ops.h"):
        assert (inc / kept).exists(), kept
    assert not (inc / "jitkit/api/tensor.h").exists() and not (inc / "caffe/proto.h").exists()
    kinds = {g["saved_by"] for g in report["kept_on_evidence"] if g["distribution"] == "jitkit"}
    assert kinds == {"evidence:header-directory", "evidence:include"}, kinds
    subprocess.run([str(env / "bin" / "python"), "-c", "import jitkit, sys; sys.exit(jitkit.compile())"],
                   check=True)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ("safe", "aggressive"))
def test_torch_compile_and_cpp_extensions_after_pruning(fresh_venv: Callable[..., Path], profile: str,
                                                        tmp_path: Path) -> None:
    """torch 2.13 on CPU: torch.compile (inductor, also in cpp_wrapper mode) and
    cpp_extension.load_inline compile against torch's headers after the prune, each with
    its own empty cache so nothing compiled before the prune is reused, with a source that
    includes ``<torch/script.h>`` (a header no torch code names: it stays because torch hands
    its include directories to compilers); torch/bin's C++ test programs are gone."""
    env = fresh_venv(["torch==2.13.0"])
    code = textwrap.dedent("""\
        import torch, torch._inductor.config as config
        from torch.utils.cpp_extension import load_inline
        def f(x, y):
            return (x.sin() * y).relu().sum(dim=-1)
        x, y = torch.randn(16, 8), torch.randn(16, 8)
        assert torch.allclose(torch.compile(f)(x, y), f(x, y), atol=1e-5)
        config.cpp_wrapper = True
        torch._dynamo.reset()
        assert torch.allclose(torch.compile(f)(x, y), f(x, y), atol=1e-5)
        m = load_inline(name="add_one", cpp_sources=["#include <torch/script.h>\\n"
                                                     "torch::Tensor add_one(torch::Tensor x) { return x + 1; }"],
                        functions=["add_one"])
        assert torch.equal(m.add_one(torch.zeros(3)), torch.ones(3))
        """)
    script = tmp_path / "compile_check.py"
    script.write_text(code)
    cache = tmp_path / "caches"
    check = (f"rm -rf {cache} && TORCHINDUCTOR_CACHE_DIR={cache}/inductor "
             f"TORCH_EXTENSIONS_DIR={cache}/ext python {script}")
    report = _report(_prune(env, profile, check))
    assert report["verification"]["status"] == "passed"
    assert not (env / SITE / "torch" / "bin" / "test_api").exists()
    assert (env / SITE / "torch" / "include" / "torch" / "csrc" / "inductor" / "cpp_prefix.h").exists()
    assert any(g["distribution"] == "torch" and g["saved_by"] == "evidence:publishes-headers"
               for g in report["kept_on_evidence"]), report["kept_on_evidence"]


def test_test_harnesses_and_code_generators_are_no_evidence(tmp_path: Path) -> None:
    """A test harness shipped as a package names the suite it runs (sympy/testing/runtests.py
    names ``sympy/core/tests/test_basic.py``), and a code generator the knowledge base lists
    (torchgen) names the headers it writes: neither keeps anything. The same names in code
    that reads at run time do."""
    from synth import make_venv_tree

    runner = "import os\nROOT = os.path.dirname(__file__)\nSUITE = ['symkit/core/tests/test_basic.py']\n"
    generator = "import os\nHERE = os.path.dirname(__file__)\ndef out(name):\n    return f'{name}.h'\n"
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "symkit", {
        "symkit/__init__.py": "",
        "symkit/testing/runtests.py": runner,
        "symkit/core/__init__.py": "",
        "symkit/core/tests/__init__.py": "",
        "symkit/core/tests/test_basic.py": "def test_ok():\n    assert True\n",
    })
    add_dist(root, "torch", {"torch/__init__.py": "", "torch/include/ATen/ops/add.h": "int add;\n",
                             "torchgen/__init__.py": "", "torchgen/gen.py": generator})
    plan = build_plan(scan(locate(root)), load_profile("standard"))
    gone = {a.path for a in plan.actions}
    assert f"{SITE}/symkit/core/tests" in gone and f"{SITE}/torch/include/ATen/ops/add.h" in gone, sorted(gone)
    assert not [k for k in plan.kept if k.saved_by.startswith("evidence")]

    # The same literals in code that is neither keep the files.
    (root / SITE / "symkit" / "loader.py").write_text(runner)
    (root / SITE / "torch" / "gen.py").write_text(generator)
    plan = build_plan(scan(locate(root)), load_profile("standard"))
    gone = {a.path for a in plan.actions}
    assert f"{SITE}/symkit/core/tests" not in gone and f"{SITE}/torch/include/ATen/ops/add.h" not in gone


def test_test_programs_in_a_package_bin_go_unless_named(tmp_path: Path) -> None:
    """torch/bin ships C++ test programs (test_api, test_jit, TCPStoreTest: 41 MB) beside
    tools torch runs (torch_shm_manager): the test programs go, the tools and the venv's own
    bin/ stay, and one that kept code names stays."""
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "tkit", {
        "tkit/__init__.py": "import os\nSHM = os.path.join(os.path.dirname(__file__), 'bin', 'shm_manager')\n"
                            "ABI = os.path.join(os.path.dirname(__file__), 'bin', 'test_abi_check')\n",
        "tkit/bin/shm_manager": b"\x7fELF" + b"\0" * 64,
        "tkit/bin/test_api": b"\x7fELF" + b"\0" * 4096,
        "tkit/bin/TCPStoreTest": b"\x7fELF" + b"\0" * 4096,
        "tkit/bin/test_abi_check": b"\x7fELF" + b"\0" * 64,
    }, scripts=("test_runner",))
    for profile in ("safe", "standard", "aggressive"):
        plan = build_plan(scan(locate(root)), load_profile(profile))
        by_rule = {a.path: a.rule for a in plan.actions}
        assert by_rule.get(f"{SITE}/tkit/bin/test_api") == "test-programs", profile
        assert by_rule.get(f"{SITE}/tkit/bin/TCPStoreTest") == "test-programs", profile
        for stays in (f"{SITE}/tkit/bin/shm_manager", f"{SITE}/tkit/bin/test_abi_check", "bin/test_runner"):
            assert stays not in by_rule, (profile, stays)


_PUB_PKG = {
    "pubkit/__init__.py": textwrap.dedent("""\
        import os
        def get_include():
            return os.path.join(os.path.dirname(__file__), "include")
        """),
    "pubkit/include/pubkit/core.h": '#include "detail/twice.h"\n',
    "pubkit/include/pubkit/detail/twice.h": "static int twice(int x) { return 2 * x; }\n",
    "pubkit/include/pubkit/extra.h": "static int thrice(int x) { return 3 * x; }\n",
    "pubkit/src/impl.c": "int impl;\n" + "/* pad */\n" * 300,
}
# User code compiled at run time, as load_inline, cppimport or pyximport compile it: it
# includes headers no code in the package names.
_PUB_CHECK = ("python -c 'import pubkit, subprocess, tempfile, os; d = tempfile.mkdtemp(); "
              "open(d + \"/u.c\", \"w\").write(\"#include <pubkit/extra.h>\\n#include <pubkit/core.h>\\n"
              "int main(void) { return thrice(1) + twice(1) - 5; }\\n\"); "
              "subprocess.run([\"cc\", \"-I\", pubkit.get_include(), d + \"/u.c\", \"-o\", d + \"/u\"], check=True); "
              "assert subprocess.run([d + \"/u\"]).returncode == 0'")


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("profile", ("safe",) + PROFILES)
def test_a_distribution_that_publishes_its_headers_keeps_them_all(
        fresh_venv: Callable[..., Path], profile: str) -> None:
    """torch (cpp_extension.include_paths, load_inline), pythran (get_include), numpy and
    pybind11 hand their include directories to compilers: code compiled at run time may
    include any of their headers (a tester's finding: ``#include <torch/script.h>`` in a
    load_inline source failed after a prune that exited 0). Every header stays; C sources,
    which nothing includes, still go."""
    env = fresh_venv()
    add_dist(env, "pubkit", _PUB_PKG)
    report = _report(_prune(env, profile, _PUB_CHECK))
    inc = env / SITE / "pubkit" / "include" / "pubkit"
    assert (inc / "core.h").exists() and (inc / "extra.h").exists() and (inc / "detail" / "twice.h").exists()
    assert not (env / SITE / "pubkit" / "src" / "impl.c").exists()
    assert {g["saved_by"] for g in report["kept_on_evidence"] if g["distribution"] == "pubkit"} == {
        "evidence:publishes-headers"}


def _removed_beside_a_kept_cython(tmp_path: Path, name: str, files: dict[str, str]) -> set[str]:
    """The paths a standard plan removes from a venv holding the distribution ``name`` (its
    ``files``) and a Cython, which is kept and reads every distribution's .pxd and include/."""
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, name, files)
    add_dist(root, "cython", {"Cython/__init__.py": ""}, top_level=("Cython",))
    return {a.path for a in build_plan(scan(locate(root)), load_profile("standard")).actions}


def test_what_a_header_that_stays_for_another_reason_includes_stays(tmp_path: Path) -> None:
    """pythran's mechanism: while Cython or pythran is kept, the headers under every
    include/ directory stay (knowledge reads_environment); what they #include outside
    include/ must stay too (pythonic/include/types/numpy_iexpr.hpp includes
    pythonic/utils/array_helper.hpp), or the compiler fails."""
    gone = _removed_beside_a_kept_cython(tmp_path, "hdrkit", {
        "hdrkit/__init__.py": "",
        "hdrkit/include/hdrkit/api.hpp": "#include <hdrkit/utils/helper.hpp>\n",
        "hdrkit/utils/helper.hpp": "#include \"deep.hpp\"\n",
        "hdrkit/utils/deep.hpp": "int deep;\n",
        "hdrkit/utils/unused.hpp": "int unused;\n",
    })
    for stays in ("include/hdrkit/api.hpp", "utils/helper.hpp", "utils/deep.hpp"):
        assert f"{SITE}/hdrkit/{stays}" not in gone, (stays, sorted(gone))
    assert f"{SITE}/hdrkit/utils/unused.hpp" in gone


def test_a_header_only_distribution_keeps_its_headers(tmp_path: Path) -> None:
    """nvidia-cuda-cccl (libcu++, CUB, Thrust) is all headers, its public ones extensionless
    in libc++ style (``cuda/std/array``), including ``.h`` files the c-sources rule matches:
    removing those left a tree that could not compile, in every profile. A kept distribution
    that is mostly headers keeps them; in one that is not, headers still go."""
    from synth import make_venv_tree

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "cccl-like", {
        "cccl_like/__init__.py": "",
        "cccl_like/include/cuda/std/array": '#include "__internal/atomic.h"\n',
        "cccl_like/include/cuda/std/__internal/atomic.h": "/* atomics */\n" * 400,
        **{f"cccl_like/include/cub/block/b{i}.h": "/* block */\n" * 20 for i in range(20)},
    })
    add_dist(root, "codekit", {"codekit/__init__.py": "X = 1\n" * 400, "codekit/include/codekit.h": "int x;\n"})
    for profile in ("safe", "standard", "aggressive"):
        plan = build_plan(scan(locate(root)), load_profile(profile))
        gone = {a.path for a in plan.actions}
        assert f"{SITE}/cccl_like/include/cuda/std/__internal/atomic.h" not in gone, profile
        assert f"{SITE}/codekit/include/codekit.h" in gone, profile
        assert any(k.saved_by == "evidence:header-distribution" for k in plan.kept), profile


def test_an_include_written_by_code_that_locates_nothing_names_the_header() -> None:
    """torch's inductor/codegen/cpp_template.py splices ``#include <c10/util/Unroll.h>`` into
    the C++ it compiles (flex attention on CPU) and mentions no ``__file__``: code that writes
    ``#include`` is evidence by itself."""
    from prune.evidence import Candidate, find_evidence

    source = b'def prefix(res):\n    res.splice("#include <c10/util/Unroll.h>")\n'
    candidates = [Candidate("kit/include/c10/util/Unroll.h", "kit", "c-sources"),
                  Candidate("kit/include/c10/util/Other.h", "kit", "c-sources")]
    found = find_evidence(candidates, {"kit": [("site/kit/tpl.py", "kit/tpl.py")]}, lambda p: source)
    assert sorted(found) == [0] and found[0].kind == "file-name", found


def test_headers_a_kept_pxd_declares_stay(tmp_path: Path) -> None:
    """cysignals 1.12: ``signals.pxd`` (kept while Cython is) declares ``cdef extern from
    "struct_signals.h"``, a header beside it; a module that cimports it failed to compile
    after a prune that exited 0, in every profile. What a kept .pxd names stays."""
    gone = _removed_beside_a_kept_cython(tmp_path, "cysig-like", {
        # No Python code at all, so none that locates a file (cysignals has none either):
        # only the .pxd that stays can ask for its headers.
        "cysig_like/signals.pxd": 'cdef extern from "struct_signals.h":\n    ctypedef struct cysigs_t:\n        int x\n'
                                  'include "macros.pxi"\n',
        "cysig_like/macros.pxi": 'cdef extern from "macros.h":\n    int sig_on()\n',
        "cysig_like/struct_signals.h": "typedef struct { int x; } cysigs_t;\n",
        "cysig_like/macros.h": '#include "implementation.c"\nint sig_on(void);\n',
        "cysig_like/implementation.c": "int sig_on(void) { return 0; }\n",
        "cysig_like/unused.h": "int unused;\n",
    })
    for stays in ("signals.pxd", "macros.pxi", "struct_signals.h", "macros.h", "implementation.c"):
        assert f"{SITE}/cysig_like/{stays}" not in gone, (stays, sorted(gone))
    assert f"{SITE}/cysig_like/unused.h" in gone
