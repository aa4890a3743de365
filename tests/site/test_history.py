"""The history picture on the download page and the nightly results page: one linked mark per
night for 12 weeks, release days and the base switch, within the page-weight budget."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sitekit import History, Page, internal_targets, scenario_busy

MakeHistory = Callable[..., History]


@pytest.fixture
def busy_site(make_history: MakeHistory, tmp_path: Path) -> Path:
    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario_busy(h))
    return out


def test_download_page_with_history_and_notes_weighs_at_most_30_kb(busy_site: Path) -> None:
    html = (busy_site / "index.html").read_bytes()
    css = (busy_site / "theme/css/site.css").read_bytes()
    assert b'id="history"' in html and b'id="changes"' in html
    weight = len(html) + len(css)
    assert weight <= 30 * 1024, f"{weight} bytes"


def _svg(page: Path) -> ET.Element:
    html = page.read_text()
    return ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])


def _marks(svg: ET.Element) -> list[tuple[str, str, str, str | None]]:
    """(x, status, title, link) of every night's mark, in document order."""
    out = []
    for group in svg.iter("g"):
        status = group.get("class", "").removeprefix("m s-")
        for child in group:
            rect = child if child.tag == "rect" else child.find("rect")
            assert rect is not None
            title = child.findtext("title") or ""
            out.append((rect.get("x", ""), status, title, child.get("href")))
    return out


def test_one_mark_per_night_release_days_and_links(busy_site: Path) -> None:
    # the download page: a titled mark per night; the picture links the nightly results
    page = busy_site / "atomic-host/index.html"
    marks = _marks(_svg(page))
    assert len(marks) == 84  # 12 weeks, a compose every night
    assert [int(x) for x, *_ in marks] == [n * 8 for n in range(84)]
    assert marks[-1] == (str(83 * 8), "no-image", "2018-05-15: no image", None)
    assert (str(68 * 8), "passed", "2018-04-30: passed", None) in marks
    assert Page(page).href("Every night, with links to its compose") == (
        "../atomic-host/dashboard/index.html"
    )
    events = [(r.get("class"), r.findtext("title")) for r in _svg(page).iter("rect")]
    assert ("ev s-released", "Release 2018-05-15: released Fedora-Atomic-28-20180514.0") in events
    assert ("ev s-released", "Release 2018-05-01: released Fedora-Atomic-28-20180430.0") in events
    text = Page(page).text
    assert "Last 12 weeks, one mark per night: 2 passed, 82 no image." in text
    assert "Release days: 2 released." in text
    # the nightly results page: every mark links its compose page
    marks = _marks(_svg(busy_site / "atomic-host/dashboard/index.html"))
    assert len(marks) == 84
    assert marks[-1] == (
        str(83 * 8),
        "no-image",
        "Fedora-Atomic-28-20180515.0: no image",
        "../../atomic-host/composes/Fedora-Atomic-28-20180515.0.html",
    )
    assert all(href and href.endswith(".html") for *_, href in marks)
    html = (busy_site / "atomic-host/dashboard/index.html").read_text()
    assert "<script" not in html[html.index("<svg") : html.index("</svg>")]
    assert internal_targets(busy_site) == []
