"""The release announcement mail, in plain text, as Fedora's two-week script sent it.

For a release: product and base, release id, every image with its size and sha256, the
AMIs per region, the OSTree commit per arch (with the one the ref pointed to before), the
changes since the previous release, why this image, and links. For a stale cycle: the image
that stays, the failure bug and what to do. For a withdrawal: the reason, the bug, the image
to use instead, the commit each OSTree ref moved back to and what hosts on the withdrawn tree
run. Pure: state and manifests in, subject and body out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.models.manifests import OstreePromotion, ReleaseManifest, RevocationManifest
from pipeline.core.pages.links import Urls, named_bug_link
from pipeline.core.pages.notes import release_notes
from pipeline.core.pages.ostree import ostree_key_path, ostree_repo_path
from pipeline.core.state import ReleaseView, State
from pipeline.core.units import human_size

ARROW = "\u2192"


@dataclass(frozen=True)
class Mail:
    """One announcement: its subject and plain-text body."""

    subject: str
    body: str


def _site(site_url: str) -> str:
    return site_url.rstrip("/") + "/" if site_url else ""


def _view(state: State, release_id: str) -> ReleaseView | None:
    return next((r for r in state.releases if r.release_id == release_id), None)


def release_mail(state: State, release: ReleaseManifest, site_url: str) -> Mail:
    """The announcement of an image release, as of ``state`` (derived at its decision)."""
    name = state.product.display_name
    urls, site = Urls(state.product.name), _site(site_url)
    compose = next((c for c in state.composes if c.compose_id == release.compose_id), None)
    lines = [
        f"{name} {release.release_id} is out, based on {release.base.label()}.",
        "",
        f"Release: {release.release_id}",
        f"Compose: {release.compose_id}",
        "",
        "Images:",
    ]
    for img in sorted(compose.compose.images if compose else [], key=lambda i: (i.arch, i.type)):
        lines += [
            f"  {img.arch} {img.type}: {img.url}",
            f"    size {human_size(img.size)} ({img.size} bytes), sha256 {img.checksums.sha256}",
        ]
    lines += _amis(state, release.compose_id or "")
    lines += _ostree_trees(state, release, site, urls)
    view = _view(state, release.release_id)
    notes = release_notes(state, view, urls) if view else None
    if notes is not None:
        lines += ["", f"Changes since {notes.previous_id} ({notes.previous_compose_id}):"]
        if not notes.known:
            lines.append(
                "  The package list is unknown "
                "(a compose had no rpms.json and no OSTree package list)."
            )
        else:
            counts = ", ".join(f"{n} {kind}" for kind, n in notes.counts) or "none"
            lines.append(f"  Packages: {counts}.")
        lines += [f"  {p.text.replace(ARROW, '->')}" for p in notes.notable_sources]
        if notes.other_sources:
            more = len(notes.other_sources)
            lines.append(f"  and {more} other source packages: {site}{notes.href}")
        lines += [f"  {z.label}: {z.old} -> {z.new} ({z.delta})" for z in notes.sizes]
    lines += ["", "Why this image:", f"  {release.explanation}"]
    lines += _links(site, urls, release)
    return Mail(f"{name} {release.release_id} released ({release.compose_id})", _text(lines))


def _amis(state: State, compose_id: str) -> list[str]:
    clouds = state.clouds.get(compose_id)
    public = sorted(
        (a for a in (clouds.images if clouds else []) if a.public),
        key=lambda a: (a.arch, a.region),
    )
    if not public:
        return []
    return ["", "Amazon EC2 images (AMIs):"] + [
        f"  {a.arch} {a.region}: {a.ami_id}" for a in public
    ]


def _ostree_trees(state: State, release: ReleaseManifest, site: str, urls: Urls) -> list[str]:
    """Per arch the public ref, the released commit and version, and the commit before."""
    if not release.ostree:
        return []
    lines = ["", "OSTree (rpm-ostree upgrade follows each ref to this commit):"]
    for p in sorted(release.ostree, key=lambda p: p.arch):
        lines += [
            f"  {p.arch} {p.ref}: version {p.version}",
            f"    commit {p.commit}",
            f"    previous {p.previous}" if p.previous else "    previous: none (a new ref)",
        ]
    config = state.product.ostree
    if config is not None and site:
        lines.append(f"  Repository: {site}{ostree_repo_path(urls, config.site_path)}")
        if config.gpg_public_key:
            lines.append(f"  GPG key: {site}{ostree_key_path(urls, config.site_path)}")
    return lines


def _ostree_moved_back(state: State, revocation: RevocationManifest) -> list[str]:
    """Where each ref of the withdrawn release points now, and what hosts on it run."""
    withdrawn = _view(state, revocation.release_id)
    if withdrawn is None or not withdrawn.manifest.ostree:
        return []
    standing: dict[str, tuple[str, OstreePromotion]] = {
        p.ref: (v.release_id, p) for v in state.releases if v.stands for p in v.manifest.ostree
    }
    lines, moved = ["", "OSTree:"], False
    for p in sorted(withdrawn.manifest.ostree, key=lambda p: p.arch):
        lines.append(f"  {p.arch} {p.ref}: withdrawn commit {p.commit}")
        if p.ref in standing:
            release_id, back = standing[p.ref]
            moved = True
            lines.append(
                f"    moved back to {back.commit} (version {back.version}, release {release_id})"
            )
        else:
            lines.append("    deleted: no release that stands names this ref")
    lines += [
        "  Hosts that upgraded to the withdrawn tree cannot upgrade backwards: run",
        "  'rpm-ostree rollback' (back to the deployment they had)" + (", or" if moved else "."),
    ]
    if moved:
        lines.append("  'rpm-ostree deploy <commit>' with the commit the ref moved back to.")
    return lines


def _links(site: str, urls: Urls, manifest: ReleaseManifest | RevocationManifest) -> list[str]:
    if not site:
        return ["", f"Signed manifest: manifests/{manifest.relname()}"]
    return [
        "",
        f"Download page: {site}{urls.download()}",
        f"Release archive: {site}{urls.archive()}",
        f"Checksums: {site}{urls.sha256sums(manifest.release_id)}",
        f"Signed manifest: {site}manifests/{manifest.relname()}",
    ]


def stale_mail(state: State, release: ReleaseManifest, site_url: str) -> Mail:
    """The announcement of a cycle with no new image."""
    name = state.product.display_name
    urls, site = Urls(state.product.name), _site(site_url)
    keeps = f"release {release.previous}" if release.previous else "no image (none released yet)"
    lines = [
        f"{name}: no new image for the release day {release.cycle}.",
        "",
        f"Decision: {release.release_id} (stale)",
        f"Why: {release.explanation}",
        f"The download page keeps offering {keeps}.",
    ]
    if release.open_bug is not None:
        bug = named_bug_link(state, release.open_bug.bug, release.open_bug.url, urls)
        lines.append(f"Failure bug: {bug.label} {bug.href if bug.external else site + bug.href}")
    lines += [
        "",
        "What to do: keep using the current image; follow the failure bug for the fix.",
        "A fixed compose that passes its tests is released on the next release day"
        + (" or, with policy retry, as soon as it passes." if release.policy == "retry" else "."),
    ]
    if site:
        lines += ["", f"Download page: {site}{urls.download()}"]
    return Mail(f"{name} {release.release_id}: no new image (stale)", _text(lines))


def withdrawn_mail(state: State, revocation: RevocationManifest, site_url: str) -> Mail:
    """The announcement of a withdrawn release, with what to use instead."""
    name = state.product.display_name
    urls, site = Urls(state.product.name), _site(site_url)
    current = state.current
    instead = (
        f"Use release {current.release_id} (compose {current.manifest.compose_id}) instead."
        if current is not None
        else "There is no earlier good release to use instead."
    )
    lines = [
        f"{name} release {revocation.release_id} (compose {revocation.compose_id}) is withdrawn.",
        "",
        f"Why: {revocation.reason}",
    ]
    if revocation.reason_url:
        lines.append(f"Bug: {revocation.reason_url}")
    lines += [
        "",
        f"What to do: do not use the images of {revocation.release_id}; replace instances "
        f"started from them. {instead}",
    ]
    lines += _ostree_moved_back(state, revocation)
    if site:
        lines += ["", f"Download page: {site}{urls.download()}"]
    return Mail(f"{name} {revocation.release_id} withdrawn", _text(lines))


def _text(lines: list[str]) -> str:
    return "\n".join(lines).rstrip() + "\n"
