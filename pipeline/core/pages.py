"""What the site shows, computed from derived state: plain values the templates only print.

Pure functions over :class:`pipeline.core.state.State` (no I/O, no Pelican, no Jinja): the
download page with its banners, the dashboard rows, compose, bug and archive pages, the
stream document, the Atom feed entries and the "latest" pointers. Templates compose
these values; they never decide anything (STYLE.md: values computed in Python).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import CloudImage, CloudImagesManifest, Image
from pipeline.core.state import BugView, ComposeView, ReleaseView, State, SuiteView

#: How each image type is offered, in page order. Types not listed come after, as is.
TYPE_LABELS: dict[str, str] = {
    "qcow2": "Cloud image (qcow2)",
    "raw-xz": "Cloud image (raw, xz-compressed)",
    "vagrant-libvirt": "Vagrant box for libvirt/KVM",
    "vagrant-virtualbox": "Vagrant box for VirtualBox",
    "dvd-ostree": "Installer ISO",
    "boot": "Network installer ISO",
    "live": "Live ISO",
}
VAGRANT_TYPES = frozenset({"vagrant-libvirt", "vagrant-virtualbox"})
LAUNCH_URL = (
    "https://console.aws.amazon.com/ec2/v2/home?region={region}#LaunchInstanceWizard:ami={ami}"
)
#: Rows per dashboard page.
DASHBOARD_PAGE = 50


# --- small formatting helpers -------------------------------------------------------------


def human_size(size: int) -> str:
    """``1.2 GiB``: binary units, one decimal above KiB."""
    if size < 1024:
        return f"{size} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    exp = min(int(math.log(size, 1024)), len(units))
    return f"{size / 1024**exp:.1f} {units[exp - 1]}"


def iso(ts: datetime) -> str:
    """``2018-05-15T10:00:00Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose_date(compose_date_field: str) -> str:
    """``20180515`` to ``2018-05-15``."""
    d = compose_date_field
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def age(days: int) -> str:
    """``today``, ``1 day ago``, ``12 days ago``."""
    if days <= 0:
        return "today"
    return "1 day ago" if days == 1 else f"{days} days ago"


@functools.cache
def region_names() -> dict[str, str]:
    """AWS region code to its name (``eu-west-1``: ``Europe (Ireland)``), from botocore's data."""
    import botocore.session  # noqa: PLC0415 - loaded only for products with AMIs (~0.3 s)

    data = botocore.session.get_session().get_data("endpoints")
    return {
        code: str(region.get("description", code))
        for partition in data.get("partitions", [])
        for code, region in partition.get("regions", {}).items()
    }


# --- URLs inside the site -----------------------------------------------------------------


class Urls:
    """Where each page and file of a product lives, relative to the site root."""

    def __init__(self, product: str) -> None:
        self.product = product

    def download(self) -> str:
        return f"{self.product}/index.html"

    def dashboard(self, chunk: int | None = None) -> str:
        """The dashboard's front page, or the archive page of ``chunk`` (1: the oldest)."""
        name = "index.html" if chunk is None else f"page-{chunk}.html"
        return f"{self.product}/dashboard/{name}"

    def compose(self, compose_id: str) -> str:
        return f"{self.product}/composes/{compose_id}.html"

    def bug(self, bug: str) -> str:
        return f"{self.product}/bugs/{bug}.html"

    def archive(self) -> str:
        return f"{self.product}/releases/index.html"

    def release_anchor(self, release_id: str) -> str:
        return f"{self.archive()}#release-{release_id}"

    def checksum(self, release_id: str) -> str:
        return f"{self.product}/releases/{release_id}/CHECKSUM"

    def sha256sums(self, release_id: str) -> str:
        return f"{self.product}/releases/{release_id}/SHA256SUMS"

    def stream(self) -> str:
        return f"streams/{self.product}.json"

    def feed(self) -> str:
        return f"feeds/{self.product}.atom"

    def latest(self, arch: str, image_type: str) -> str:
        return f"latest/{self.product}/{arch}/{image_type}/index.html"

    def latest_name(self, arch: str, image_type: str) -> str:
        return f"latest/{self.product}/{arch}/{image_type}/latest"

    def log(self, log_path: str) -> str:
        return f"logs/{log_path}"

    @staticmethod
    def manifest(manifest: Manifest) -> str:
        return f"manifests/{manifest.relname()}"


def http_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) URL or has no scheme at all (``/composes/…``), else None:
    never a ``javascript:`` or ``data:`` link."""
    if not url:
        return None
    head = url.split("/", 1)[0]
    if ":" not in head:
        return url  # relative or root-relative: no scheme to abuse
    scheme = head.split(":", 1)[0].lower()
    return url if scheme in ("http", "https") and url[len(scheme) :].startswith("://") else None


def safe_relpath(path: str) -> bool:
    """A relative path that stays inside its folder (no ``..``, not absolute, no NUL)."""
    if not path or "\0" in path or path.startswith("/"):
        return False
    return ".." not in path or ".." not in path.split("/")


# --- the download page ----------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A labelled link; ``href`` is site-relative unless ``external``."""

    label: str
    href: str
    external: bool = False


@dataclass(frozen=True)
class Banner:
    """A notice above the downloads: ``stale``, ``withdrawn``, ``prerelease`` or ``none``."""

    kind: str
    title: str
    text: str
    links: list[Link] = field(default_factory=list)


@dataclass(frozen=True)
class Download:
    """One image file offered for download."""

    type: str
    label: str
    filename: str
    url: str
    size: int
    size_h: str
    sha256: str
    latest: str
    vagrant_hint: str | None


@dataclass(frozen=True)
class AmiRow:
    """One row of the EC2 table."""

    region: str
    region_name: str
    ami_id: str
    launch_url: str


@dataclass(frozen=True)
class ArchSection:
    """Everything offered for one arch."""

    arch: str
    downloads: list[Download]
    amis: list[AmiRow]


@dataclass(frozen=True)
class CurrentRelease:
    """The release on offer."""

    release_id: str
    compose_id: str
    compose_date: str
    released: str  # YYYY-MM-DD
    age: str
    base: str
    prerelease: bool
    explanation: str
    considered: list[tuple[str, str, str, str]]  # (compose id, status, verdict, reason)
    manifest: str


@dataclass(frozen=True)
class DownloadPage:
    """The product's download page."""

    title: str
    display_name: str
    base: str
    current: CurrentRelease | None
    arches: list[ArchSection]
    banners: list[Banner]
    next_release_day: str
    checksum: str | None
    sha256sums: str | None


def download_page(state: State) -> DownloadPage:
    """The download page: the current release, its files and AMIs, and every banner."""
    urls = Urls(state.product.name)
    product = state.product
    current = state.current
    base = current.manifest.base.label() if current else product.base.label()
    compose = state.current_compose
    cur = None
    arches: list[ArchSection] = []
    if current is not None and compose is not None:
        released = current.manifest.created.astimezone(UTC).date()
        cur = CurrentRelease(
            release_id=current.release_id,
            compose_id=compose.compose_id,
            compose_date=compose_date(compose.compose.date),
            released=released.isoformat(),
            age=age((state.now.astimezone(UTC).date() - released).days),
            base=base,
            prerelease=current.manifest.base.prerelease is not None,
            explanation=current.manifest.explanation,
            considered=[
                (c.compose_id, c.status, c.verdict, c.reason) for c in current.manifest.considered
            ],
            manifest=urls.manifest(current.manifest),
        )
        arches = arch_sections(
            compose.compose.images, state.clouds.get(compose.compose_id), compose, urls
        )
    return DownloadPage(
        title=f"{product.display_name}, based on {base}",
        display_name=product.display_name,
        base=base,
        current=cur,
        arches=arches,
        banners=banners(state, urls),
        next_release_day=state.next_release_day.isoformat(),
        checksum=urls.checksum(current.release_id) if cur and current else None,
        sha256sums=urls.sha256sums(current.release_id) if cur and current else None,
    )


def _type_rank(image_type: str) -> tuple[int, str]:
    order = list(TYPE_LABELS)
    return (order.index(image_type) if image_type in order else len(order), image_type)


def arch_sections(
    images: Sequence[Image],
    clouds: CloudImagesManifest | None,
    compose: ComposeView,
    urls: Urls,
) -> list[ArchSection]:
    """Per arch: the image files in page order, and the public AMIs by region."""
    by_arch: dict[str, list[Image]] = defaultdict(list)
    for img in images:
        by_arch[img.arch].append(img)
    amis: dict[str, list[CloudImage]] = defaultdict(list)
    if clouds is not None:
        for ami in clouds.images:
            if ami.public:
                amis[ami.arch].append(ami)
    names = region_names() if amis else {}
    sections = []
    # x86_64 first (most users want it), then the others by name.
    for arch in sorted(set(by_arch) | set(amis), key=lambda a: (a != "x86_64", a)):
        downloads = [
            Download(
                type=img.type,
                label=TYPE_LABELS.get(img.type, img.type),
                filename=img.filename,
                url=http_url(img.url) or "",
                size=img.size,
                size_h=human_size(img.size),
                sha256=img.checksums.sha256,
                latest=urls.latest(arch, img.type),
                vagrant_hint=(
                    f"vagrant box add --name {compose.compose_id} {img.url}"
                    if img.type in VAGRANT_TYPES
                    else None
                ),
            )
            for img in sorted(by_arch[arch], key=lambda i: (*_type_rank(i.type), i.filename))
        ]
        rows = [
            AmiRow(
                region=a.region,
                region_name=names.get(a.region, a.region),
                ami_id=a.ami_id,
                launch_url=LAUNCH_URL.format(region=a.region, ami=a.ami_id),
            )
            for a in sorted(amis[arch], key=lambda a: a.region)
        ]
        sections.append(ArchSection(arch, downloads, rows))
    return sections


def banners(state: State, urls: Urls) -> list[Banner]:
    """The notices the page shows, most important first."""
    out: list[Banner] = []
    current = state.current
    fresh = state.freshness
    open_bug = state.open_bugs[-1] if state.open_bugs else None
    failure_bug = [bug_link(open_bug, urls, f"Failure bug {open_bug.bug}")] if open_bug else []
    if current is None:
        out.append(
            Banner(
                "none",
                "No image has been released yet",
                "Nothing has passed its tests on a release day so far. "
                f"The next release day is {state.next_release_day.isoformat()}.",
                [*failure_bug, Link("Nightly test results", urls.dashboard())],
            )
        )
    elif fresh.stale:
        out.append(
            Banner(
                "stale",
                "This image is stale",
                f"{_sentence(fresh.reason or 'no fresh image')}. Showing the previous image, "
                f"released {current.released.astimezone(UTC).date().isoformat()}.",
                [
                    *failure_bug,
                    Link(
                        f"Previous release {current.release_id}",
                        urls.release_anchor(current.release_id),
                    ),
                    Link("Nightly test results", urls.dashboard()),
                ],
            )
        )
    newer_withdrawn = [
        r
        for r in state.withdrawn
        if current is None or (r.manifest.cycle, r.manifest.sequence) > _order(current)
    ]
    for r in reversed(newer_withdrawn):
        showing = (
            f"Showing the previous good release, {current.release_id}."
            if current
            else "There is no earlier good release to show."
        )
        out.append(
            Banner(
                "withdrawn",
                f"Release {r.release_id} was withdrawn",
                f"The image of release {r.release_id} (compose {r.manifest.compose_id}) "
                f"is bad: {r.fallen}. Do not use it. {showing}",
                [
                    Link(f"Withdrawn release {r.release_id}", urls.release_anchor(r.release_id)),
                    *(
                        [Link("Why", url, True)]
                        if r.revocation and (url := http_url(r.revocation.reason_url))
                        else []
                    ),
                ],
            )
        )
    if current is not None and current.manifest.base.prerelease:
        label = current.manifest.base.label()
        out.append(
            Banner(
                "prerelease",
                f"Based on a prerelease: {label}",
                f"This image is based on {label}, which is not a final Fedora release yet. "
                "Expect rough edges, and report what you find.",
            )
        )
    return out


def _order(r: ReleaseView) -> tuple[str, int]:
    return (r.manifest.cycle, r.manifest.sequence)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _named_bug_link(state: State, bug: str, url: str, urls: Urls) -> Link:
    """The bug a release decision names: as :func:`bug_link` when the log knows it, else
    its recorded URL."""
    view = state.bugs.get(bug)
    if view is not None:
        return bug_link(view, urls)
    return Link(bug, http_url(url) or "", True)


def bug_link(bug: BugView, urls: Urls, label: str | None = None) -> Link:
    """A link to a bug (labelled with its name unless ``label``): see :func:`bug_href`."""
    return Link(label or bug.bug, bug_href(bug, urls), bug.backend != "local")


def bug_href(bug: BugView, urls: Urls) -> str:
    """A local bug's page in the site, or the external tracker's URL."""
    return urls.bug(bug.bug) if bug.backend == "local" else (http_url(bug.url) or "")


# --- dashboard, compose and bug pages -------------------------------------------------------


@dataclass(frozen=True)
class SuiteCell:
    """One suite's result on one compose, blocking and advisory kept apart."""

    name: str
    verdict: str
    blocking_failed: int
    advisory_failed: int
    waived: int


@dataclass(frozen=True)
class ComposeRow:
    """One row of the dashboard."""

    compose_id: str
    href: str
    date: str
    status: str
    suites: list[SuiteCell]
    notes: list[str]
    bugs: list[Link]


@dataclass(frozen=True)
class DashboardPage:
    """One page of the nightly history, newest first.

    ``first`` and ``last`` are the dates of its oldest and newest composes;
    ``prev_href`` links newer composes, ``next_href`` older ones.
    """

    front: bool
    first: str
    last: str
    rows: list[ComposeRow]
    href: str
    prev_href: str | None
    next_href: str | None


def compose_bugs(state: State, urls: Urls) -> dict[str, list[Link]]:
    """Per compose id, the bugs that reported it."""
    out: dict[str, list[Link]] = defaultdict(list)
    for bug in state.bugs.values():
        for cid in sorted(bug.composes):
            out[cid].append(bug_link(bug, urls))
    return out


def suite_cells(view: ComposeView) -> list[SuiteCell]:
    """The suites of a compose, by name."""
    return [
        SuiteCell(
            s.name,
            s.verdict,
            len(s.blocking_failures),
            len(s.advisory_failures),
            len(s.waived),
        )
        for s in view.suites.values()
    ]


def compose_notes(view: ComposeView) -> list[str]:
    """Manual fails, waivers, and a no-image reason: what a reader must not miss."""
    notes = [f"failed by {v.operator}: {v.reason}" for v in view.verdicts if v.action == "fail"]
    notes += [
        f"{v.test or 'all tests'} waived by {v.operator}: {v.reason}"
        for v in view.verdicts
        if v.action == "waive"
    ]
    if view.status == "no-image":
        notes.append(f"no image: {view.compose.reason}")
    return notes


def dashboard_pages(
    state: State, urls: Urls, per_page: int = DASHBOARD_PAGE
) -> list[DashboardPage]:
    """The nightly history, newest first: the front page, then older pages (at least one page).

    The history is cut into chunks of ``per_page`` composes counted from the oldest, so a
    chunk never changes once full: older pages are the full chunks (``page-1.html`` the
    oldest), and the front page holds the newest chunk and the one before it (between
    ``per_page`` + 1 and 2 x ``per_page`` rows once there are that many). A new compose
    changes the front page, and once every ``per_page`` composes the page that comes out
    of it and the one that links it: not every page, as counting from the newest would.
    """
    bugs = compose_bugs(state, urls)
    composes = state.composes  # oldest first
    count = max(1, math.ceil(len(composes) / per_page))
    chunks = [composes[i * per_page : (i + 1) * per_page] for i in range(count)]
    # Newest first: (chunk number of the page, or None for the front page; its composes).
    plan: list[tuple[int | None, list[ComposeView]]] = [
        (None, [v for chunk in chunks[-2:] for v in chunk])
    ]
    plan += [(n, chunks[n - 1]) for n in range(count - 2, 0, -1)]
    hrefs = [urls.dashboard(n) for n, _ in plan]
    pages = []
    for i, (n, views) in enumerate(plan):
        rows = [
            ComposeRow(
                compose_id=v.compose_id,
                href=urls.compose(v.compose_id),
                date=compose_date(v.compose.date),
                status=v.status,
                suites=suite_cells(v),
                notes=compose_notes(v),
                bugs=bugs.get(v.compose_id, []),
            )
            for v in reversed(views)
        ]
        pages.append(
            DashboardPage(
                front=n is None,
                first=rows[-1].date if rows else "",
                last=rows[0].date if rows else "",
                rows=rows,
                href=hrefs[i],
                prev_href=hrefs[i - 1] if i > 0 else None,
                next_href=hrefs[i + 1] if i + 1 < len(hrefs) else None,
            )
        )
    return pages


class ResultRow(NamedTuple):
    """One test's latest result on one image (a named tuple, not a frozen dataclass: a
    ten-year history has a hundred thousand rows, and a tuple is made several times faster)."""

    name: str
    image: str
    blocking: bool
    outcome: str
    reason: str | None
    duration: str
    log: str | None
    waived: str | None
    tail: str | None


@dataclass(frozen=True)
class SuiteDetail:
    """A suite's detail on the compose page."""

    name: str
    verdict: str
    runs: list[tuple[str, str, str]]  # (run id, runner, manifest href)
    blocking: list[ResultRow]
    advisory: list[ResultRow]
    missing: list[str]


@dataclass(frozen=True)
class ComposePage:
    """Everything about one compose."""

    compose_id: str
    date: str
    status: str
    reasons: list[str]
    notes: list[str]
    images: list[tuple[str, str, str, str, str]]  # (arch, type, filename, size, sha256)
    suites: list[SuiteDetail]
    bugs: list[Link]
    release: str | None
    manifest: str
    log_url: str | None


def compose_page(
    state: State,
    view: ComposeView,
    urls: Urls,
    bugs: dict[str, list[Link]],
    releases: dict[str, str],
    has_log: Callable[[str], bool],
) -> ComposePage:
    """The page of one compose; ``has_log`` says whether a log path is in the log store."""
    c = view.compose
    return ComposePage(
        compose_id=view.compose_id,
        date=compose_date(c.date),
        status=view.status,
        reasons=view.reasons,
        notes=compose_notes(view),
        images=[
            (i.arch, i.type, i.filename, human_size(i.size), i.checksums.sha256)
            for i in sorted(c.images, key=lambda i: (i.arch, *_type_rank(i.type)))
        ],
        suites=[_suite_detail(s, urls, has_log) for s in view.suites.values()],
        bugs=bugs.get(view.compose_id, []),
        release=releases.get(view.compose_id),
        manifest=urls.manifest(c),
        log_url=http_url(c.log_url),
    )


def _suite_detail(s: SuiteView, urls: Urls, has_log: Callable[[str], bool]) -> SuiteDetail:
    rows = []
    for t in s.results:
        case = t.case
        log = case.log.path if case.log and safe_relpath(case.log.path) else None
        rows.append(
            ResultRow(
                name=case.name,
                image=f"{case.image.arch} {case.image.type}" if case.image else "",
                blocking=case.blocking,
                outcome=case.outcome,
                reason=case.reason,
                duration=f"{case.duration_ms / 1000:.1f} s",
                log=urls.log(log) if log and has_log(log) else None,
                waived=(
                    f"waived by {t.waived_by.operator}: {t.waived_by.reason}"
                    if t.waived_by
                    else None
                ),
                tail=case.log.tail if case.log and case.outcome == "FAILED" else None,
            )
        )
    rows.sort(key=lambda r: (r.image, r.name))
    return SuiteDetail(
        name=s.name,
        verdict=s.verdict,
        runs=[(r.run, r.runner, urls.manifest(r)) for r in s.runs],
        blocking=[r for r in rows if r.blocking],
        advisory=[r for r in rows if not r.blocking],
        missing=s.missing,
    )


@dataclass(frozen=True)
class BugEvent:
    """One event of a local bug."""

    when: str
    action: str
    compose_id: str
    compose_href: str | None
    comment: str


@dataclass(frozen=True)
class BugPage:
    """A local tracker bug."""

    bug: str
    summary: str
    is_open: bool
    events: list[BugEvent]


def bug_page(bug: BugView, urls: Urls, known: set[str]) -> BugPage:
    """A local bug's page: its summary and every event, linking the composes."""
    return BugPage(
        bug=bug.bug,
        summary=bug.summary,
        is_open=bug.is_open,
        events=[
            BugEvent(
                when=iso(e.created),
                action=e.action,
                compose_id=e.compose_id,
                compose_href=urls.compose(e.compose_id) if e.compose_id in known else None,
                comment=e.comment,
            )
            for e in bug.events
        ],
    )


# --- release archive, feed, stream, latest --------------------------------------------------


@dataclass(frozen=True)
class ArchiveRow:
    """One release decision in the archive."""

    release_id: str
    anchor: str
    cycle: str
    decided: str
    kind: str  # image, stale, late, withdrawn
    compose_id: str | None
    compose_href: str | None
    explanation: str
    fallen: str | None
    bug: Link | None
    checksum: str | None
    sha256sums: str | None
    manifest: str
    current: bool


def archive_rows(state: State, urls: Urls) -> list[ArchiveRow]:
    """Every cycle's decision, newest first."""
    current = state.current
    known = {c.compose_id for c in state.composes}
    rows = []
    for r in reversed(state.releases):
        m = r.manifest
        if not r.is_release:
            kind = "stale"
        elif r.fallen is not None:
            kind = "withdrawn"
        elif m.sequence > 1 or m.created.astimezone(UTC).date() > date.fromisoformat(m.cycle):
            kind = "late"
        else:
            kind = "image"
        has_files = r.is_release and m.compose_id in known
        rows.append(
            ArchiveRow(
                release_id=r.release_id,
                anchor=f"release-{r.release_id}",
                cycle=m.cycle,
                decided=iso(m.created),
                kind=kind,
                compose_id=m.compose_id,
                compose_href=urls.compose(m.compose_id) if m.compose_id in known else None,
                explanation=m.explanation,
                fallen=r.fallen,
                bug=(
                    _named_bug_link(state, m.open_bug.bug, m.open_bug.url, urls)
                    if m.open_bug
                    else None
                ),
                checksum=urls.checksum(r.release_id) if has_files else None,
                sha256sums=urls.sha256sums(r.release_id) if has_files else None,
                manifest=urls.manifest(m),
                current=current is not None and r.release_id == current.release_id,
            )
        )
    return rows


def released_images(state: State) -> list[tuple[ReleaseView, list[Image]]]:
    """Each image release with its compose's images (for CHECKSUM and SHA256SUMS files)."""
    by_id = {c.compose_id: c for c in state.composes}
    out = []
    for r in state.releases:
        view = by_id.get(r.manifest.compose_id or "")
        if r.is_release and view is not None:
            out.append((r, view.compose.images))
    return out


@dataclass(frozen=True)
class FeedEntry:
    """One Atom entry: a release decision."""

    id: str
    title: str
    updated: str
    link: str
    summary: str


def feed_entries(state: State, urls: Urls, limit: int = 20) -> list[FeedEntry]:
    """The newest release decisions (of any kind), newest first."""
    out = []
    name = state.product.display_name
    for r in list(reversed(state.releases))[:limit]:
        m = r.manifest
        if r.is_release:
            title = f"{name} {r.release_id}: {m.compose_id}"
            if r.fallen:
                title += " (withdrawn)"
        else:
            title = f"{name} {r.release_id}: no new image (stale)"
        out.append(
            FeedEntry(
                id=f"fortnight:{state.product.name}:release:{r.release_id}",
                title=title,
                updated=iso(r.revocation.created if r.revocation else m.created),
                link=urls.release_anchor(r.release_id),
                summary=m.explanation + (f" Withdrawn: {r.fallen}." if r.fallen else ""),
            )
        )
    return out


def stream(state: State, site_url: str) -> dict[str, Any]:
    """The product's stream document, modelled on Fedora CoreOS stream metadata.

    ``architectures.<arch>.artifacts.<image type>.formats.<format>.disk`` holds the
    location, sha256 and size of each file; ``architectures.<arch>.images.aws.regions``
    the AMI per region. ``release`` adds what CoreOS streams do not carry: the release
    id and date, the stale flag and reason, and the path of the signed release manifest.
    """
    urls = Urls(state.product.name)
    current = state.current
    fresh = state.freshness
    compose = state.current_compose
    prefix = site_url.rstrip("/") + "/" if site_url else ""
    arches: dict[str, Any] = {}
    last_modified = current.manifest.created if current else None
    if current is not None and compose is not None:
        rel = current.release_id
        for img in sorted(compose.compose.images, key=lambda i: (i.arch, i.type, i.filename)):
            artifact = arches.setdefault(img.arch, {"artifacts": {}})["artifacts"].setdefault(
                img.type, {"release": rel, "formats": {}}
            )
            artifact["formats"][img.format] = {
                "disk": {"location": img.url, "sha256": img.checksums.sha256, "size": img.size}
            }
        clouds = state.clouds.get(compose.compose_id)
        if clouds is not None:
            for ami in sorted(clouds.images, key=lambda a: (a.arch, a.region)):
                if ami.public:
                    arch = arches.setdefault(ami.arch, {"artifacts": {}})
                    aws = arch.setdefault("images", {}).setdefault("aws", {"regions": {}})
                    aws["regions"][ami.region] = {"release": rel, "image": ami.ami_id}
            last_modified = max(last_modified or clouds.created, clouds.created)
    return {
        "stream": state.product.name,
        "metadata": {
            "last-modified": iso(last_modified) if last_modified else None,
            "generator": "fortnight",
        },
        "release": None
        if current is None
        else {
            "id": current.release_id,
            "compose-id": current.manifest.compose_id,
            "date": iso(current.manifest.created),
            "base": current.manifest.base.label(),
            "prerelease": current.manifest.base.prerelease is not None,
            "manifest": prefix + urls.manifest(current.manifest),
        },
        "stale": fresh.stale,
        "stale-reason": fresh.reason if fresh.stale else None,
        "architectures": arches,
    }


@dataclass(frozen=True)
class Latest:
    """A stable URL for the newest file of one arch and type."""

    path: str  # the redirect page
    name_path: str  # the text file holding the file name
    filename: str
    url: str


def latest_pointers(state: State) -> list[Latest]:
    """Per arch and image type of the current release: a redirect and a name file."""
    compose = state.current_compose
    if compose is None:
        return []
    urls = Urls(state.product.name)
    out = []
    seen: set[tuple[str, str]] = set()
    for img in sorted(compose.compose.images, key=lambda i: (i.arch, i.type, i.filename)):
        if (img.arch, img.type) in seen:
            continue  # several files of one type (e.g. multi-disc): the first one by name
        seen.add((img.arch, img.type))
        out.append(
            Latest(
                urls.latest(img.arch, img.type),
                urls.latest_name(img.arch, img.type),
                img.filename,
                img.url,
            )
        )
    return out


def release_of_compose(state: State) -> dict[str, str]:
    """Compose id to the id of the (newest) release that shipped it."""
    return {
        r.manifest.compose_id: r.release_id
        for r in state.releases
        if r.is_release and r.manifest.compose_id
    }


def local_bugs(state: State) -> Iterable[BugView]:
    """The bugs rendered as pages of the site (the local tracker's)."""
    return (b for b in state.bugs.values() if b.backend == "local")
