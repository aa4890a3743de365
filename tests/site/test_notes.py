"""Release notes on the site: the download page's "Changes since", the notes page per
release, the changes JSON the stream links, and the Atom entry. Real log, real Pelican build,
composes with an rpms.json written by productmd (the demo's package lists)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sitekit import History, Page, day, internal_targets

MakeHistory = Callable[..., History]
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def notes_site(make_history: MakeHistory, tmp_path: Path) -> tuple[History, Path]:
    """Release 2018-05-01 from night 0, release 2018-05-15 from night 30 (kernel 4.16.8)."""
    h = make_history()
    h.compose(day(-1), night=0)
    h.cut(day(0, 12))
    h.compose(day(13), night=30)
    h.cut(day(14, 12))
    out = tmp_path / "out"
    h.build(out, day(15, 12))
    return h, out


def test_download_page_shows_changes_since_the_previous_release(
    notes_site: tuple[History, Path],
) -> None:
    _, out = notes_site
    text = Page(out / "index.html").text
    assert "Changes since 2018-05-01" in text
    # counted per binary rpm: toolbox joined at night 24; docker-latest stays until night 40
    assert "upgraded, 1 added packages." in text
    html = (out / "index.html").read_text()
    section = html[
        html.index('id="changes"') : html.index("</section>", html.index('id="changes"'))
    ]
    # notable source packages first, outside <details>: kernel (period 6: 3 -> 8), the
    # OSTree stack, the container runtime (docker once, although only some binaries count)
    before, details = section.split("<details>")
    notable = re.findall(r"<li>([^<]+)</li>", before)
    assert notable[:3] == [
        "kernel 4.16.3-301.fc28 \u2192 4.16.8-301.fc28",
        "ostree 2018.5-1.fc28 \u2192 2018.7-1.fc28",
        "rpm-ostree 2018.5-1.fc28 \u2192 2018.8-1.fc28",
    ]
    assert "docker 1.13.1-51.fc28 \u2192 1.13.3-51.fc28" in notable
    assert "docker" not in details and "kernel" not in details
    # the rest collapsed, with the new version
    assert "toolbox 0.0.1-1.fc28 (new)" in details
    assert "bash 4.4.20-2.fc28" in details
    assert "dracut 048-8.fc28" in details  # zero-padded versions stay padded in the demo


def test_notes_page_has_every_binary_package(notes_site: tuple[History, Path]) -> None:
    _, out = notes_site
    html = (out / "atomic-host/releases/2018-05-15/notes.html").read_text()
    row = "<td>kernel-core</td><td>upgraded</td><td>4.16.3-301.fc28</td><td>4.16.8-301.fc28</td>"
    assert row in html
    details = html[html.index("<details>") : html.index("</details>")]
    assert "<td>toolbox</td><td>added</td><td></td><td>0.0.1-1.fc28</td>" in details
    assert "<td>kernel</td>" not in details


def test_notes_page_json_stream_and_feed(notes_site: tuple[History, Path]) -> None:
    _, out = notes_site
    notes = out / "atomic-host/releases/2018-05-15/notes.html"
    text = Page(notes).text
    assert "compared with release 2018-05-01" in text
    assert "Changes since 2018-05-01" in text
    archive = (out / "atomic-host/releases/index.html").read_text()
    assert 'href="../../atomic-host/releases/2018-05-15/notes.html"' in archive
    # the first release has nothing to compare with: no notes page
    assert not (out / "atomic-host/releases/2018-05-01/notes.html").exists()

    stream = json.loads((out / "streams/atomic-host.json").read_text())
    changes_url = stream["release"]["changes"]
    assert changes_url.endswith("atomic-host/releases/2018-05-15/changes.json")
    doc = json.loads((out / "atomic-host/releases/2018-05-15/changes.json").read_text())
    assert (doc["release"], doc["previous-release"], doc["packages_known"]) == (
        "2018-05-15",
        "2018-05-01",
        True,
    )
    kernel = next(p for p in doc["packages"] if p["name"] == "kernel")
    assert kernel == {
        "name": "kernel",
        "kind": "upgraded",
        "arches": ["aarch64", "ppc64le", "x86_64"],
        "old": "4.16.3-301.fc28",
        "new": "4.16.8-301.fc28",
        "source": "kernel",
        "notable": True,
    }

    feed = ET.parse(out / "feeds/atomic-host.atom").getroot()
    newest = feed.findall(f"{ATOM}entry")[0]
    summary = newest.findtext(f"{ATOM}summary") or ""
    assert "Since 2018-05-01:" in summary and "kernel 4.16.8-301.fc28" in summary
    assert "releases/2018-05-15/notes.html" in summary
    # every link of the new pages resolves
    assert internal_targets(out) == []


def test_unknown_package_list_is_said_plainly(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history()
    h.compose(day(-1))  # no rpms.json
    h.cut(day(0, 12))
    h.compose(day(13), night=30)
    h.cut(day(14, 12))
    out = tmp_path / "out"
    h.build(out, day(15, 12))
    text = Page(out / "index.html").text
    assert "Changes since 2018-05-01" in text
    assert "The package list is unknown" in text
    doc = json.loads((out / "atomic-host/releases/2018-05-15/changes.json").read_text())
    assert doc["packages_known"] is False and doc["packages"] == []
