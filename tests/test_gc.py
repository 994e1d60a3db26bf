"""The collector is paused for bulk work and always handed back as it was found."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from synth import add_dist, make_venv_tree

from prune._gc import paused_gc
from prune.env import locate
from prune.plan import build_plan
from prune.profiles import load_profile
from prune.report import render
from prune.scan import scan


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_restored_after_nesting_and_errors() -> None:
    gc.enable()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the inner block must not turn the collector back on"
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with paused_gc():
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_disabled_on_purpose_stays_disabled() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_scan_and_render_pause_the_collector_and_give_it_back(tmp_path: Path) -> None:
    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": "", "pkg/tests/test_x.py": ""})
    env = locate(root)
    profile = load_profile("standard")
    collections: list[str] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    threshold = gc.get_threshold()
    gc.enable()
    gc.callbacks.append(record)
    gc.set_threshold(1)  # with the collector running, every allocation would collect
    try:
        inv = scan(env)
        with paused_gc():  # as the pipeline plans: the planner itself leaves the collector alone
            plan = build_plan(inv, profile)
        text = render(plan, "json")
        assert gc.isenabled()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(record)
    # Entering each call allocates a frame or two before the pause (each a collection at
    # this threshold); without the pauses, this small plan makes about ten thousand.
    assert len(collections) <= 50, len(collections)
    assert plan.actions and "pkg/tests" in text


def test_the_pipeline_plans_with_the_collector_paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The planner leaves the collector alone; the pipeline pauses it around the plan, and
    # hands the planner its disk reader.
    import prune.pipeline as pipeline
    from prune.pipeline import job
    from prune.sources import DiskSources

    root = make_venv_tree(tmp_path / "v")
    add_dist(root, "pkg", {"pkg/__init__.py": "", "pkg/tests/test_x.py": ""})
    seen: list[tuple[bool, bool]] = []
    real = job.build_plan

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append((gc.isenabled(), isinstance(kwargs.get("sources"), DiskSources)))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(job, "build_plan", spy)
    gc.enable()
    outcome = pipeline.run(pipeline.PruneRequest(str(root), dry_run=True, measure_startup=False))
    assert seen == [(False, True)] and gc.isenabled()
    assert outcome.plan.actions
