"""A release history for site tests, recorded through the real pipeline functions.

:class:`History` drives a real manifest log (signed, in git) the way the tasks do: composes
ingested from Pungi-shaped metadata (the real Fedora 28 images.json, with small, well-formed
image files), test results, the local tracker, release decisions, withdrawals and AMIs.
Each ``scenario_*`` function leaves the log in one of the states the download page must show.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pipeline.adapters.ingest import load_compose
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import (
    CloudImage,
    CloudImagesManifest,
    ComposeManifest,
    MissingRegion,
)
from pipeline.core.pages import region_names
from pipeline.demo.packages import write_rpms_json
from pipeline.log.writer import WriteOptions
from pipeline.site.build import build_site
from pipeline.site.output import BuildReport
from pipeline.stages.compose import build_compose_manifest, failed_compose_manifest
from pipeline.stages.release import cut_release, revoke_release
from pipeline.stages.tracking import make_tracker, sync_tracker
from tests.conftest import ROOT, ComposeTree, Log, make_result

#: Release days of the scenarios: the product's anchor, then every 14 days.
ANCHOR = datetime(2018, 5, 1, tzinfo=UTC)
OPTIONS = WriteOptions()


def product_toml(download_url: str, *, prerelease: str | None = None, name: str = "") -> bytes:
    """The shipped atomic-host product.toml, downloading from ``download_url``."""
    text = (ROOT / "manifests/atomic-host/product.toml").read_text()
    text = text.replace(
        'download_url = "https://kojipkgs.fedoraproject.org/compose/twoweek/{compose_id}/compose/"',
        f'download_url = "{download_url}"',
    )
    if prerelease:
        text = text.replace('# prerelease = "Beta"', f'prerelease = "{prerelease}"')
    if name:
        text = text.replace('display_name = "Fedora Atomic Host"', f'display_name = "{name}"')
    return text.encode()


@dataclass
class History:
    """A product's history in a real log, recorded day by day."""

    log: Log
    make_tree: Callable[..., ComposeTree]
    product_name: str = "atomic-host"
    composes: dict[str, ComposeManifest] = field(default_factory=dict)

    @property
    def product(self) -> ProductConfig:
        return load_product(self.log.log.root, self.product_name)

    def record(self, manifests: Sequence[Manifest], message: str) -> None:
        log = self.log.log
        role = manifests[0].ROLE
        log.record(manifests, [self.log.signers[role]], log.load_trust(), message, OPTIONS)

    def compose(
        self,
        day: datetime,
        *,
        fail: Sequence[str] = (),
        compose_id: str | None = None,
        tested: bool = True,
        night: int | None = None,
    ) -> ComposeManifest:
        """A nightly compose on ``day`` (Fedora 28 AtomicHost images), tested at once; with
        the demo's package list of ``night`` in an rpms.json when ``night`` is given."""
        cid = compose_id or f"Fedora-Atomic-28-{day:%Y%m%d}.0"
        tree = self.make_tree(cid)
        if night is not None:
            arches = tuple(tree.images["payload"]["images"]["AtomicHost"])
            write_rpms_json(tree.compose_dir, cid, night=night, arches=arches)
        loaded = load_compose(str(tree.root))
        manifest = build_compose_manifest(loaded, self.product, day, checksums_verified=True)
        self.record([manifest], f"compose: {cid}")
        self.composes[cid] = manifest
        if tested:
            result = make_result(manifest, fail=fail, started=day + timedelta(hours=1))
            self.record([result], f"test: {cid}")
        return manifest

    def sync(self, at: datetime) -> None:
        """tracker.sync with the local tracker."""
        product = self.product
        sync_tracker(
            self.log.log,
            product,
            signers=[self.log.signers["release"]],
            options=OPTIONS,
            now=at,
            backend_for=lambda state: make_tracker(product, state, {}),
        )

    def cut(self, at: datetime) -> None:
        """release.cut at ``at``."""
        cut_release(
            self.log.log, self.product, at, signers=[self.log.signers["release"]], options=OPTIONS
        )

    def revoke(self, release_id: str, reason: str, at: datetime, url: str | None = None) -> None:
        """release.revoke."""
        revoke_release(
            self.log.log,
            self.product,
            release_id,
            reason=reason,
            reason_url=url,
            operator="dusty",
            signers=[self.log.signers["release"]],
            options=OPTIONS,
            now=at,
        )

    def amis(
        self, compose: ComposeManifest, regions: dict[str, str], at: datetime, private: str = ""
    ) -> None:
        """A cloud-images manifest: x86_64 AMIs in ``regions`` (code: ami id)."""
        images = [
            CloudImage(
                arch="x86_64",
                region=region,
                ami_id=ami,
                name=f"{compose.compose_id}-x86_64-hvm-{region}-gp2",
                virtualization_type="hvm",
                volume_type="gp2",
                public=region != private,
            )
            for region, ami in regions.items()
        ]
        manifest = CloudImagesManifest(
            product=compose.product,
            created=at,
            compose_id=compose.compose_id,
            run=1,
            images=images,
            missing=[MissingRegion(region="ap-south-1", reason="no image found")],
        )
        self.record([manifest], f"clouds: {compose.compose_id}")

    def build(self, out: Path, at: datetime, **kwargs: Any) -> BuildReport:
        """site.build --at ``at`` into ``out``."""
        kwargs.setdefault("site_signers", [self.log.signers["site"]])
        return build_site(ROOT / "pelicanconf.py", self.log.repo, out, at=at, **kwargs)


REGIONS = {"us-east-1": "ami-0a1b2c3d4e5f60718", "eu-west-1": "ami-0badc0ffee0ddf00d"}


def day(n: int, hour: int = 3) -> datetime:
    """Day ``n`` counted from the anchor (day 0 is the first release day)."""
    return ANCHOR + timedelta(days=n, hours=hour)


def scenario_current(h: History) -> datetime:
    """Two good cycles: the page offers the newer release, with AMIs. Returns "now"."""
    h.compose(day(-1))
    h.cut(day(0, 12))
    good = h.compose(day(13))
    h.amis(good, REGIONS, day(13, 6), private="eu-west-1")
    h.cut(day(14, 12))
    return day(15, 12)


def scenario_stale(h: History) -> datetime:
    """A good release, then a whole cycle of failures: stale, with the failure bug."""
    h.compose(day(-1))
    h.cut(day(0, 12))
    for n in (12, 13):
        h.compose(day(n), fail=["checksum"])
        h.sync(day(n, 6))
    h.cut(day(14, 12))
    return day(15, 12)


def scenario_withdrawn(h: History) -> datetime:
    """Two releases, the newer withdrawn: the page falls back and warns."""
    h.compose(day(-1))
    h.cut(day(0, 12))
    h.compose(day(13))
    h.cut(day(14, 12))
    h.revoke("2018-05-15", "the image does not boot on EC2", day(15), "https://bugzilla.example/1")
    return day(15, 12)


def scenario_none(h: History) -> datetime:
    """Nothing ever passed: no release yet, a stale decision and an open bug."""
    h.compose(day(-1), fail=["format"])
    h.sync(day(-1, 6))
    h.cut(day(0, 12))
    return day(1, 12)


def scenario_busy(h: History) -> datetime:
    """Every night of 12 weeks has a compose (all but two DOOMED); two releases with
    package lists; AMIs in every region: the heaviest download page a real product makes."""
    h.compose(day(-1), night=0)
    h.cut(day(0, 12))
    reason = "Pungi status DOOMED: an image build failed"
    doomed = [
        failed_compose_manifest(
            h.product, f"Fedora-Atomic-28-{day(n):%Y%m%d}.0", reason, None, day(n)
        )
        for n in range(-70, 15)
        if n not in (-1, 13)
    ]
    h.record(doomed, "compose: doomed nights")
    good = h.compose(day(13), night=30)
    codes = [c for c in sorted(region_names()) if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", c)]
    h.amis(good, {code: f"ami-{n:017x}" for n, code in enumerate(codes[:34])}, day(13, 6))
    h.cut(day(14, 12))
    return day(14, 13)


def two_products(h: History) -> datetime:
    """atomic-host's current scenario plus a cloud-base product with one compose."""
    repo = h.log.repo
    (repo / "manifests/cloud-base").mkdir()
    shutil.copy(ROOT / "manifests/cloud-base/product.toml", repo / "manifests/cloud-base/")
    h.log.git("add", "manifests/cloud-base")
    h.log.git("commit", "-qm", "product: cloud-base")
    now = scenario_current(h)
    cloud = History(h.log, h.make_tree, product_name="cloud-base")
    doomed = failed_compose_manifest(
        cloud.product, "Fedora-Cloud-28-20180515.0", "DOOMED", None, day(14)
    )
    cloud.record([doomed], "compose: doomed")
    return now


class Page(HTMLParser):
    """Links, text and banners of one HTML page."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.banners: list[str] = []
        self.metas: list[dict[str, str]] = []
        self.text_parts: list[str] = []
        self._href: str | None = None
        self._link_text: list[str] = []
        self.feed(path.read_text())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self._href, self._link_text = a["href"], []
        if "data-banner" in a:
            self.banners.append(a["data-banner"])
        if tag == "meta":
            self.metas.append(a)
        if tag == "link" and "href" in a:
            self.links.append((a["href"], ""))
        if tag == "script" and "src" in a:
            self.links.append((a["src"], ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._link_text).strip()))
            self._href = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._href is not None:
            self._link_text.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_parts))

    def href(self, text: str) -> str:
        return next(h for h, t in self.links if t == text)


def internal_targets(out: Path) -> list[tuple[Path, str]]:
    """Every (page, relative link) in the built site whose target is missing."""
    broken = []
    for html in out.rglob("*.html"):
        for href, _ in Page(html).links:
            if re.match(r"^[a-z]+:", href) or href.startswith(("#", "//")):
                continue
            target = (html.parent / href.split("#")[0]).resolve()
            if not target.exists():
                broken.append((html, href))
    return broken
