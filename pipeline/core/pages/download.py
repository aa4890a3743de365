"""The download page: the current release, its files and AMIs, and the banners above them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

from pipeline.core.models.manifests import CloudImage, CloudImagesManifest, Image
from pipeline.core.pages.formatting import age, compose_date, http_url, region_names
from pipeline.core.pages.history import HistoryPicture, history_picture
from pipeline.core.pages.links import Link, Urls, bug_link
from pipeline.core.pages.notes import ReleaseNotes, release_notes
from pipeline.core.pages.ostree import OstreeSection, ostree_section
from pipeline.core.state import ComposeView, ReleaseView, State
from pipeline.core.units import human_size

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
    #: Blocking tests that failed on the image and an operator waived, said plainly.
    waived: list[str] = field(default_factory=list)


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
    #: The OSTree refs of the current release (None: the product has no ``[ostree]``).
    ostree: OstreeSection | None = None
    #: What changed since the previous release (None for the first release).
    notes: ReleaseNotes | None = None
    #: The last weeks of nightly results, as a picture.
    history: HistoryPicture | None = None


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
            waived=waived_failures(compose),
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
        ostree=ostree_section(state, urls),
        notes=release_notes(state, current, urls) if cur and current else None,
        history=history_picture(state, urls),
    )


def waived_failures(view: ComposeView) -> list[str]:
    """Each blocking failure of the compose an operator waived: test, image, who and why."""
    out = []
    for suite in view.suites.values():
        for t in suite.waived:
            if t.waived_by is None or not t.case.blocking or t.case.outcome != "FAILED":
                continue
            image = f" on {t.case.image.arch} {t.case.image.type}" if t.case.image else ""
            why = f" ({t.case.reason})" if t.case.reason else ""
            out.append(
                f"{suite.name}: {t.case.name} failed{image}{why}; waived by "
                f"{t.waived_by.operator}: {t.waived_by.reason}"
            )
    return out


def type_rank(image_type: str) -> tuple[int, str]:
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
                    if img.type in VAGRANT_TYPES and http_url(img.url)
                    else None
                ),
            )
            for img in sorted(by_arch[arch], key=lambda i: (*type_rank(i.type), i.filename))
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
    out = _missing_banners(state, urls)
    out += _withdrawn_banners(state, urls)
    current = state.current
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


def _missing_banners(state: State, urls: Urls) -> list[Banner]:
    """No release yet, or a stale one: linking the open failure bug, if any."""
    current = state.current
    fresh = state.freshness
    open_bug = state.open_bugs[-1] if state.open_bugs else None
    failure_bug = [bug_link(open_bug, urls, f"Failure bug {open_bug.bug}")] if open_bug else []
    if current is None:
        return [
            Banner(
                "none",
                "No image has been released yet",
                "Nothing has passed its tests on a release day so far. "
                f"The next release day is {state.next_release_day.isoformat()}.",
                [*failure_bug, Link("Nightly test results", urls.dashboard())],
            )
        ]
    if fresh.stale:
        return [
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
        ]
    return []


def _withdrawn_banners(state: State, urls: Urls) -> list[Banner]:
    """The releases withdrawn since the current one (all of them, when none is), newest
    first."""
    current = state.current
    newer_withdrawn = [
        r
        for r in state.withdrawn
        if current is None or (r.manifest.cycle, r.manifest.sequence) > _order(current)
    ]
    out = []
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
                f"is bad: {r.fallen}. Do not use it. {showing}{_rollback(r)}",
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
    return out


def _rollback(r: ReleaseView) -> str:
    """What a host that upgraded to a withdrawn release's OSTree tree runs."""
    if not r.manifest.ostree:
        return ""
    return (
        " Hosts that upgraded to its tree cannot upgrade backwards: run 'rpm-ostree rollback', "
        "or 'rpm-ostree deploy <commit>' with the commit of the release shown here."
    )


def _order(r: ReleaseView) -> tuple[str, int]:
    return (r.manifest.cycle, r.manifest.sequence)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
