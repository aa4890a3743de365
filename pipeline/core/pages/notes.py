"""Release notes: what changed in a release since the previous one of the same product.

The previous release is the newest earlier image release that still stands (a withdrawn
image is not what users run) and shipped another compose. The package and image-size
differences come from :func:`pipeline.core.changes.compose_changes`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pipeline.core.changes import ChangeKind, Changes, PackageChange, compose_changes
from pipeline.core.models.manifests import ComposeManifest
from pipeline.core.pages.links import Urls
from pipeline.core.state import ReleaseView, State
from pipeline.core.units import human_size

KINDS: tuple[ChangeKind, ...] = ("upgraded", "added", "removed", "downgraded")


@dataclass(frozen=True)
class PackageRow:
    """One changed package, as the page prints it."""

    name: str
    kind: str
    old: str
    new: str
    arches: str


@dataclass(frozen=True)
class SourceRow:
    """The changes of one source package's binaries, told once (the download page's short
    form): ``text`` is ``kernel 4.16.3-301.fc28 -> 4.16.8-301.fc28``."""

    name: str
    text: str


@dataclass(frozen=True)
class SizeRow:
    """One image whose size changed."""

    label: str  # "x86_64 qcow2"
    old: str
    new: str
    delta: str  # "+4.0 KiB"


@dataclass(frozen=True)
class ReleaseNotes:
    """What changed in ``release_id`` since ``previous_id``."""

    release_id: str
    compose_id: str
    previous_id: str
    previous_compose_id: str
    known: bool
    counts: list[tuple[ChangeKind, int]]  # (kind, count), kinds with a count only
    notable: list[PackageRow]
    others: list[PackageRow]
    sizes: list[SizeRow]
    notable_sources: list[SourceRow]
    other_sources: list[SourceRow]
    summary: str
    href: str
    json_href: str
    changes: Changes


def previous_release(state: State, release: ReleaseView) -> ReleaseView | None:
    """The newest image release before ``release`` that stands, of another compose."""
    at = next((i for i, r in enumerate(state.releases) if r is release), len(state.releases))
    earlier = state.releases[:at]
    for r in reversed(earlier):
        if r.stands and r.manifest.compose_id != release.manifest.compose_id:
            return r
    return None


def has_notes(state: State, release: ReleaseView, known: Collection[str] | None = None) -> bool:
    """Whether :func:`release_notes` gives notes for ``release`` (cheap: no diff);
    ``known`` is the log's compose ids, when the caller has them."""
    if not release.is_release:
        return False
    previous = previous_release(state, release)
    known = known if known is not None else {c.compose_id for c in state.composes}
    return (
        previous is not None
        and previous.manifest.compose_id in known
        and release.manifest.compose_id in known
    )


def all_release_notes(state: State, urls: Urls) -> list[ReleaseNotes]:
    """The notes of every image release that has them, oldest first."""
    out = []
    composes = compose_index(state)
    for release in state.releases:
        notes = release_notes(state, release, urls, composes)
        if notes is not None:
            out.append(notes)
    return out


def release_notes(
    state: State,
    release: ReleaseView,
    urls: Urls,
    composes: dict[str, ComposeManifest] | None = None,
) -> ReleaseNotes | None:
    """The notes of an image release; None for a stale decision, the first release, or a
    release whose composes the log does not hold."""
    if not release.is_release:
        return None
    previous = previous_release(state, release)
    composes = composes if composes is not None else compose_index(state)
    if previous is None:
        return None
    old = composes.get(previous.manifest.compose_id or "")
    new = composes.get(release.manifest.compose_id or "")
    if old is None or new is None:
        return None
    changes = compose_changes(old, new)
    counts = [(k, n) for k in KINDS if (n := changes.count(k))]
    notable_sources, other_sources = _split_sources(changes)
    return ReleaseNotes(
        release_id=release.release_id,
        compose_id=new.compose_id,
        previous_id=previous.release_id,
        previous_compose_id=old.compose_id,
        known=changes.packages_known,
        counts=counts,
        notable=[_row(p) for p in changes.notable],
        others=[_row(p) for p in changes.others],
        sizes=[_size_row(s.arch, s.type, s.old_size, s.new_size) for s in changes.images],
        notable_sources=notable_sources,
        other_sources=other_sources,
        summary=summary(changes, previous.release_id),
        href=urls.notes(release.release_id),
        json_href=urls.changes_json(release.release_id),
        changes=changes,
    )


def summary(changes: Changes, previous_id: str) -> str:
    """One line: ``Since 2015-09-15: 3 upgraded, 1 added.`` or that the list is unknown."""
    if not changes.packages_known:
        return f"Since {previous_id}: the package list is unknown."
    parts = [f"{n} {k}" for k in KINDS if (n := changes.count(k))]
    notable = [f"{p.name} {p.new or 'removed'}" for p in changes.notable if p.name in _LEADS]
    text = ", ".join(parts) if parts else "no package changes"
    lead = f" ({'; '.join(notable)})" if notable else ""
    return f"Since {previous_id}: {text}{lead}."


_LEADS = frozenset({"kernel", "ostree", "rpm-ostree", "docker", "moby-engine", "podman"})


def changes_document(notes: ReleaseNotes, product: str) -> dict[str, Any]:
    """The JSON file of a release's changes (linked from the stream and the notes page)."""
    return {
        "product": product,
        "release": notes.release_id,
        "compose-id": notes.compose_id,
        "previous-release": notes.previous_id,
        "previous-compose-id": notes.previous_compose_id,
        **notes.changes.model_dump(mode="json", include={"packages_known", "packages", "images"}),
    }


def compose_index(state: State) -> dict[str, ComposeManifest]:
    """The log's compose manifests by id (build it once for many :func:`release_notes`)."""
    return {c.compose_id: c.compose for c in state.composes}


def _row(change: PackageChange) -> PackageRow:
    return PackageRow(
        name=change.name,
        kind=change.kind,
        old=change.old or "",
        new=change.new or "",
        arches=", ".join(change.arches),
    )


def _sources(changes: list[PackageChange], *, arrows: bool) -> list[SourceRow]:
    """One row per (source package, change), in the order of first appearance; with
    ``arrows`` the old version too (``kernel 4.16.3-301.fc28 \u2192 4.16.8-301.fc28``), else
    only the new one (``bash 4.4.20-2.fc28``)."""
    seen: dict[tuple[str, str, str | None, str | None], None] = {}
    for p in changes:
        seen.setdefault((p.source, p.kind, p.old, p.new), None)
    rows = []
    for source, kind, old, new in seen:
        if kind == "added":
            text = f"{source} {new} (new)"
        elif kind == "removed":
            text = f"{source} {old} (removed)"
        else:
            text = f"{source} {old} \u2192 {new}" if arrows else f"{source} {new}"
            text += " (downgrade)" if kind == "downgraded" else ""
        rows.append(SourceRow(source, text))
    return rows


def _split_sources(changes: Changes) -> tuple[list[SourceRow], list[SourceRow]]:
    """Source-level rows: a source is notable when one of its binaries is."""
    notable = {p.source for p in changes.notable}
    first = [p for p in changes.notable] + [p for p in changes.others if p.source in notable]
    rest = [p for p in changes.others if p.source not in notable]
    return _sources(first, arrows=True), _sources(rest, arrows=False)


def _size_row(arch: str, image_type: str, old: int, new: int) -> SizeRow:
    sign = "+" if new >= old else "-"
    return SizeRow(
        label=f"{arch} {image_type}",
        old=human_size(old),
        new=human_size(new),
        delta=f"{sign}{human_size(abs(new - old))}",
    )
