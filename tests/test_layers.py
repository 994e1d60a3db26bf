"""The layer rule (issue 14, item 4): the mount holding a path, and the report's one line."""

from __future__ import annotations

import json
from pathlib import Path

from prune import layers
from prune.report import Extras

# Shaped as Docker's overlay2 root of a build container looks from inside it, plus a bind
# mount, a tmpfs and a mount point with an escaped space.
MOUNTINFO = """\
616 515 0:52 / / rw,relatime master:283 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:\
/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work
617 616 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
620 616 254:1 /srv/data /data rw,relatime - ext4 /dev/vda1 rw
621 620 0:60 / /data/tmp rw,relatime - tmpfs tmpfs rw
622 616 254:1 /x /my\\040mount rw,relatime - xfs /dev/vdb rw
"""


def _mountinfo(tmp_path: Path) -> str:
    p = tmp_path / "mountinfo"
    p.write_text(MOUNTINFO, encoding="utf-8")
    return str(p)


def test_filesystem_of_the_longest_mount_prefix(tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path)
    assert layers.filesystem_type("/opt/venv", mi) == "overlay"
    assert layers.filesystem_type("/data", mi) == "ext4"
    assert layers.filesystem_type("/data/venv", mi) == "ext4"
    assert layers.filesystem_type("/data/tmp/venv", mi) == "tmpfs"
    assert layers.filesystem_type("/datax/venv", mi) == "overlay"  # a prefix of the name is not a parent
    assert layers.filesystem_type("/my mount/venv", mi) == "xfs"


def test_note_only_on_overlay(tmp_path: Path) -> None:
    mi = _mountinfo(tmp_path)
    assert layers.layer_note("/opt/venv", mi) == layers.LAYER_RULE
    assert layers.layer_note("/data/venv", mi) is None
    assert layers.layer_note("/opt/venv", str(tmp_path / "absent")) is None
    assert "\n" not in layers.LAYER_RULE
    assert "COPY --from=builder" in layers.LAYER_RULE and "same RUN" in layers.LAYER_RULE


def test_this_machine_agrees_with_stat(tmp_path: Path) -> None:
    # The real mountinfo: the root's type is one this machine's mounts list.
    fstype = layers.filesystem_type(tmp_path)
    types = {line.split(" - ")[1].split()[0] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    assert fstype in types


def test_report_says_the_rule_in_text_json_and_markdown(fresh_venv) -> None:  # type: ignore[no-untyped-def]
    from prune import build_plan, load_profile, render, scan
    from prune.env import locate
    from prune.plan import PlanOptions

    plan = build_plan(scan(locate(str(fresh_venv()))), load_profile("standard"), PlanOptions())
    with_note = Extras(layer_note=layers.LAYER_RULE)
    text = render(plan, "text", with_note)
    assert [ln for ln in text.splitlines() if "overlayfs" in ln] == [f"  layers: {layers.LAYER_RULE}"]
    assert json.loads(render(plan, "json", with_note))["layer_rule"] == layers.LAYER_RULE
    assert layers.LAYER_RULE in render(plan, "markdown", with_note)
    assert "overlayfs" not in render(plan, "text", Extras())
    assert json.loads(render(plan, "json", Extras()))["layer_rule"] is None
