"""The demo's nightly OSTree commits carry that night's package list, as rpm-ostree's do."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pipeline.demo.ostree import DemoOstree
from pipeline.demo.packages import write_rpms_json


def test_a_night_s_commits_list_the_night_s_rpms(tmp_path: Path) -> None:
    demo = DemoOstree(tmp_path / "ostree")
    cid = "Fedora-Atomic-28-20180510.0"
    when = datetime(2018, 5, 10, 3, tzinfo=UTC)
    trees = demo.night(cid, "28", when, ("x86_64", "aarch64"), night=30)
    rpms_json = write_rpms_json(tmp_path / "compose", cid, night=30)
    listed = json.loads(rpms_json.read_text())["payload"]["rpms"]["AtomicHost"]
    for tree in trees:
        binaries = sorted(
            nevra
            for rpms in listed[tree.arch].values()
            for nevra, meta in rpms.items()
            if meta["category"] == "binary"
        )
        assert demo.compose.package_list(tree.commit) == binaries
    (plain,) = demo.night("Fedora-Atomic-28-20180511.0", "28", when, ("x86_64",))
    assert demo.compose.package_list(plain.commit) is None
