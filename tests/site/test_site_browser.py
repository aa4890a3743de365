"""The download site in a real browser: what a user sees, clicks and downloads.

Playwright drives Debian's chromium (headless, no network) against sites built from real
signed logs (tests/browser.py, tests/sitekit.py) and served on 127.0.0.1 together with the
image files they offer. Every test watches its pages for console errors, uncaught exceptions,
CSP violations and failed requests, and saves a full-page screenshot of each state under
``$FORTNIGHT_ARTIFACTS/screenshots`` (default: ``test-artifacts/screenshots`` in the repository).

What the HTML says without a browser (texts, links, files, escaping) is in test_site.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from pipeline.core.models.common import RoleName
from pipeline.log.sslib import CryptoSigner
from tests.browser import Scenario, Sites, Watch, serve, slug
from tests.conftest import ROOT
from tests.sitekit import (
    History,
    day,
    scenario_current,
    scenario_none,
    scenario_stale,
    scenario_withdrawn,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("FORTNIGHT_ARTIFACTS", ROOT / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"

RELEASE = "2018-05-15"
COMPOSE = "Fedora-Atomic-28-20180514.0"
PREVIOUS = "2018-05-01"
PREVIOUS_COMPOSE = "Fedora-Atomic-28-20180430.0"
TITLE = "Fedora Atomic Host, based on Fedora 28"
#: The current release's x86_64 AMIs: eu-west-1's is private and must not be offered.
AMIS = {
    "us-east-1": "ami-0a1b2c3d4e5f60718",
    "eu-west-1": "ami-0badc0ffee0ddf00d",
    "ap-northeast-1": "ami-0123456789abcdef0",
    "sa-east-1": "ami-0fedcba9876543210",
}
PRIVATE = "eu-west-1"
#: What a user reads for each public region (botocore's names).
REGION_NAMES = {
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "sa-east-1": "South America (Sao Paulo)",
    "us-east-1": "US East (N. Virginia)",
}
LAUNCH = "https://console.aws.amazon.com/ec2/v2/home?region={region}#LaunchInstanceWizard:ami={ami}"


def scenario_current_regions(h: History) -> datetime:
    """scenario_current, with AMIs in three public regions and one private one."""
    h.compose(day(-1))
    h.cut(day(0, 12))
    good = h.compose(day(13))
    h.amis(good, AMIS, day(13, 6), private=PRIVATE)
    h.cut(day(14, 12))
    return day(15, 12)


SCENARIOS = {
    "current": Scenario(scenario_current_regions),
    "stale": Scenario(scenario_stale),
    "withdrawn": Scenario(scenario_withdrawn),
    "none": Scenario(scenario_none),
    "prerelease": Scenario(scenario_current, prerelease="Beta"),
}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, one for this module (closed after it, so that later
    tests run in a process without its threads: the site's workers fork only then)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "the browser tests need chromium: install Debian's chromium: apt-get install chromium",
            pytrace=False,
        )
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, role_signers: dict[RoleName, CryptoSigner]
) -> Iterator[Sites]:
    """Every scenario's site (built on first use), served with its image files on loopback."""
    root = tmp_path_factory.mktemp("browser-sites")
    with serve(root) as url:
        yield Sites(root, url, role_signers, SCENARIOS)


@dataclass
class Tab:
    """One browser context and its page, watched; screenshots named after the test."""

    context: BrowserContext
    page: Page
    watch: Watch
    test_name: str

    def open(self, url: str) -> Page:
        """Go to ``url`` and check the server answered 200."""
        response = self.page.goto(url)
        assert response is not None and response.status == 200, f"{url}: {response}"
        return self.page

    def shot(self, label: str = "") -> Path:
        """A full-page screenshot of the current state, saved as a test artifact."""
        name = slug(f"{self.test_name}-{label}" if label else self.test_name)
        path = SCREENSHOTS / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path, full_page=True)
        return path

    def assert_clean(self) -> None:
        """No console error, uncaught exception, CSP violation or failed request so far."""
        problems = self.watch.take()
        assert problems == [], "the browser reported:\n" + "\n".join(problems)


@pytest.fixture
def tab(
    browser: Browser, sites: Sites, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Tab]]:
    """Factory: a new watched context (``**options`` for Playwright's new_context) and page."""
    contexts: list[BrowserContext] = []
    origin = sites.server.rstrip("/")

    def make(**options: Any) -> Tab:
        context = browser.new_context(**options)
        contexts.append(context)
        watch = Watch(origin)
        watch.attach(context)
        return Tab(context, context.new_page(), watch, request.node.name)

    yield make
    for context in contexts:
        context.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_and_check(page: Page, row_index: int = 0) -> str:
    """Click the download link of a row; the file's sha256 is the one shown beside it."""
    row = page.locator("table.downloads tr[data-type]").nth(row_index)
    link = row.locator("a.dl")
    shown = row.locator("code.sha").inner_text().strip()
    filename = row.locator("span.file").inner_text().strip()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.failure() is None
    assert download.url == link.get_attribute("href")
    assert download.suggested_filename == filename
    assert re.fullmatch(r"[0-9a-f]{64}", shown), shown
    assert sha256(download.path()) == shown, f"{filename}: the file is not what the page says"
    return shown


# --- 1. the current release -----------------------------------------------------------------------


def test_page_shows_the_current_release(tab: Callable[..., Tab], sites: Sites) -> None:
    site = sites["current"]
    t = tab()
    page = t.open(site.page())
    expect(page).to_have_title(TITLE)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Fedora Atomic Host")
    expect(heading.locator("small")).to_have_text("based on Fedora 28")
    lede = page.locator("p.lede")
    expect(lede).to_contain_text(f"Release {RELEASE}, released {RELEASE} (1 day ago)")
    expect(lede).to_contain_text(f"built from compose {COMPOSE}")
    expect(page.locator("[data-banner]")).to_have_count(0)
    t.shot()
    # The compose link leads to the compose's page.
    lede.get_by_role("link", name=COMPOSE).click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_contain_text(COMPOSE)
    expect(page.locator("p.lede")).to_contain_text(f"shipped as release {RELEASE}")
    t.assert_clean()


# --- 2. downloads ---------------------------------------------------------------------------------


def test_every_download_is_the_file_whose_checksum_is_shown(
    tab: Callable[..., Tab], sites: Sites
) -> None:
    site = sites["current"]
    t = tab()
    page = t.open(site.page())
    rows = page.locator("table.downloads tr[data-type]")
    compose = site.history.composes[COMPOSE]
    expect(rows).to_have_count(len(compose.images))
    shown = {download_and_check(page, n) for n in range(rows.count())}
    assert shown == {img.checksums.sha256 for img in compose.images}
    # Each Vagrant box is followed by the command that adds it, naming the same URL.
    boxes = page.locator('table.downloads tr[data-type^="vagrant-"]')
    expect(boxes).to_have_count(2)
    for box in boxes.all():
        href = box.locator("a.dl").get_attribute("href")
        hint = box.locator("xpath=following-sibling::tr[1]").locator("code.hint")
        expect(hint).to_have_text(f"vagrant box add --name {COMPOSE} {href}")
    # SHA256SUMS, linked above the tables, names every file with the same checksum.
    with page.expect_download() as info:
        page.locator("p.sums").get_by_role("link", name="SHA256SUMS").click()
    sums = Path(info.value.path()).read_text().splitlines()
    assert sorted(sums) == sorted(f"{i.checksums.sha256}  {i.filename}" for i in compose.images)
    t.shot()
    t.assert_clean()


def test_latest_address_downloads_the_current_file(tab: Callable[..., Tab], sites: Sites) -> None:
    site = sites["current"]
    compose = site.history.composes[COMPOSE]
    qcow2 = next(i for i in compose.images if i.arch == "x86_64" and i.type == "qcow2")
    t = tab()
    with t.page.expect_download() as info:
        t.page.goto(site.page("latest/atomic-host/x86_64/qcow2/index.html"))
    download = info.value
    assert download.suggested_filename == qcow2.filename
    assert sha256(download.path()) == qcow2.checksums.sha256
    t.assert_clean()


# --- 3. EC2 launch links --------------------------------------------------------------------------


def test_launch_links_per_region(tab: Callable[..., Tab], sites: Sites) -> None:
    t = tab()
    page = t.open(sites["current"].page())
    tables = page.locator("table.amis")
    expect(tables).to_have_count(1)  # only x86_64 has AMIs
    table = page.locator("#arch-x86_64 table.amis")
    expect(table.locator("caption")).to_have_text("Amazon EC2 (x86_64)")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(len(REGION_NAMES))  # the private AMI is not offered
    for n, (region, name) in enumerate(sorted(REGION_NAMES.items())):
        row = rows.nth(n)
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(f"{name} {region}")
        expect(cells.nth(0).locator("small")).to_have_text(region)
        expect(cells.nth(1)).to_have_text(AMIS[region])
        launch = row.get_by_role("link", name=f"Launch {AMIS[region]} in {region}")
        expect(launch).to_have_text("Launch")
        expect(launch).to_have_attribute("href", LAUNCH.format(region=region, ami=AMIS[region]))
    expect(page.locator("body")).not_to_contain_text(AMIS[PRIVATE])
    t.shot()
    t.assert_clean()


# --- 4. banners and their links -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a banner link leads: an h1, and optionally a row (by id) that must be shown."""

    heading: str
    row: str | None = None
    row_text: str = ""


@dataclass(frozen=True)
class BannerCase:
    site: str
    kind: str
    title: str
    links: dict[str, Target | str]  # label: internal target, or the exact external href
    fallback: str | None  # the compose whose images the page still offers


BANNERS = [
    BannerCase(
        "stale",
        "stale",
        "This image is stale",
        {
            "Failure bug local1": Target("local1"),
            f"Previous release {PREVIOUS}": Target(
                "release archive", f"release-{PREVIOUS}", "(current)"
            ),
            "Nightly test results": Target("nightly results"),
        },
        PREVIOUS_COMPOSE,
    ),
    BannerCase(
        "withdrawn",
        "withdrawn",
        f"Release {RELEASE} was withdrawn",
        {
            f"Withdrawn release {RELEASE}": Target(
                "release archive", f"release-{RELEASE}", "withdrawn"
            ),
            "Why": "https://bugzilla.example/1",
        },
        PREVIOUS_COMPOSE,
    ),
    BannerCase(
        "none",
        "none",
        "No image has been released yet",
        {
            "Failure bug local1": Target("local1"),
            "Nightly test results": Target("nightly results"),
        },
        None,
    ),
    BannerCase("prerelease", "prerelease", "Based on a prerelease: Fedora 28 Beta", {}, COMPOSE),
]


@pytest.mark.parametrize("case", BANNERS, ids=[c.kind for c in BANNERS])
def test_banner_and_its_links(tab: Callable[..., Tab], sites: Sites, case: BannerCase) -> None:
    site = sites[case.site]
    t = tab()
    page = t.open(site.page())
    banners = page.locator("[data-banner]")
    expect(banners).to_have_count(1)
    banner = page.locator(f'[data-banner="{case.kind}"]')
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading")).to_have_text(case.title)
    t.shot()
    links = banner.get_by_role("link")
    expect(links).to_have_count(len(case.links))
    for label, target in case.links.items():
        link = banner.get_by_role("link", name=label, exact=True)
        href = link.get_attribute("href") or ""
        if isinstance(target, str):  # external: checked, never followed
            assert href == target
            continue
        assert not re.match(r"^[a-z]+:", href), f"{label}: {href} should stay inside the site"
        with page.expect_navigation() as nav:
            link.click()
        response = nav.value
        assert response is not None and response.status == 200, f"{label}: {response}"
        expect(page.get_by_role("heading", level=1)).to_contain_text(target.heading)
        if target.row:
            assert urldefrag(page.url).fragment == target.row
            row = page.locator(f"#{target.row}")
            expect(row).to_be_in_viewport()
            expect(row).to_contain_text(target.row_text)
        t.open(site.page())
    if case.fallback:  # the page still offers an image, and its download works
        expect(page.locator("p.lede")).to_contain_text(case.fallback)
        download_and_check(page)
    else:
        expect(page.locator("table.downloads")).to_have_count(0)
    t.assert_clean()


def test_bug_page_links_the_failed_composes(tab: Callable[..., Tab], sites: Sites) -> None:
    site = sites["stale"]
    t = tab()
    # The URL the tracker recorded (in the signed event, the console, status --json) is
    # the page the site serves for the bug.
    events = sorted((site.history.log.repo / "manifests/atomic-host/trackers").glob("*.json"))
    recorded = {json.loads(e.read_text())["signed"]["url"] for e in events}
    assert recorded == {"atomic-host/bugs/local1.html"}
    page = t.open(site.page(recorded.pop()))
    expect(page.get_by_role("heading", level=1)).to_contain_text("local1")
    page = t.open(site.page("atomic-host/bugs/local1.html"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("local1")
    for cid in ("Fedora-Atomic-28-20180513.0", COMPOSE):
        t.open(site.page("atomic-host/bugs/local1.html"))
        page.locator("ol.events").get_by_role("link", name=cid).first.click()
        page.wait_for_load_state()
        expect(page.get_by_role("heading", level=1)).to_contain_text(cid)
        expect(page.locator("p.lede")).to_contain_text("failed")
    t.shot()
    t.assert_clean()


# --- 5 and 9. every page: no console error, no CSP violation, no broken request -------------------


#: One evaluation per crawled page: its h1 count and the absolute URLs it links (an SVG
#: link's ``href`` is an SVGAnimatedString: its value resolved against the page).
PAGE_LINKS = """() => [document.querySelectorAll("h1").length,
  [...document.querySelectorAll("a[href], link[href]")].map((e) =>
    typeof e.href === "string" ? e.href : new URL(e.href.baseVal, document.baseURI).href)]"""


@pytest.mark.parametrize("name", ["current", "stale"])
def test_every_page_loads_cleanly(tab: Callable[..., Tab], sites: Sites, name: str) -> None:
    """Crawl a site from its front door: every internal page answers 200 and has one h1,
    every internal file it links answers 200, and the browser reports nothing wrong.

    Between them, the current and stale sites have every kind of page (AMIs, passed and
    failed composes, a bug, image and stale archive rows); the other states' own pages are
    visited by test_banner_and_its_links, and every test checks what it visits.
    """
    site = sites[name]
    t = tab()
    todo, seen, files = [site.page()], set[str](), set[str]()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        h1s, hrefs = t.open(url).evaluate(PAGE_LINKS)
        assert h1s == 1, url
        for href in (urldefrag(h).url for h in hrefs):
            if not href.startswith(site.url):
                continue  # images on the compose trees (downloaded elsewhere), external links
            if "/latest/" in href:
                continue  # redirects to an image: test_latest_address_downloads_the_current_file
            if href.endswith(".html"):
                todo.append(href)
            else:
                files.add(href)
    assert len(seen) >= 8, seen
    for file in sorted(files):
        response = t.context.request.get(file)
        assert response.ok, f"{file}: HTTP {response.status}"
    t.assert_clean()


def test_csp_is_enforced_and_violations_are_caught(tab: Callable[..., Tab], sites: Sites) -> None:
    """The page's CSP is the strict one, it holds, and the watch would see a violation."""
    t = tab()
    page = t.open(sites["current"].page())
    csp = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    assert csp is not None
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    assert directives["style-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    # The site's own stylesheet and script are allowed: styled, and the copy buttons exist.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    expect(page.locator("button.copy").first).to_be_visible()
    t.assert_clean()
    # An inline style is refused, and reported.
    page.evaluate(
        "document.head.insertAdjacentHTML('beforeend', '<style>body{margin:3px}</style>')"
    )
    page.wait_for_timeout(100)
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    assert any("CSP violation: style-src-elem" in p for p in t.watch.take())


# --- 6. without JavaScript, and the copy buttons with it ------------------------------------------


def test_works_without_javascript(tab: Callable[..., Tab], sites: Sites) -> None:
    site = sites["current"]
    t = tab(java_script_enabled=False)
    page = t.open(site.page())
    compose = site.history.composes[COMPOSE]
    sums = page.locator("table.downloads code.sha")
    expect(sums).to_have_count(len(compose.images))
    assert sorted(sums.all_inner_texts()) == sorted(i.checksums.sha256 for i in compose.images)
    expect(page.locator("button.copy")).to_have_count(0)
    # The checksum is selected whole with one click (CSS user-select: all).
    sums.first.click()
    assert page.evaluate("getSelection().toString()") == sums.first.inner_text()
    download_and_check(page, 2)
    t.shot()
    t.assert_clean()


def test_copy_buttons_put_the_checksum_on_the_clipboard(
    tab: Callable[..., Tab], sites: Sites
) -> None:
    site = sites["current"]
    t = tab(permissions=["clipboard-read", "clipboard-write"])
    page = t.open(site.page())
    sums = page.locator("table.downloads code.sha")
    buttons = page.get_by_role("button", name="Copy SHA-256 checksum")
    expect(buttons).to_have_count(sums.count())
    for n in (0, sums.count() - 1):
        buttons.nth(n).click()
        expect(buttons.nth(n)).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == sums.nth(n).inner_text()
    t.shot()
    t.assert_clean()


# --- 7. accessibility -----------------------------------------------------------------------------

AXE_PAGES = {
    "download": ("current", "index.html"),
    "download-stale": ("stale", "index.html"),
    "dashboard": ("stale", "atomic-host/dashboard/index.html"),
    "compose": ("stale", f"atomic-host/composes/{COMPOSE}.html"),
    "archive": ("withdrawn", "atomic-host/releases/index.html"),
    "about": ("current", "about.html"),
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("which", list(AXE_PAGES))
def test_no_serious_accessibility_violations(
    tab: Callable[..., Tab], sites: Sites, which: str, scheme: str
) -> None:
    name, rel = AXE_PAGES[which]
    t = tab(color_scheme=scheme)
    page = t.open(sites[name].page(rel))
    if scheme == "dark":  # the light pages are in the other tests' screenshots
        t.shot()
    t.assert_clean()
    results = Axe().run(page).response
    assert any(p["id"] == "color-contrast" for p in results["passes"])  # axe did look
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    report = [
        f"{v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"])
        for v in bad
    ]
    assert bad == [], f"axe on {which} ({scheme}):\n" + "\n".join(report)


# --- 8. a narrow screen ---------------------------------------------------------------------------

WIDE_ELEMENTS = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 8)
  .map((e) => `${e.tagName.toLowerCase()}.${e.className} right=${e.getBoundingClientRect().right}`)
"""


NARROW_PAGES = {
    "download": ("current", "index.html"),
    "download-stale": ("stale", "index.html"),
    "dashboard": ("stale", "atomic-host/dashboard/index.html"),
    "compose": ("current", f"atomic-host/composes/{COMPOSE}.html"),
    "archive": ("withdrawn", "atomic-host/releases/index.html"),
}


@pytest.mark.parametrize("which", list(NARROW_PAGES))
def test_no_horizontal_scroll_at_375px(tab: Callable[..., Tab], sites: Sites, which: str) -> None:
    name, rel = NARROW_PAGES[which]
    t = tab(viewport={"width": 375, "height": 812})
    page = t.open(sites[name].page(rel))
    t.shot()
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert inner == 375
    wide = page.evaluate(WIDE_ELEMENTS)
    assert scroll <= inner, f"{which} is {scroll}px wide in a {inner}px viewport: {wide}"
    t.assert_clean()


#: For each checksum group and timestamp of a page: how many lines it is drawn on.
# How many lines each checksum group (the text between two <wbr>) and each timestamp takes.
LINES_OF = """() => [...document.querySelectorAll("code.sha")]
  .flatMap((c) => [...c.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE))
  .map((n) => { const r = document.createRange(); r.selectNodeContents(n); return r; })
  .concat([...document.querySelectorAll("time")])
  .map((e) => [e.textContent, e.getClientRects().length])"""


@pytest.mark.parametrize("width", [375, 1280])
def test_checksums_and_timestamps_do_not_wrap_mid_string(
    tab: Callable[..., Tab], sites: Sites, width: int
) -> None:
    t = tab(viewport={"width": width, "height": 900})
    for rel in ("index.html", f"atomic-host/composes/{COMPOSE}.html"):
        page = t.open(sites["current"].page(rel))
        drawn = page.evaluate(LINES_OF)
        # A checksum wraps only between its 16-character groups, a timestamp not at all.
        assert len(drawn) > 4 and all(n == 1 for _, n in drawn), drawn
    t.assert_clean()
