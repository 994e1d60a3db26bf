"""The grep prefilter of the import check: it may only rule out files that hold none of the
words, and when it cannot answer, every file is read as before."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import is_gnu
from synth import SITE, add_dist, make_venv_tree

from prune._grep import GrepHits
from prune.env import locate
from prune.scan import scan
from prune.sources import DiskSources

needs_gnu_grep = pytest.mark.skipif(not is_gnu("grep"),
                                    reason="needs GNU grep (busybox/BSD grep: the Python fallback runs)")

_FILES: dict[str, str | bytes] = {
    "pkg/__init__.py": "from pkg import tests\n",
    "pkg/plain.py": "import os\n",
    "pkg/mentions.py": "# the tests live elsewhere\nimport os\n",
    "pkg/binary.py": b"\x00\x01import pkg.testing\n",
    "pkg/docs.txt": "tests\n",
    "pkg/tests/__init__.py": "",
    "pkg/tests/test_a.py": "import pkg\n",
}


def _tree(tmp_path: Path) -> Path:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", _FILES)
    os.symlink("mentions.py", root / SITE / "pkg" / "linked.py")
    return root


def _rules_out(hits: GrepHits, path: str, needles: tuple[bytes, ...]) -> bool:
    return not hits.possible((path,), needles)


@needs_gnu_grep
def test_grep_rules_out_only_files_without_the_words(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    hits = GrepHits(str(root), (SITE,), [b"test"])
    p = f"{SITE}/pkg/"
    assert _rules_out(hits, p + "plain.py", (b"tests",))
    assert _rules_out(hits, p + "plain.py", (b"test", b"testing"))
    assert _rules_out(hits, p + "tests/test_a.py", (b"tests",))  # the contents count, not the name
    for name in ("__init__.py", "mentions.py", "binary.py"):
        assert not _rules_out(hits, p + name, (b"tests",)), name
    # a needle grep did not look for, a file that is not Python, a path outside the sites
    assert not _rules_out(hits, p + "plain.py", (b"docs",))
    assert not _rules_out(hits, p + "docs.txt", (b"tests",))
    assert not _rules_out(hits, "bin/tool.py", (b"tests",))
    # the bulk question answers as the single one, and never rules out an unknown path
    paths = [p + n for n in ("plain.py", "mentions.py", "docs.txt", "tests/test_a.py")] + ["bin/tool.py"]
    for needles in ((b"tests",), (b"docs",)):
        assert hits.possible(paths, needles) == [q for q in paths if not _rules_out(hits, q, needles)]
    assert hits.possible(paths, (b"tests",), unknown={p + "plain.py"}) == [
        q for q in paths if q == p + "plain.py" or not _rules_out(hits, q, (b"tests",))]


def test_without_grep_nothing_is_ruled_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "grep" else real_which(name))
    hits = GrepHits(str(root), (SITE,), [b"test"])
    assert not _rules_out(hits, f"{SITE}/pkg/plain.py", (b"tests",))


@needs_gnu_grep
def test_an_unfinished_grep_is_stopped(tmp_path: Path) -> None:
    hits = GrepHits(str(_tree(tmp_path)), (SITE,), [b"test"])
    hits.close()
    assert not _rules_out(hits, f"{SITE}/pkg/plain.py", (b"tests",))


@needs_gnu_grep
@pytest.mark.parametrize("needles", [(b"tests",), (b"testing",), (b"test", b"docs"), (b"os",)])
def test_prefetched_sources_answer_as_reading_every_file(tmp_path: Path, needles: tuple[bytes, ...]) -> None:
    # With the prefilter or without, contains() says the same for every Python file,
    # a symlinked one included (grep does not follow links inside the tree).
    root = _tree(tmp_path)
    inv = scan(locate(root))
    plain = DiskSources(root, inv)
    fetched = DiskSources(root, inv)
    fetched.hint([b"tests", b"test"])
    fetched.prefetch()
    assert fetched._grep is not None
    for fe in inv.files:
        if fe.path.endswith(".py"):
            assert fetched.contains(fe.path, needles) == plain.contains(fe.path, needles), fe.path
    py = [fe.path for fe in inv.files if fe.path.endswith(".py")]
    assert {p for p in py if plain.contains(p, needles)} <= set(fetched.may_contain(py, needles))
    assert plain.contains(f"{SITE}/pkg/linked.py", (b"tests",)) is False  # a comment, not an import


@needs_gnu_grep
def test_files_in_skipped_directories_are_never_ruled_out(tmp_path: Path) -> None:
    """grep does not read directories it skips (test code, for the evidence locators), so it
    must not rule their files out: it knows nothing of them."""
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/a.py": "import os\n", "pkg/b.py": "P = __file__\n",
                           "pkg/tests/c.py": "import os\n", "pkg/tests/d.py": "P = __file__\n"})
    hits = GrepHits(str(root), [SITE], [b"__file__"], skip_dirs=["tests"])
    paths = [f"{SITE}/pkg/{n}" for n in ("a.py", "b.py", "tests/c.py", "tests/d.py")]
    assert hits.possible(paths, (b"__file__",)) == paths[1:]
