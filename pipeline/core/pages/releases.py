"""The release archive, the inputs of CHECKSUM files, the Atom feed entries, the stream
document and the "latest" pointers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

from pipeline.core.models.manifests import Image
from pipeline.core.ostree import withdrawn_commits
from pipeline.core.pages.formatting import http_url, iso
from pipeline.core.pages.links import Link, Urls, named_bug_link
from pipeline.core.pages.notes import compose_index, has_notes, release_notes
from pipeline.core.state import ReleaseView, State


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
    notes: str | None = None  # the release notes page, when there are notes


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
                    named_bug_link(state, m.open_bug.bug, m.open_bug.url, urls)
                    if m.open_bug
                    else None
                ),
                checksum=urls.checksum(r.release_id) if has_files else None,
                sha256sums=urls.sha256sums(r.release_id) if has_files else None,
                manifest=urls.manifest(m),
                current=current is not None and r.release_id == current.release_id,
                notes=urls.notes(r.release_id) if has_notes(state, r, known) else None,
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
    #: What changed since the previous release (one line), and where the notes are.
    changes: str | None = None
    notes: str | None = None


def feed_entries(state: State, urls: Urls, limit: int = 20) -> list[FeedEntry]:
    """The newest release decisions (of any kind), newest first."""
    out = []
    name = state.product.display_name
    composes = compose_index(state)
    for r in list(reversed(state.releases))[:limit]:
        m = r.manifest
        if r.is_release:
            title = f"{name} {r.release_id}: {m.compose_id}"
            if r.fallen:
                title += " (withdrawn)"
        else:
            title = f"{name} {r.release_id}: no new image (stale)"
        notes = release_notes(state, r, urls, composes)
        out.append(
            FeedEntry(
                id=f"fortnight:{state.product.name}:release:{r.release_id}",
                title=title,
                updated=iso(r.revocation.created if r.revocation else m.created),
                link=urls.release_anchor(r.release_id),
                summary=m.explanation + (f" Withdrawn: {r.fallen}." if r.fallen else ""),
                changes=notes.summary if notes else None,
                notes=notes.href if notes else None,
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
    changes = None
    if current is not None and compose is not None:
        rel = current.release_id
        if has_notes(state, current):
            changes = prefix + urls.changes_json(rel)
        for img in sorted(compose.compose.images, key=lambda i: (i.arch, i.type, i.filename)):
            artifact = arches.setdefault(img.arch, {"artifacts": {}})["artifacts"].setdefault(
                img.type, {"release": rel, "formats": {}}
            )
            artifact["formats"][img.format] = {
                "disk": {
                    "location": http_url(img.url) or "",
                    "sha256": img.checksums.sha256,
                    "size": img.size,
                }
            }
        clouds = state.clouds.get(compose.compose_id)
        if clouds is not None:
            for ami in sorted(clouds.images, key=lambda a: (a.arch, a.region)):
                if ami.public:
                    arch = arches.setdefault(ami.arch, {"artifacts": {}})
                    aws = arch.setdefault("images", {}).setdefault("aws", {"regions": {}})
                    aws["regions"][ami.region] = {"release": rel, "image": ami.ami_id}
            last_modified = max(last_modified or clouds.created, clouds.created)
    doc = {
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
            "changes": changes,
        },
        "stale": fresh.stale,
        "stale-reason": fresh.reason if fresh.stale else None,
        "architectures": arches,
    }
    if state.product.ostree is not None:
        _stream_ostree(state, doc, arches)
    return doc


def _stream_ostree(state: State, doc: dict[str, Any], arches: dict[str, Any]) -> None:
    """Per arch the released commit (``architectures.<arch>.ostree``, as Fedora CoreOS's
    release metadata lists commits), and the withdrawn commits hosts should leave."""
    current = state.current
    for p in current.manifest.ostree if current else []:
        arches.setdefault(p.arch, {"artifacts": {}})["ostree"] = {
            "ref": p.ref,
            "commit": p.commit,
            "version": p.version,
            "release": current.release_id if current else None,
        }
    doc["ostree-withdrawn"] = [
        {"commit": commit, "release": release}
        for commit, release in sorted(withdrawn_commits(state).items())
    ]


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
        if (img.arch, img.type) in seen or not http_url(img.url):
            continue  # several files of one type (e.g. multi-disc): the first one by name;
            # never a redirect to a file:// (or other non-http) URL
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


def withdrawal_of_compose(state: State) -> dict[str, str]:
    """Compose id to why its release no longer stands (``withdrawn by …: …``)."""
    return {
        r.manifest.compose_id: r.fallen
        for r in state.withdrawn
        if r.manifest.compose_id and r.fallen
    }
