"""Honest words on the pages: a withdrawn compose says so; an image released over a waived
blocking failure says so (test_site_browser.py checks that checksums and timestamps do
not wrap mid-string)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pipeline.core.models.manifests import VerdictManifest
from pipeline.core.pages import Urls
from tests.sitekit import History, Page, day

MakeHistory = Callable[..., History]


def test_withdrawn_and_waived_are_said_on_the_pages(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    h = make_history()
    waived = h.compose(day(-1), fail=["format"])
    h.record(
        [
            VerdictManifest(
                product="atomic-host",
                created=day(-1, 6),
                compose_id=waived.compose_id,
                number=1,
                action="waive",
                test="format",
                reason="qemu-img of the builder is too old",
                operator="dusty",
            )
        ],
        "verdict: waive",
    )
    h.cut(day(0, 12))
    bad = h.compose(day(13))
    h.cut(day(14, 12))
    h.revoke("2018-05-15", "the image does not boot on EC2", day(15))
    out = tmp_path / "out"
    h.build(out, day(15, 12))
    urls = Urls("atomic-host")
    compose = Page(out / urls.compose(bad.compose_id)).text
    assert "passed, shipped as release 2018-05-15; withdrawn by dusty: the image does not boot" in (
        compose
    )
    download = Page(out / urls.download()).text
    assert "Released with a waived blocking failure." in download
    assert re.search(
        r"images: format failed on x86_64 \S+ \(exit code 1\); waived by dusty: "
        r"qemu-img of the builder is too old",
        download,
    ), download
