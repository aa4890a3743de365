"""The site build: pages, banners, machine-readable outputs, escaping, the manifest mirror.

Every test builds a real site with Pelican from a real signed log (tests/sitekit.py) and
reads the files as a user or a script would. The browser tests are in test_site_browser.py,
incremental builds in test_incremental.py, worker processes in test_workers.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.models.common import format_timestamp
from pipeline.core.models.manifests import LogRef, VerdictManifest
from pipeline.core.outputs import checksum_file
from pipeline.core.pages import DASHBOARD_PAGE, Urls, dashboard_pages, http_url, region_names
from pipeline.core.state import derive
from pipeline.errors import SiteError, VerificationError
from pipeline.log.blobs import BlobStore
from pipeline.log.cache import CACHE_DIR
from pipeline.log.git import git_blob_id
from tests.conftest import FIXTURES, ROOT, make_result, run_invoke
from tests.sitekit import (
    REGIONS,
    History,
    Page,
    day,
    internal_targets,
    scenario_current,
    scenario_none,
    scenario_stale,
    scenario_withdrawn,
)

MakeHistory = Callable[..., History]


@pytest.fixture
def current_site(make_history: MakeHistory, tmp_path: Path) -> tuple[History, Path]:
    h = make_history()
    now = scenario_current(h)
    out = tmp_path / "out"
    h.build(out, now)
    return h, out


def test_download_page_offers_the_current_release(current_site: tuple[History, Path]) -> None:
    h, out = current_site
    page = Page(out / "index.html")
    assert "Fedora Atomic Host, based on Fedora 28" in page.text
    assert page.banners == []
    # Release 2018-05-15 was cut on its release day from the compose of 2018-05-14.
    assert "Release 2018-05-15, released 2018-05-15 (1 day ago)" in page.text
    compose = h.composes["Fedora-Atomic-28-20180514.0"]
    assert compose.compose_id in page.text
    downloads = {h: t for h, t in page.links if h.startswith("https://dl.example.org/")}
    assert len(compose.images) == 8  # the real F28 AtomicHost images
    for img in compose.images:  # every file with its size and checksum
        assert img.url in downloads
        assert img.checksums.sha256 in page.text
    assert "vagrant box add --name Fedora-Atomic-28-20180514.0 " in page.text
    # The checksum files hold exactly the release's images.
    checksum = out / page.href("CHECKSUM")
    assert checksum.read_text() == checksum_file(compose.images)
    sums = (out / page.href("SHA256SUMS")).read_text().splitlines()
    assert sorted(sums) == sorted(f"{i.checksums.sha256}  {i.filename}" for i in compose.images)
    # EC2: only public AMIs, by region, with the console's launch link.
    launch = [h for h, t in page.links if t == "Launch"]
    assert launch == [
        "https://console.aws.amazon.com/ec2/v2/home?region=us-east-1"
        f"#LaunchInstanceWizard:ami={REGIONS['us-east-1']}"
    ]
    assert "US East (N. Virginia) us-east-1" in page.text
    assert REGIONS["eu-west-1"] not in page.text  # private: not offered
    assert internal_targets(out) == []


def test_primary_page_is_the_front_door_and_every_page_has_a_csp(
    current_site: tuple[History, Path],
) -> None:
    _, out = current_site
    front, own = Page(out / "index.html"), Page(out / "atomic-host/index.html")
    assert front.text == own.text
    for html in out.rglob("*.html"):
        csp = [m for m in Page(html).metas if m.get("http-equiv") == "Content-Security-Policy"]
        assert csp, html
        assert "default-src 'none'" in csp[0]["content"]
        assert "'unsafe-inline'" not in csp[0]["content"]


def test_download_page_weighs_at_most_30_kb(make_history: MakeHistory, tmp_path: Path) -> None:
    """A full Fedora 28 release (8 images, 3 arches) with AMIs in every AWS region."""
    h = make_history()
    good = h.compose(day(13))
    codes = [c for c in sorted(region_names()) if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", c)]
    regions = {code: f"ami-{n:017x}" for n, code in enumerate(codes[:34])}
    h.amis(good, regions, day(13, 6))
    h.cut(day(14, 12))
    out = tmp_path / "out"
    h.build(out, day(15))
    html = (out / "index.html").read_bytes()
    css = (out / "theme/css/site.css").read_bytes()
    assert html.count(b"Launch</a>") == len(regions)
    weight = len(html) + len(css)
    assert weight <= 30 * 1024, f"{weight} bytes"


@pytest.mark.parametrize(
    ("scenario", "banner", "texts", "links"),
    [
        (
            scenario_stale,
            ["stale"],
            [
                "This image is stale",
                "The cycle of 2018-05-15 produced no image that passed its tests",
                "Showing the previous image, released 2018-05-01",
            ],
            ["Failure bug local1", "Previous release 2018-05-01"],
        ),
        (
            scenario_withdrawn,
            ["withdrawn"],
            [
                "Release 2018-05-15 was withdrawn",
                "withdrawn by dusty: the image does not boot on EC2",
                "Showing the previous good release, 2018-05-01",
            ],
            ["Withdrawn release 2018-05-15", "Why"],
        ),
        (
            scenario_none,
            ["none"],
            ["No image has been released yet", "The next release day is 2018-05-15"],
            ["Failure bug local1", "Nightly test results"],
        ),
    ],
)
def test_banners(
    make_history: MakeHistory,
    tmp_path: Path,
    scenario: Callable[[History], Any],
    banner: list[str],
    texts: list[str],
    links: list[str],
) -> None:
    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario(h))
    page = Page(out / "index.html")
    assert page.banners == banner
    for text in texts:
        assert text in page.text
    for label in links:
        href = page.href(label)
        if not href.startswith("https://"):
            assert (out / href.split("#")[0]).is_file(), href
    assert internal_targets(out) == []


def test_stale_banner_links_the_bug_page_and_the_previous_release(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario_stale(h))
    page = Page(out / "index.html")
    bug = Page(out / page.href("Failure bug local1"))
    assert "Fedora-Atomic-28-20180513.0" in bug.text and "Fedora-Atomic-28-20180514.0" in bug.text
    previous = page.href("Previous release 2018-05-01")
    assert previous.endswith("#release-2018-05-01")
    archive = (out / previous.split("#")[0]).read_text()
    assert 'id="release-2018-05-01" class="current"' in archive
    # The stale decision's row links the same (local) bug page.
    rows = Page(out / previous.split("#")[0])
    assert rows.href("local1") == "../../atomic-host/bugs/local1.html"
    # The stale page still offers the previous image.
    assert "Fedora-Atomic-28-20180430.0" in page.text


def test_prerelease_base_shows_a_disclaimer(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history(prerelease="Beta")
    out = tmp_path / "out"
    h.build(out, scenario_current(h))
    page = Page(out / "index.html")
    assert page.banners == ["prerelease"]
    assert "Fedora Atomic Host, based on Fedora 28 Beta" in page.text
    assert "Based on a prerelease: Fedora 28 Beta" in page.text


def test_hostile_strings_are_escaped(make_history: MakeHistory, tmp_path: Path) -> None:
    """Reasons, operators, bug titles and test output from manifests never become markup."""
    h = make_history()
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    h.compose(day(-1))
    h.cut(day(0, 12))
    bad = h.compose(day(13), fail=["checksum"])
    h.record(
        [
            VerdictManifest(
                product="atomic-host",
                created=day(13, 4),
                compose_id=bad.compose_id,
                number=1,
                action="fail",
                reason=evil,
                reason_url="javascript:alert(1)",
                operator=f"op{evil}",
            )
        ],
        "verdict",
    )
    result = make_result(bad, fail=["format"], started=day(13, 5), run="20180514T080000Z-abcdef")
    tests = [
        t.model_copy(
            update={"reason": evil, "log": LogRef(path="x.log", sha256="0" * 64, size=1, tail=evil)}
        )
        if t.outcome == "FAILED"
        else t
        for t in result.tests
    ]
    h.record([result.model_copy(update={"tests": tests})], "test")
    h.sync(day(13, 6))
    h.cut(day(14, 12))
    h.revoke("2018-05-01", evil, day(14, 13), "javascript:alert(1)")
    out = tmp_path / "out"
    h.build(out, day(15))
    for html in out.rglob("*.html"):
        text = html.read_text()
        assert "<script>alert" not in text, html
        assert "<img src=x" not in text, html
        assert "javascript:" not in text, html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in (out / "index.html").read_text()
    compose_page = (out / Urls("atomic-host").compose(bad.compose_id)).read_text()
    assert "failed by op&lt;script&gt;" in compose_page
    feed = ET.parse(out / "feeds/atomic-host.atom")  # still well-formed XML
    assert any(evil in (e.text or "") for e in feed.iter())


def test_stream_describes_the_current_release(current_site: tuple[History, Path]) -> None:
    h, out = current_site
    doc = json.loads((out / "streams/atomic-host.json").read_text())
    compose = h.composes["Fedora-Atomic-28-20180514.0"]
    assert doc["stream"] == "atomic-host"
    assert doc["stale"] is False and doc["stale-reason"] is None
    assert doc["release"]["id"] == "2018-05-15"
    assert doc["release"]["compose-id"] == compose.compose_id
    assert sorted(doc["architectures"]) == ["aarch64", "ppc64le", "x86_64"]
    for img in compose.images:
        artifact = doc["architectures"][img.arch]["artifacts"][img.type]
        disk = artifact["formats"][img.format]["disk"]
        assert disk == {"location": img.url, "sha256": img.checksums.sha256, "size": img.size}
    regions = doc["architectures"]["x86_64"]["images"]["aws"]["regions"]
    assert regions == {"us-east-1": {"release": "2018-05-15", "image": REGIONS["us-east-1"]}}
    # The release manifest it names is published, and verifies against the published trust.
    manifest = out / doc["release"]["manifest"]
    assert manifest.is_file()
    repo = h.log.repo
    assert manifest.read_bytes() == (repo / doc["release"]["manifest"]).read_bytes()
    assert (out / "manifests/trust.json").read_bytes() == (
        repo / "manifests/trust.json"
    ).read_bytes()


def test_published_manifests_verify_on_their_own(
    current_site: tuple[History, Path], tmp_path: Path
) -> None:
    """What the page claims can be checked from the site alone: copy manifests/ into a repo."""
    h, out = current_site
    check = tmp_path / "check"
    shutil.copytree(out / "manifests", check / "manifests")
    for toml in (h.log.repo / "manifests").glob("*/product.toml"):
        shutil.copy(toml, check / "manifests" / toml.parent.name / "product.toml")
    subprocess.run(["git", "init", "-q", str(check)], check=True)
    # The pin comes from the site's "Verify a download" page, not from the copy.
    fingerprint = h.log.log.load_root().chain.fingerprint
    assert f"<code>invoke verify --root {fingerprint}</code>" in (out / "verify.html").read_text()
    # As of the build (the copy's checkpoints have long expired by now).
    at = ("--at", format_timestamp(day(15, 12)))
    result = run_invoke("verify", "--repo", str(check), "--root", fingerprint, *at)
    assert result.returncode == 0, result.stderr
    wrong = run_invoke("verify", "--repo", str(check), "--root", "0" * 64)
    assert wrong.returncode == 4 and "does not match the pinned root" in wrong.stderr
    published = sorted(p.relative_to(out) for p in (out / "manifests").rglob("*.json"))
    in_log = sorted(
        p.relative_to(h.log.repo)
        for p in (h.log.repo / "manifests").rglob("*.json")
        if "schema" not in p.parts
    )
    assert published == in_log


def test_atom_feed_lists_release_decisions(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario_withdrawn(h), overrides={"FORTNIGHT_SITEURL": "https://f.example/"})
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.parse(out / "feeds/atomic-host.atom").getroot()
    entries = feed.findall("a:entry", ns)
    titles = [e.findtext("a:title", namespaces=ns) for e in entries]
    assert titles == [
        "Fedora Atomic Host 2018-05-15: Fedora-Atomic-28-20180514.0 (withdrawn)",
        "Fedora Atomic Host 2018-05-01: Fedora-Atomic-28-20180430.0",
    ]
    link = entries[0].find("a:link", ns)
    assert link is not None
    assert (
        link.get("href") == "https://f.example/atomic-host/releases/index.html#release-2018-05-15"
    )


def test_latest_pointers(current_site: tuple[History, Path]) -> None:
    h, out = current_site
    compose = h.composes["Fedora-Atomic-28-20180514.0"]
    for img in compose.images:
        folder = out / "latest/atomic-host" / img.arch / img.type
        assert (folder / "latest").read_text() == img.filename + "\n"
        refresh = [
            m["content"]
            for m in Page(folder / "index.html").metas
            if m.get("http-equiv") == "refresh"
        ]
        assert refresh == [f"0; url={img.url}"]


def test_dashboard_compose_pages_and_logs(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history()
    logs = tmp_path / "logs"
    good = h.compose(day(-1))
    bad = h.compose(day(0), tested=False)
    log_path = f"atomic-host/{bad.compose_id}/images/run/format.log"
    (logs / log_path).parent.mkdir(parents=True)
    (logs / log_path).write_text("qemu-img: not a qcow2 file\n")
    result = make_result(bad, fail=["format", "name"], started=day(0, 1))
    tests = [
        t.model_copy(update={"log": LogRef(path=log_path, sha256="0" * 64, size=27, tail="x")})
        for t in result.tests
    ]
    h.record([result.model_copy(update={"tests": tests})], "test")
    out = tmp_path / "out"
    h.build(out, day(1), logs=logs)
    dash = Page(out / "atomic-host/dashboard/index.html")
    # the table's links (the history picture's marks link too, titled "<id>: <status>")
    rows = [t for h_, t in dash.links if t.startswith("Fedora-Atomic") and ": " not in t]
    assert rows == [bad.compose_id, good.compose_id]  # newest first
    assert "images: FAILED 8 blocking 8 advisory" in dash.text
    page = Page((out / "atomic-host/dashboard" / dash.href(bad.compose_id)).resolve())
    assert "Blocking tests" in page.text and "Advisory tests" in page.text
    log_links = [h_ for h_, t in page.links if t == "log"]
    assert log_links and all(
        (out / "atomic-host/composes" / href).resolve().is_file() for href in log_links
    )
    assert (out / "logs" / log_path).read_text() == "qemu-img: not a qcow2 file\n"
    assert internal_targets(out) == []


def test_dashboard_pages_newest_first(make_history: MakeHistory) -> None:
    h = make_history()
    for n in range(5):
        h.compose(day(n))
    log = h.log.log
    state = derive([v.manifest for v in log.load_verified(log.load_trust())], h.product, day(9))
    pages = dashboard_pages(state, Urls("atomic-host"), per_page=2)
    # Chunks of two from the oldest: [01 02] [03 04] [05]; the front page holds the
    # newest chunk and the one before it.
    assert [[r.compose_id[-10:-2] for r in p.rows] for p in pages] == [
        ["20180505", "20180504", "20180503"],
        ["20180502", "20180501"],
    ]
    assert [p.href for p in pages] == [
        "atomic-host/dashboard/index.html",
        "atomic-host/dashboard/page-1.html",
    ]
    assert (pages[0].prev_href, pages[0].next_href) == (None, "atomic-host/dashboard/page-1.html")
    assert (pages[1].prev_href, pages[1].next_href) == ("atomic-host/dashboard/index.html", None)
    assert (pages[0].front, pages[0].first, pages[0].last) == (True, "2018-05-03", "2018-05-05")
    assert (pages[1].front, pages[1].first, pages[1].last) == (False, "2018-05-01", "2018-05-02")
    assert DASHBOARD_PAGE == 50


def test_dashboard_older_pages_stay_put_as_composes_arrive(make_history: MakeHistory) -> None:
    """A new compose changes the front page only, except when a chunk fills up."""
    h = make_history()
    log = h.log.log
    seen: list[list[Any]] = []
    for n in range(9):
        h.compose(day(n))
        manifests = [v.manifest for v in log.load_verified(log.load_trust())]
        seen.append(dashboard_pages(derive(manifests, h.product, day(20)), Urls("a"), per_page=2))
    for n in range(1, 9):
        before, after = seen[n - 1], seen[n]
        changed = [p.href for p in after if p not in before]
        composes = n + 1
        if composes % 2 == 1 and composes >= 5:  # a third chunk starts: a page comes out
            assert changed[0] == "a/dashboard/index.html"
            assert len(changed) in (2, 3)  # and the page before it now links it
            assert len(after) == len(before) + 1
        else:
            assert changed == ["a/dashboard/index.html"], n
            assert len(after) == len(before)
    last = seen[-1]
    assert [len(p.rows) for p in last] == [3, 2, 2, 2]
    assert [p.href for p in last][1:] == [f"a/dashboard/page-{n}.html" for n in (3, 2, 1)]


def test_a_bad_manifest_fails_the_build_and_writes_nothing(
    current_site: tuple[History, Path],
) -> None:
    h, out = current_site
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    h.compose(day(15))
    target = h.log.repo / "manifests/atomic-host/composes/Fedora-Atomic-28-20180516.0.json"
    target.write_text(target.read_text().replace('"respin": 0', '"respin": 1'))
    with pytest.raises(VerificationError, match="Fedora-Atomic-28-20180516.0.json"):
        h.build(out, day(16))
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_pelican_warnings_are_fatal(current_site: tuple[History, Path], tmp_path: Path) -> None:
    h, _ = current_site
    content = tmp_path / "content"
    (content / "pages").mkdir(parents=True)
    (content / "pages" / "untitled.md").write_text("No title metadata here.\n")
    with pytest.raises(SiteError, match="untitled.md"):
        h.build(tmp_path / "out2", day(15), overrides={"PATH": str(content)})


def test_cloud_base_product_from_real_cloud_27_metadata(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    """The shipped cloud-base product selects the Cloud_Base images of the real Cloud 27 compose."""
    h = make_history()
    repo = h.log.repo
    (repo / "manifests/cloud-base").mkdir()
    shutil.copy(ROOT / "manifests/cloud-base/product.toml", repo / "manifests/cloud-base/")
    h.log.git("add", "manifests/cloud-base")
    h.log.git("commit", "-qm", "product: cloud-base")
    compose_root = tmp_path / "Fedora-Cloud-27-20180317.0"
    meta = compose_root / "compose/metadata"
    meta.mkdir(parents=True)
    shutil.copy(
        FIXTURES / "fedimg-vcr-Fedora-Cloud-27-20180317.0-composeinfo.json",
        meta / "composeinfo.json",
    )
    shutil.copy(
        FIXTURES / "fedimg-vcr-Fedora-Cloud-27-20180317.0-images.json", meta / "images.json"
    )
    env = {**h.log.env}
    rec = run_invoke(
        "compose.record",
        "--repo",
        str(repo),
        "--product",
        "cloud-base",
        "--source",
        str(compose_root),
        "--skip-checksums",
        env=env,
    )
    assert rec.returncode == 0, rec.stderr
    scenario_current(h)
    out = tmp_path / "out"
    build = run_invoke("site.build", "--repo", str(repo), "--output", str(out))
    assert build.returncode == 0, build.stderr
    assert "built: atomic-host, cloud-base" in build.stdout
    nav = Page(out / "index.html")
    assert nav.href("Fedora Cloud Base") == "cloud-base/index.html"
    dash = Page(out / "cloud-base/dashboard/index.html")
    assert "Fedora-Cloud-27-20180317.0" in dash.text, rec.stdout
    compose = Page(out / "cloud-base/composes/Fedora-Cloud-27-20180317.0.html")
    images = json.loads(
        (FIXTURES / "fedimg-vcr-Fedora-Cloud-27-20180317.0-images.json").read_text()
    )
    cloud_base = [
        i
        for arch in images["payload"]["images"]["CloudImages"].values()
        for i in arch
        if i["subvariant"] == "Cloud_Base" and i["type"] in ("qcow2", "raw-xz")
    ]
    assert cloud_base
    for img in cloud_base:
        assert img["checksums"]["sha256"] in compose.text
    assert (out / "streams/cloud-base.json").is_file()
    assert (out / "feeds/cloud-base.atom").is_file()


def test_site_build_task_reports_and_fails_closed(
    current_site: tuple[History, Path], tmp_path: Path
) -> None:
    h, _ = current_site
    out = tmp_path / "task-out"
    ok = run_invoke(
        "site.build", "--repo", str(h.log.repo), "--output", str(out), "--at", "2018-05-16"
    )
    assert ok.returncode == 0, ok.stderr
    assert "built: atomic-host" in ok.stdout
    target = next((h.log.repo / "manifests/atomic-host/releases").glob("*.json"))
    target.write_text(target.read_text().replace("release", "relaese", 1))
    bad = run_invoke(
        "site.build", "--repo", str(h.log.repo), "--output", str(out), "--at", "2018-05-16"
    )
    assert bad.returncode == 4
    assert (
        bad.stderr.strip().splitlines() == [bad.stderr.strip().splitlines()[0]]
        and target.name in bad.stderr
    )
    assert "Traceback" not in bad.stderr
    at = run_invoke("site.build", "--repo", str(h.log.repo), "--at", "yesterday-ish")
    assert at.returncode == 2 and "--at yesterday-ish" in at.stderr


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://dl.example.org/x.qcow2", True),
        ("http://127.0.0.1:8000/composes/x.qcow2", True),
        ("/composes/Fedora-Atomic-28-20180514.0/compose/x.qcow2", True),
        ("composes/x.qcow2", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("http:evil", False),
        ("", False),
    ],
)
def test_only_safe_urls_become_links(url: str, kept: bool) -> None:
    assert (http_url(url) == url) is kept


def _log_manifests(h: History) -> dict[Path, os.stat_result]:
    """The manifests (the root chain, like trust.json, log.idx and the checkpoints, is
    published as copies)."""
    root = h.log.repo / "manifests"
    skip = {"schema", "trust", "checkpoints"}
    return {
        p: p.stat()
        for p in root.rglob("*.json")
        if not skip & set(p.relative_to(root).parts[:1]) and p.parent != root
    }


def test_the_mirror_links_the_blob_store_and_leaves_the_work_tree_alone(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    """Published manifests are links to the blob store's files, not to the work tree's:
    the work tree's files keep their ctime (git would re-read every changed one at each
    status), and an edit made in place in the work tree cannot reach the site."""
    h = make_history()
    now = scenario_current(h)
    before = _log_manifests(h)
    out = tmp_path / "out"
    h.build(out, now)
    after = _log_manifests(h)
    assert {p: s.st_ctime_ns for p, s in after.items()} == {
        p: s.st_ctime_ns for p, s in before.items()
    }
    store = BlobStore.of(h.log.repo / ".git")
    repo = h.log.repo
    for path in before:
        rel = path.relative_to(repo).as_posix()
        published = out / rel
        blob = h.log.git("rev-parse", f"HEAD:{rel}").strip()
        assert published.read_bytes() == path.read_bytes()
        assert published.stat().st_ino == os.stat(store.path(blob)).st_ino != path.stat().st_ino
        assert git_blob_id(Path(store.path(blob)).read_bytes()) == blob
        assert os.stat(store.path(blob)).st_mode & 0o222 == 0  # read-only
    # An in-place edit of a work-tree file leaves the published bytes as they were.
    victim = next(iter(before))
    published_bytes = (out / victim.relative_to(repo)).read_bytes()
    with open(victim, "r+b") as f:
        f.write(b" ")
    assert (out / victim.relative_to(repo)).read_bytes() == published_bytes


def test_the_blob_store_refills_and_stores_only_matching_bytes(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    h = make_history()
    now = scenario_current(h)
    repo = h.log.repo
    store = BlobStore.of(repo / ".git")
    h.build(tmp_path / "first", now)
    held = store.held()
    assert len(held) == len(_log_manifests(h))
    # Deleted with the rest of the cache: the next build stores every blob again.
    shutil.rmtree(repo / ".git" / CACHE_DIR)
    h.build(tmp_path / "second", now)
    assert store.held() == held
    # A file whose bytes are not its blob any more is not stored.
    name, blob = "a/x.json", "0" * 40
    (repo / "manifests/a").mkdir()
    (repo / "manifests/a/x.json").write_bytes(b"{}")
    assert blob not in store.fill({name: blob}, repo / "manifests")
    assert not os.path.exists(store.path(blob))
    # Without the cache there is no store: the mirror links the work tree's files.
    shutil.rmtree(repo / ".git" / CACHE_DIR)
    out = tmp_path / "nocache"
    h.build(out, now, cache=False)
    assert not (repo / ".git" / CACHE_DIR).exists()
    one = next(iter(_log_manifests(h)))
    assert (out / one.relative_to(repo)).stat().st_ino == one.stat().st_ino
