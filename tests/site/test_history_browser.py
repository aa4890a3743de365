"""The history picture and the results table in a real browser (Debian's chromium through
Playwright): light and dark screenshots, axe, marks that link their compose pages, compose
ids on one line at 1280 px, no horizontal scroll at 375 px.

A site of its own (every night of 12 weeks has a compose: tests/sitekit.py scenario_busy),
so the picture is full; the other browser tests are in test_site_browser.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from pipeline.core.models.common import RoleName
from pipeline.log.sslib import CryptoSigner
from tests.browser import Scenario, Sites, Watch, serve
from tests.site.test_site_browser import CHROMIUM_ARGS, SCREENSHOTS, WIDE_ELEMENTS, Tab
from tests.sitekit import scenario_busy

DOWNLOAD, DASHBOARD = "index.html", "atomic-host/dashboard/index.html"
PASSED = "Fedora-Atomic-28-20180514.0"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("the browser tests need chromium: apt-get install chromium", pytrace=False)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, role_signers: dict[RoleName, CryptoSigner]
) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("history-sites")
    with serve(root) as url:
        yield Sites(root, url, role_signers, {"busy": Scenario(scenario_busy)})


@pytest.fixture
def tab(
    browser: Browser, sites: Sites, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Tab]]:
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Tab:
        context = browser.new_context(**options)
        contexts.append(context)
        watch = Watch(sites.server.rstrip("/"))
        watch.attach(context)
        return Tab(context, context.new_page(), watch, request.node.name)

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_history_picture_screenshots_and_axe(
    tab: Callable[..., Tab], sites: Sites, scheme: str
) -> None:
    """Both pages' pictures, screenshotted in the scheme; axe on the nightly results page
    (its marks are links; the download page's picture is checked by test_site_browser's axe
    test, which covers the download page in both schemes)."""
    t = tab(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, rel in (("download", DOWNLOAD), ("dashboard", DASHBOARD)):
        page = t.open(sites["busy"].page(rel))
        figure = page.locator("figure.hp")
        figure.screenshot(path=SCREENSHOTS / f"history-picture-{label}-{scheme}.png")
        t.shot(label)
        box = figure.locator("svg").bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 30  # drawn
        # marks are coloured by status, in either scheme, and differ from the track
        fills = page.evaluate(
            """() => ['g.s-passed rect', 'g.s-no-image rect', 'rect.track'].map(
                 (s) => getComputedStyle(document.querySelector('figure.hp ' + s)).fill)"""
        )
        assert len(set(fills)) == 3, (label, fills)
    results = Axe().run(page).response
    assert any(p["id"] == "color-contrast" for p in results["passes"])  # axe did look
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in bad]
    t.assert_clean()


def test_marks_link_their_compose_pages(tab: Callable[..., Tab], sites: Sites) -> None:
    t = tab(viewport={"width": 1280, "height": 900})
    page = t.open(sites["busy"].page(DASHBOARD))
    marks = page.locator("figure.hp a")
    assert marks.count() == 84
    mark = page.locator(f'figure.hp a:has(title:text-is("{PASSED}: passed"))')
    mark.click()
    page.wait_for_url(f"**/atomic-host/composes/{PASSED}.html")
    assert PASSED in page.locator("h1").inner_text()
    t.assert_clean()


def test_compose_ids_stay_on_one_line_at_1280px(tab: Callable[..., Tab], sites: Sites) -> None:
    t = tab(viewport={"width": 1280, "height": 900})
    page = t.open(sites["busy"].page(DASHBOARD))
    lines = page.evaluate(
        """() => [...document.querySelectorAll('table.history a.cid')].map(
             (a) => [a.textContent, a.getClientRects().length])"""
    )
    assert len(lines) == 85  # the front page: the two newest chunks of 50
    wrapped = [text for text, rects in lines if rects != 1]
    assert wrapped == []
    t.shot()
    t.assert_clean()


@pytest.mark.parametrize("rel", [DOWNLOAD, DASHBOARD])
def test_no_horizontal_scroll_at_375px(tab: Callable[..., Tab], sites: Sites, rel: str) -> None:
    t = tab(viewport={"width": 375, "height": 812})
    page = t.open(sites["busy"].page(rel))
    t.shot()
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    wide = page.evaluate(WIDE_ELEMENTS)
    assert scroll <= inner, f"{rel} is {scroll}px wide in a {inner}px viewport: {wide}"
    t.assert_clean()
