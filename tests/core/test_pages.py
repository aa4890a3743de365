"""The page models: what each page of the site shows, computed from derived state (no I/O)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from pipeline.core import pages
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import CaseResult, ImageRef, LogRef
from pipeline.core.models.manifests import TestOutcome as Outcome
from pipeline.core.state import State
from pipeline.core.units import human_size
from tests.conftest import compose_on, make_compose, make_result
from tests.core.history import History

MakeHistory = Callable[..., History]


@pytest.fixture
def make_history() -> MakeHistory:
    """Factory: a history with composes on the given days (``kind`` per day, default pass)."""

    def make(*days: int | tuple[int, str]) -> History:
        h = History()
        for d in days:
            day, kind = d if isinstance(d, tuple) else (d, "pass")
            h.compose(day, kind)
        return h

    return make


def released(h: History) -> State:
    """One passing compose, released on the first release day (2015-09-15), seen a day later."""
    h.compose(13)
    assert h.cut(h.at(14)) is not None
    return h.state(h.at(15))


# --- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (1024**2, "1.0 MiB"),
        (593363456, "565.9 MiB"),
        (1024**3, "1.0 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (1024**5, "1024.0 TiB"),
    ],
)
def test_human_size_uses_binary_units_with_one_decimal(size: int, text: str) -> None:
    assert human_size(size) == text
    assert pages.human_size is human_size  # one implementation, also behind the console


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://example.org/x", True),
        ("HTTP://example.org/x", True),
        ("/composes/Fedora-Atomic-22-20150915.0/", True),
        ("logs/x.log", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<b>x</b>", False),
        ("http:example.org", False),
        ("ftp://example.org/x", False),
        ("", False),
        (None, False),
    ],
)
def test_http_url_keeps_only_http_links_and_relative_ones(url: str | None, kept: bool) -> None:
    assert pages.http_url(url) == (url if kept else None)


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("a/b.log", True),
        ("a..b/c.log", True),
        ("../etc/passwd", False),
        ("a/../../b", False),
        ("/etc/passwd", False),
        ("a\0b", False),
        ("", False),
    ],
)
def test_safe_relpath_refuses_paths_leaving_their_folder(path: str, safe: bool) -> None:
    assert pages.safe_relpath(path) is safe


@pytest.mark.parametrize(
    ("days", "text"), [(-1, "today"), (0, "today"), (1, "1 day ago"), (12, "12 days ago")]
)
def test_age_in_days(days: int, text: str) -> None:
    assert pages.age(days) == text


def test_dates_are_printed_in_utc() -> None:
    assert pages.compose_date("20180515") == "2018-05-15"
    moment = datetime.fromisoformat("2018-05-15T12:00:00+02:00")
    assert pages.iso(moment) == "2018-05-15T10:00:00Z"


def test_urls_of_a_product() -> None:
    urls = pages.Urls("atomic-host")
    assert urls.download() == "atomic-host/index.html"
    assert urls.dashboard() == "atomic-host/dashboard/index.html"
    assert urls.dashboard(3) == "atomic-host/dashboard/page-3.html"
    assert urls.compose("C-1") == "atomic-host/composes/C-1.html"
    assert urls.release_anchor("2015-09-15") == "atomic-host/releases/index.html#release-2015-09-15"
    assert urls.checksum("2015-09-15") == "atomic-host/releases/2015-09-15/CHECKSUM"
    assert urls.stream() == "streams/atomic-host.json"
    assert urls.latest_name("x86_64", "qcow2") == "latest/atomic-host/x86_64/qcow2/latest"
    assert urls.manifest(make_compose()) == f"manifests/{make_compose().relname()}"


# --- the download page ---------------------------------------------------------------------


def test_download_page_before_any_release_says_so(make_history: MakeHistory) -> None:
    h = make_history(10)
    page = pages.download_page(h.state(h.at(11)))
    assert page.current is None and page.arches == []
    assert page.checksum is None and page.sha256sums is None
    assert page.title == "Fedora Atomic Host, based on Fedora 22"
    assert [b.kind for b in page.banners] == ["none"]
    assert page.banners[0].links == [
        pages.Link("Nightly test results", "atomic-host/dashboard/index.html")
    ]
    assert page.next_release_day == "2015-09-15"


def test_download_page_offers_the_released_images(make_history: MakeHistory) -> None:
    state = released(make_history())
    page = pages.download_page(state)
    assert page.current is not None
    assert page.current.release_id == "2015-09-15"
    assert page.current.compose_id == "Fedora-Atomic-22-20150914.0"
    assert (page.current.compose_date, page.current.released) == ("2015-09-14", "2015-09-15")
    assert page.current.age == "1 day ago"
    assert page.banners == []
    assert page.checksum == "atomic-host/releases/2015-09-15/CHECKSUM"
    [section] = page.arches
    [download] = section.downloads
    assert (section.arch, section.amis) == ("x86_64", [])
    assert download.label == "Cloud image (qcow2)"
    assert (download.size, download.size_h) == (593363456, "565.9 MiB")
    assert download.latest == "latest/atomic-host/x86_64/qcow2/index.html"
    assert download.vagrant_hint is None


def test_arch_sections_put_x86_64_first_and_types_in_page_order() -> None:
    image = make_compose().images[0]
    images = [
        image.model_copy(update={"arch": arch, "type": kind, "path": f"{arch}/{kind}"})
        for arch in ("aarch64", "x86_64")
        for kind in ("vagrant-libvirt", "qcow2", "mystery")
    ]
    state = derive_one(make_compose(images=images))
    view = state.composes[0]
    sections = pages.arch_sections(images, None, view, pages.Urls("atomic-host"))
    assert [s.arch for s in sections] == ["x86_64", "aarch64"]
    assert [d.type for d in sections[0].downloads] == ["qcow2", "vagrant-libvirt", "mystery"]
    hints = [d.vagrant_hint for d in sections[0].downloads]
    assert hints[1] is not None and hints[1].startswith("vagrant box add --name ")
    assert hints[0] is None and hints[2] is None
    assert sections[0].downloads[2].label == "mystery"  # an unknown type is offered as is


def derive_one(*manifests: Manifest) -> State:
    """The state of a log holding just ``manifests``, on 2015-09-21."""
    h = History()
    h.log.extend(manifests)
    return h.state(h.at(20))


def test_a_stale_cycle_keeps_the_previous_image_behind_a_banner(
    make_history: MakeHistory,
) -> None:
    h = make_history()
    released(h)
    h.compose(20, "fail")
    h.compose(27, "no-image")
    assert h.cut(h.at(28)) is not None
    state = h.state(h.at(29))
    page = pages.download_page(state)
    assert page.current is not None and page.current.release_id == "2015-09-15"
    [banner] = page.banners
    assert banner.kind == "stale" and banner.title == "This image is stale"
    assert "released 2015-09-15" in banner.text
    assert banner.text[0].isupper()
    assert [link.label for link in banner.links] == [
        "Previous release 2015-09-15",
        "Nightly test results",
    ]


@pytest.mark.parametrize(
    ("reason_url", "why"),
    [("https://bugs.example.org/1", True), ("javascript:alert(1)", False), (None, False)],
)
def test_a_withdrawn_release_is_announced_and_links_why_only_over_http(
    make_history: MakeHistory, reason_url: str | None, why: bool
) -> None:
    h = make_history()
    released(h)
    revoked = h.revoke("2015-09-15", h.at(16))
    assert revoked is not None
    h.log[-1] = revoked.model_copy(update={"reason_url": reason_url})
    page = pages.download_page(h.state(h.at(17)))
    kinds = [b.kind for b in page.banners]
    assert kinds == ["none", "withdrawn"]  # nothing else to offer, and why
    withdrawn = page.banners[1]
    assert withdrawn.title == "Release 2015-09-15 was withdrawn"
    assert "There is no earlier good release to show." in withdrawn.text
    assert [link.label for link in withdrawn.links] == (
        ["Withdrawn release 2015-09-15", "Why"] if why else ["Withdrawn release 2015-09-15"]
    )


# --- dashboard, compose and bug pages ------------------------------------------------------


@pytest.mark.parametrize(
    ("composes", "per_page", "rows"),
    [
        (0, 2, [0]),
        (1, 2, [1]),
        (4, 2, [4]),
        (5, 2, [3, 2]),  # chunks of 2 from the oldest: the front page holds the last two
        (7, 2, [3, 2, 2]),
        (6, 3, [6]),
        (7, 3, [4, 3]),
    ],
)
def test_dashboard_pages_are_chunks_counted_from_the_oldest(
    make_history: MakeHistory, composes: int, per_page: int, rows: list[int]
) -> None:
    h = make_history(*range(1, composes + 1))
    state = h.state(h.at(composes + 1))
    urls = pages.Urls("atomic-host")
    dash = pages.dashboard_pages(state, urls, per_page=per_page)
    assert [len(p.rows) for p in dash] == rows
    assert [p.front for p in dash] == [True] + [False] * (len(rows) - 1)
    assert dash[0].href == urls.dashboard()
    assert [p.href for p in dash[1:]] == [urls.dashboard(n) for n in range(len(rows) - 1, 0, -1)]
    for newer, older in itertools.pairwise(dash):
        assert newer.next_href == older.href and older.prev_href == newer.href
    assert dash[0].prev_href is None and dash[-1].next_href is None
    every = [r.date for p in dash for r in p.rows]
    assert every == sorted(every, reverse=True)  # newest first, across pages


def test_dashboard_rows_say_what_a_reader_must_not_miss(make_history: MakeHistory) -> None:
    h = make_history((1, "pass"), (2, "fail"), (3, "no-image"), (4, "waived"), (5, "manual"))
    [front] = pages.dashboard_pages(h.state(h.at(6)), pages.Urls("atomic-host"))
    by_day = {row.date: row for row in front.rows}
    assert [row.status for row in front.rows] == [
        "failed-manual",
        "passed",
        "no-image",
        "failed",
        "passed",
    ]
    assert by_day["2015-09-06"].notes == ["failed by op: operator says so"]
    assert by_day["2015-09-05"].notes == ["format waived by op: operator says so"]
    assert by_day["2015-09-04"].notes == ["no image: DOOMED"]
    [cell] = by_day["2015-09-03"].suites
    assert (cell.name, cell.blocking_failed, cell.advisory_failed) == ("images", 1, 0)


def test_compose_page_lists_results_and_brings_only_safe_logs() -> None:
    compose = make_compose()
    result = make_result(compose, fail=["format"])
    ref = ImageRef.of(compose.images[0])
    cases: list[tuple[str, Outcome, str]] = [
        ("kept", "FAILED", "runs/kept.log"),
        ("escapes", "PASSED", "../escapes.log"),
    ]
    logged = [
        CaseResult(
            name=name,
            blocking=True,
            outcome=outcome,
            reason=None,
            duration_ms=1500,
            image=ref,
            log=LogRef(path=path, sha256="b" * 64, size=3, tail="the end"),
        )
        for name, outcome, path in cases
    ]
    result = result.model_copy(update={"tests": [*result.tests, *logged]})
    state = derive_one(compose, result)
    asked: list[str] = []

    def has_log(path: str) -> bool:
        asked.append(path)
        return True

    urls = pages.Urls("atomic-host")
    page = pages.compose_page(state, state.composes[0], urls, {}, {}, has_log)
    assert asked == ["runs/kept.log"]  # an unsafe path is never even looked up
    assert page.status == "failed" and page.release is None
    assert page.images == [("x86_64", "qcow2", compose.images[0].filename, "565.9 MiB", "a" * 64)]
    [suite] = page.suites
    rows = {row.name: row for row in suite.blocking}
    assert rows["kept"].log == "logs/runs/kept.log" and rows["kept"].tail == "the end"
    assert rows["kept"].duration == "1.5 s"
    assert rows["escapes"].log is None and rows["escapes"].tail is None
    assert rows["format"].outcome == "FAILED"
    assert [(r.image, r.name) for r in suite.blocking] == sorted(
        (r.image, r.name) for r in suite.blocking
    )


def test_bug_page_links_only_composes_the_site_has(make_history: MakeHistory) -> None:
    h = make_history((1, "fail"))
    cid = h.state(h.at(2)).composes[0].compose_id
    h.bug(cid, h.at(1, 12))
    h.bug("Fedora-Atomic-22-20150801.0", h.at(1, 13))
    state = h.state(h.at(2))
    urls = pages.Urls("atomic-host")
    [bug] = pages.local_bugs(state)
    known = {c.compose_id for c in state.composes}
    page = pages.bug_page(bug, urls, known)
    assert page.bug == "local1" and page.is_open
    assert [(e.compose_id, e.compose_href) for e in page.events] == [
        (cid, urls.compose(cid)),
        ("Fedora-Atomic-22-20150801.0", None),
    ]
    assert page.events[0].when == "2015-09-02T12:00:00Z"
    assert pages.compose_bugs(state, urls)[cid] == [pages.Link("local1", urls.bug("local1"))]


# --- release archive, feed, stream, latest -------------------------------------------------


def test_archive_rows_name_each_kind_of_decision(make_history: MakeHistory) -> None:
    h = make_history()
    released(h)  # 2015-09-15: an image on its day
    h.compose(27, "fail")
    assert h.cut(h.at(28)) is not None  # 2015-09-29: stale
    h.compose(29)
    assert h.cut(h.at(30)) is not None  # 2015-09-29.2: late (retry)
    assert h.revoke("2015-09-29.2", h.at(31)) is not None
    state = h.state(h.at(32))
    rows = pages.archive_rows(state, pages.Urls("atomic-host"))
    assert [(r.release_id, r.kind, r.current) for r in rows] == [
        ("2015-09-29.2", "withdrawn", False),
        ("2015-09-29", "stale", False),
        ("2015-09-15", "image", True),
    ]
    assert rows[1].checksum is None and rows[1].compose_href is None
    assert rows[2].checksum == "atomic-host/releases/2015-09-15/CHECKSUM"
    assert rows[0].fallen is not None
    assert [r.release_id for r, _ in pages.released_images(state)] == [
        "2015-09-15",
        "2015-09-29.2",
    ]
    assert pages.release_of_compose(state) == {
        "Fedora-Atomic-22-20150914.0": "2015-09-15",
        "Fedora-Atomic-22-20150930.0": "2015-09-29.2",
    }
    entries = pages.feed_entries(state, pages.Urls("atomic-host"), limit=2)
    assert [e.title for e in entries] == [
        "Fedora Atomic Host 2015-09-29.2: Fedora-Atomic-22-20150930.0 (withdrawn)",
        "Fedora Atomic Host 2015-09-29: no new image (stale)",
    ]
    assert entries[0].id == "fortnight:atomic-host:release:2015-09-29.2"
    assert entries[0].summary.endswith(f" Withdrawn: {rows[0].fallen}.")


def test_stream_describes_the_current_release(make_history: MakeHistory) -> None:
    state = released(make_history())
    doc = pages.stream(state, "https://example.org/site/")
    assert doc["stream"] == "atomic-host"
    assert doc["stale"] is False and doc["stale-reason"] is None
    release = doc["release"]
    assert release["id"] == "2015-09-15"
    assert release["manifest"].startswith("https://example.org/site/manifests/")
    disk = doc["architectures"]["x86_64"]["artifacts"]["qcow2"]["formats"]["qcow2"]["disk"]
    assert disk == {
        "location": "https://example.invalid/Fedora-Cloud-Atomic-22-20150915.x86_64.qcow2",
        "sha256": "a" * 64,
        "size": 593363456,
    }
    assert doc["metadata"]["last-modified"] == release["date"]


def test_stream_without_a_release_is_empty(make_history: MakeHistory) -> None:
    h = make_history(1)
    doc = pages.stream(h.state(h.at(2)), "")
    assert doc["release"] is None and doc["architectures"] == {}
    assert doc["metadata"] == {"last-modified": None, "generator": "fortnight"}


def test_latest_pointers_take_the_first_file_of_each_arch_and_type() -> None:
    image = make_compose().images[0]
    images = [
        image.model_copy(update={"path": "z/second.qcow2", "disc_number": 2}),
        image,
        image.model_copy(update={"type": "raw-xz", "format": "raw.xz", "path": "a/disk.raw.xz"}),
    ]
    compose = compose_on(14, images=images)
    h = History()
    h.log += [compose, make_result(compose, started=compose.created + timedelta(hours=1))]
    assert h.cut(h.at(14)) is not None
    pointers = pages.latest_pointers(h.state(h.at(15)))
    assert [(p.filename, p.path, p.name_path) for p in pointers] == [
        (
            image.filename,
            "latest/atomic-host/x86_64/qcow2/index.html",
            "latest/atomic-host/x86_64/qcow2/latest",
        ),
        (
            "disk.raw.xz",
            "latest/atomic-host/x86_64/raw-xz/index.html",
            "latest/atomic-host/x86_64/raw-xz/latest",
        ),
    ]
    assert pointers[0].url == image.url


def test_no_release_no_latest_pointers(make_history: MakeHistory) -> None:
    h = make_history(1)
    assert pages.latest_pointers(h.state(h.at(2))) == []


def test_page_models_are_stable_values(make_history: MakeHistory) -> None:
    """The site keys a page by its model's repr: the same state gives equal models."""
    first, second = released(make_history()), released(make_history())
    assert repr(pages.download_page(first)) == repr(pages.download_page(second))
    urls = pages.Urls("atomic-host")
    assert pages.archive_rows(first, urls) == pages.archive_rows(second, urls)
