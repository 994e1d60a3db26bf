"""The library's bad input (a tester's findings): a wrong type is one UsageError (exit code 2)
raised before anything is read or run, never a bare TypeError, and never a string taken one
character at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synth import add_dist, make_venv_tree

from prune import PlanOptions, PruneRequest, UsageError, build_plan, load_profile, locate, run, scan


@pytest.mark.parametrize("request_kw, needle", [
    ({"checks": "touch {marker}"}, "checks=('touch"),
    ({"traces": "trace.json"}, "traces=('trace.json',)"),
    ({"path": 5}, "path"),
    ({"profile": None}, "profile"),
    ({"options": PlanOptions(keep="certifi/")}, "keep=('certifi/',)"),  # type: ignore[arg-type]
    ({"options": PlanOptions(remove_dists=["six", 3])}, "remove_dists"),  # type: ignore[list-item]
    # The fields the pipeline took over from the command line (issue 18): a wrong type was a
    # TypeError raised by the size gate after the prune had committed.
    ({"max_size": "500MB"}, "max_size"),
    ({"max_size": -1}, "max_size"),
    ({"jobs": "2"}, "jobs"),
    ({"optimize": "1"}, "optimize"),
    ({"timeout": "60"}, "timeout"),
    ({"timeout": 0}, "--timeout"),
    ({"dry_run": "no"}, "dry_run"),
    ({"strip": "yes"}, "strip"),
    ({"output": 5}, "output"),
    ({"requirements": ["requirements.txt"]}, "requirements"),
])
def test_a_wrong_type_is_one_usage_error_and_nothing_runs(tmp_path: Path, request_kw: dict[str, Any],
                                                         needle: str) -> None:
    env = make_venv_tree(tmp_path / "env")
    add_dist(env, "six", {"six.py": "X = 1\n"})
    cache = next(env.rglob("six.py")).parent / "__pycache__" / "six.cpython-311.pyc"
    cache.parent.mkdir()
    cache.write_bytes(b"a cache every profile removes")
    marker = tmp_path / "ran"
    kw: dict[str, Any] = {"path": str(env), "dry_run": False}
    kw.update({k: v.format(marker=marker) if isinstance(v, str) else v for k, v in request_kw.items()})
    with pytest.raises(UsageError) as err:
        run(PruneRequest(**kw))
    assert needle in str(err.value) and err.value.exit_code == 2
    assert not marker.exists(), "a check ran"
    assert (env / "lib").exists() and list(env.rglob("six.py"))
    assert cache.exists(), "the prune ran"


def test_build_plan_refuses_a_bare_string_of_patterns(tmp_path: Path) -> None:
    env = make_venv_tree(tmp_path / "env")
    add_dist(env, "pkg", {"pkg/__init__.py": "", "pkg/c": "data"})
    with pytest.raises(UsageError, match=r"keep=\('c',\)"):
        build_plan(scan(locate(str(env))), load_profile("standard"), PlanOptions(keep="c"))  # type: ignore[arg-type]
