"""What changed between two composes: packages (added, removed, upgraded, downgraded, in
rpm's version order) and image sizes. Pure: compose manifests in, a :class:`Changes` out.

Packages are compared per binary rpm name and arch over the compose's package sets (every
variant of the product's images); when a name appears in several versions the newest counts.
A change seen on several arches is listed once, with its arches. A binary rpm whose source
rpm is unknown (a package list read from an OSTree commit) is its own source. When either
compose has no package list, :attr:`Changes.packages_known` is false and the package lists
are empty.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Annotated, Literal

from pydantic import Field

from pipeline.core.models.common import StrictModel
from pipeline.core.models.manifests import ComposeManifest
from pipeline.core.rpmvercmp import Evr, compare_evr

_NEVRA = re.compile(
    r"^(?P<name>.+)-(?P<epoch>[0-9]+):(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$"
)

#: Packages a reader of release notes looks for first, in this order: the kernel, the
#: OSTree / rpm-ostree stack, the container runtime.
NOTABLE: tuple[tuple[str, frozenset[str]], ...] = (
    ("kernel", frozenset({"kernel", "kernel-core", "kernel-modules"})),
    (
        "ostree",
        frozenset({"ostree", "ostree-libs", "rpm-ostree", "rpm-ostree-libs", "ostree-grub2"}),
    ),
    (
        "containers",
        frozenset(
            {"docker", "moby-engine", "podman", "containerd", "runc", "crun", "cri-o",
             "conmon", "skopeo", "buildah", "atomic", "containers-common"}
        ),
    ),
)  # fmt: skip

ChangeKind = Literal["added", "removed", "upgraded", "downgraded"]


class PackageChange(StrictModel):
    """One package's change: ``old``/``new`` are EVRs (``[epoch:]version-release``)."""

    name: str
    kind: ChangeKind
    arches: list[str]
    old: str | None
    new: str | None
    source: str
    notable: bool


class ImageSizeChange(StrictModel):
    """One image present in both composes, and its size in each (bytes)."""

    subvariant: str
    type: str
    format: str
    arch: str
    old_size: Annotated[int, Field(ge=0)]
    new_size: Annotated[int, Field(ge=0)]


class Changes(StrictModel):
    """What changed from ``previous`` to ``current`` (compose ids)."""

    previous: str
    current: str
    packages_known: bool
    packages: list[PackageChange]
    images: list[ImageSizeChange]

    def count(self, kind: ChangeKind) -> int:
        """How many packages changed this way."""
        return sum(1 for p in self.packages if p.kind == kind)

    @property
    def notable(self) -> list[PackageChange]:
        """The notable changes (kernel, OSTree stack, container runtime), in that order."""
        return [p for p in self.packages if p.notable]

    @property
    def others(self) -> list[PackageChange]:
        """Every other change, by name."""
        return [p for p in self.packages if not p.notable]


_Rpm = tuple[Evr, str]  # (evr, source rpm name)


def parse_nevra(nevra: str) -> tuple[str, Evr, str]:
    """(name, evr, arch) of ``name-epoch:version-release.arch``.

    Raises:
        ValueError: not in that form.
    """
    m = _NEVRA.match(nevra)
    if m is None:
        raise ValueError(f"not an rpm name-epoch:version-release.arch: {nevra!r}")
    evr = Evr(int(m["epoch"]), m["version"], m["release"])
    return m["name"], evr, m["arch"]


def package_index(compose: ComposeManifest) -> dict[tuple[str, str], _Rpm] | None:
    """Newest binary rpm per (name, arch) over the compose's package sets; None if unknown."""
    if compose.packages is None:
        return None
    index: dict[tuple[str, str], _Rpm] = {}
    for package_set in compose.packages:
        for source, binaries in package_set.sources.items():
            source_name = parse_nevra(source)[0]
            for nevra in binaries:
                _index_rpm(index, nevra, source_name)
        for nevra in package_set.binaries:  # source rpm unknown: the rpm stands for itself
            _index_rpm(index, nevra, None)
    return index


def _index_rpm(index: dict[tuple[str, str], _Rpm], nevra: str, source: str | None) -> None:
    """Keep ``nevra`` in ``index`` when it is the newest of its name and arch so far."""
    name, evr, arch = parse_nevra(nevra)
    known = index.get((name, arch))
    if known is None or compare_evr(evr, known[0]) > 0:
        index[(name, arch)] = (evr, source or name)


def _notable_rank(name: str) -> int | None:
    for rank, (_group, names) in enumerate(NOTABLE):
        if name in names:
            return rank
    return None


def _kind(old: _Rpm | None, new: _Rpm | None) -> ChangeKind | None:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    order = compare_evr(new[0], old[0])
    if order == 0:
        return None
    return "upgraded" if order > 0 else "downgraded"


def package_changes(
    old: dict[tuple[str, str], _Rpm], new: dict[tuple[str, str], _Rpm]
) -> list[PackageChange]:
    """Every changed package, notable first, then by name; one entry per arch-independent
    change."""
    grouped: dict[tuple[str, ChangeKind, str | None, str | None, str], list[str]] = defaultdict(
        list
    )
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        kind = _kind(before, after)
        if kind is None:
            continue
        source = (after or before)[1]  # type: ignore[index]
        old_evr = str(before[0]) if before else None
        new_evr = str(after[0]) if after else None
        grouped[(key[0], kind, old_evr, new_evr, source)].append(key[1])
    changes = [
        PackageChange(
            name=name,
            kind=kind,
            arches=sorted(arches),
            old=old_evr,
            new=new_evr,
            source=source,
            notable=_notable_rank(name) is not None,
        )
        for (name, kind, old_evr, new_evr, source), arches in grouped.items()
    ]
    return sorted(changes, key=_change_order)


def _change_order(change: PackageChange) -> tuple[int, str, str]:
    rank = _notable_rank(change.name)
    return (len(NOTABLE) if rank is None else rank, change.name, change.kind)


def image_size_changes(
    previous: ComposeManifest, current: ComposeManifest
) -> list[ImageSizeChange]:
    """Each image in both composes (same identity) whose size changed."""
    before = {img.key(): img for img in previous.images}
    out = []
    for img in current.images:
        old = before.get(img.key())
        if old is not None and old.size != img.size:
            out.append(
                ImageSizeChange(
                    subvariant=img.subvariant,
                    type=img.type,
                    format=img.format,
                    arch=img.arch,
                    old_size=old.size,
                    new_size=img.size,
                )
            )
    return out


def compose_changes(previous: ComposeManifest, current: ComposeManifest) -> Changes:
    """What changed from ``previous`` to ``current``."""
    old, new = package_index(previous), package_index(current)
    known = old is not None and new is not None
    return Changes(
        previous=previous.compose_id,
        current=current.compose_id,
        packages_known=known,
        packages=package_changes(old, new) if old is not None and new is not None else [],
        images=image_size_changes(previous, current),
    )
