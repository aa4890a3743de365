"""Stage: record a compose (or a compose that produced no image) in the manifest log."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import productmd.composeinfo
import requests
from pydantic import ValidationError

from pipeline.adapters.hashing import HashJob, HashResult, ProgressSink, verify_checksums
from pipeline.adapters.ingest import LoadedCompose, check_image_path, iter_images
from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Trust
from pipeline.core.models.manifests import (
    ComposeManifest,
    Image,
    OstreeCommit,
    PackageSet,
    Release,
)
from pipeline.errors import ConfigError, InputError, describe_validation_error
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult


@dataclass
class RecordOutcome:
    """What ``compose.record`` did."""

    manifest: ComposeManifest
    write: WriteResult
    hashed: list[HashResult] = field(default_factory=list)


def select_images(loaded: LoadedCompose, product: ProductConfig) -> list[tuple[str, Any]]:
    """The product's (variant, productmd image) pairs in the compose.

    Raises:
        InputError: none matches, or a selected image has no sha256 or an unsafe path.
    """
    sel = product.images
    chosen = [
        (variant, img)
        for variant, _arch, img in iter_images(loaded.images)
        if sel.selects(variant, img.subvariant or "", img.type, img.arch)
    ]
    compose_id = loaded.info.compose.id
    if not chosen:
        raise InputError(
            f"images.json: compose {compose_id} has no image for product {product.name} "
            f"(variants {sel.variants}, subvariants {sel.subvariants}, types {sel.types}, "
            f"arches {sel.arches})",
            hint="check --product and the [images] selection in product.toml",
        )
    for _variant, img in chosen:
        check_image_path(loaded.location, img.path)
        if not img.checksums.get("sha256"):
            raise InputError(
                f"images.json: image {img.path} has no sha256 checksum",
                hint="Fortnight publishes sha256 for every download",
            )
    return chosen


def download_url(product: ProductConfig, loaded: LoadedCompose, path: str) -> str:
    """Where users will download an image: never a ``file://`` URL.

    Raises:
        ConfigError: ``download_url`` is empty and the compose is a local folder.
    """
    base = product.images.download_url
    if base:
        return base.format(compose_id=loaded.info.compose.id) + path
    if loaded.location.base_url is not None:
        return loaded.location.base_url + path
    raise ConfigError(
        f"{product.name}/product.toml: [images] download_url is empty and the compose is a "
        "local folder, so users would get a file:// link",
        hint="set download_url to where the images are published (https://… or /path/)",
    )


def package_sets(loaded: LoadedCompose, images: list[Image]) -> list[PackageSet] | None:
    """The binary rpms of each (variant, arch) of ``images``, from ``rpms.json``; None when
    the compose has none.

    Raises:
        InputError: an rpm name in ``rpms.json`` is not ``name-epoch:version-release.arch``.
    """
    if loaded.rpms is None:
        return None
    wanted = sorted({(img.variant, img.arch) for img in images})
    out = []
    for variant, arch in wanted:
        try:
            by_source = loaded.rpms.rpms.get(variant, {}).get(arch, {})
            sources = {
                source: sorted(n for n, meta in rpms.items() if meta.get("category") == "binary")
                for source, rpms in sorted(by_source.items())
            }
        except (AttributeError, TypeError) as e:
            raise InputError(
                f"rpms.json: payload.rpms.{variant}.{arch} is not source rpm -> rpm -> details",
                hint="the metadata is malformed",
            ) from e
        try:
            out.append(PackageSet(variant=variant, arch=arch, sources=sources))
        except ValueError as e:
            raise InputError(
                f"rpms.json: {variant}/{arch}: {_first_error(e)}",
                hint="rpm names must look like name-epoch:version-release.arch",
            ) from e
    return out


def commit_package_sets(
    images: list[Image], lists: Mapping[str, Sequence[str]]
) -> list[PackageSet]:
    """One package set per arch from its OSTree commit's package list (NEVRAs): under the
    variant of the product's images of that arch (the first by name), every rpm in
    ``binaries`` (the list names no source rpms)."""
    out = []
    for arch, nevras in sorted(lists.items()):
        variants = sorted({i.variant for i in images if i.arch == arch}) or sorted(
            {i.variant for i in images}
        )
        out.append(PackageSet(variant=variants[0], arch=arch, sources={}, binaries=[*nevras]))
    return out


def _first_error(e: ValueError) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{first['msg']} ({first.get('input')!r})"
    return str(e).splitlines()[0]


def build_compose_manifest(
    loaded: LoadedCompose,
    product: ProductConfig,
    now: datetime,
    *,
    checksums_verified: bool,
    ostree: Sequence[OstreeCommit] = (),
    ostree_packages: Mapping[str, Sequence[str]] | None = None,
) -> ComposeManifest:
    """The compose manifest for the product's images in ``loaded``; its package list from
    ``rpms.json``, else from ``ostree_packages`` (each arch's OSTree commit's, by arch).

    Raises:
        InputError: see :func:`select_images`; or a value the metadata holds does not fit
            a manifest (a malformed sha256, a bad compose id…), naming the field.
    """
    try:
        return _compose_manifest(
            loaded,
            product,
            now,
            checksums_verified=checksums_verified,
            ostree=ostree,
            ostree_packages=ostree_packages,
        )
    except ValidationError as e:
        raise InputError(
            f"compose metadata: {describe_validation_error(e)}",
            hint="the compose's metadata holds a value a manifest cannot record",
        ) from None


def _compose_manifest(
    loaded: LoadedCompose,
    product: ProductConfig,
    now: datetime,
    *,
    checksums_verified: bool,
    ostree: Sequence[OstreeCommit],
    ostree_packages: Mapping[str, Sequence[str]] | None,
) -> ComposeManifest:
    info = loaded.info
    images = [
        _manifest_image(variant, img, download_url(product, loaded, img.path))
        for variant, img in select_images(loaded, product)
    ]
    packages = package_sets(loaded, images)
    if packages is None and ostree_packages:
        packages = commit_package_sets(images, ostree_packages)
    return ComposeManifest(
        product=product.name,
        created=now,
        compose_id=info.compose.id,
        date=info.compose.date,
        respin=int(info.compose.respin),
        compose_type=info.compose.type,
        label=info.compose.label or None,
        release=Release(
            name=info.release.name,
            short=info.release.short,
            version=info.release.version,
            type=info.release.type or "ga",
        ),
        outcome="images",
        source=loaded.location.compose_source,
        checksums_verified=checksums_verified,
        images=images,
        ostree=list(ostree),
        packages=packages,
    )


def _manifest_image(variant: str, img: Any, url: str) -> Image:
    """One productmd image as a manifest's image.

    Raises:
        InputError: a value does not fit a manifest, naming the image and the field.
    """
    try:
        return Image(
            variant=variant,
            subvariant=img.subvariant or "",
            type=img.type,
            format=img.format,
            arch=img.arch,
            disc_number=int(img.disc_number or 1),
            disc_count=int(img.disc_count or 1),
            path=img.path,
            url=url,
            size=int(img.size),
            checksums={"sha256": img.checksums["sha256"]},  # type: ignore[arg-type]
            bootable=bool(img.bootable),
            volume_id=img.volume_id or None,
            implant_md5=img.implant_md5 or None,
            mtime=int(img.mtime),
        )
    except ValidationError as e:
        raise InputError(
            f"images.json: image {json.dumps(img.path)[:80]}: {describe_validation_error(e)}",
            hint="the compose's metadata holds a value a manifest cannot record",
        ) from None


def hash_jobs(loaded: LoadedCompose, manifest: ComposeManifest) -> list[HashJob]:
    """One checksum job per image of the manifest."""
    return [
        HashJob(
            name=img.path,
            location=loaded.location.image_location(img.path),
            size=img.size,
            sha256=img.checksums.sha256,
        )
        for img in manifest.images
    ]


def record_compose(
    log: ManifestLog,
    product: ProductConfig,
    loaded: LoadedCompose,
    signers: Sequence[Signer],
    now: datetime,
    *,
    verify: bool,
    options: WriteOptions,
    session: requests.Session | None = None,
    progress: ProgressSink | None = None,
    workers: int | None = None,
    ostree: Sequence[OstreeCommit] = (),
    ostree_packages: Mapping[str, Sequence[str]] | None = None,
) -> RecordOutcome:
    """Record ``loaded`` as a signed compose manifest; check files first when ``verify``.
    The package list comes from ``rpms.json``, else from ``ostree_packages``.

    Raises:
        InputError, ChecksumMismatchError, FetchError: bad input; nothing is written.
        ConflictError: the compose was recorded before with other content.
        StoreError: git failed.
    """
    trust = log.load_trust()
    manifest = build_compose_manifest(
        loaded,
        product,
        now,
        checksums_verified=verify,
        ostree=ostree,
        ostree_packages=ostree_packages,
    )
    hashed: list[HashResult] = []
    if verify and not options.dry_run:
        hashed = verify_checksums(
            hash_jobs(loaded, manifest), workers=workers, session=session, progress=progress
        )
    result = _write(log, manifest, signers, trust, options)
    return RecordOutcome(manifest=manifest, write=result, hashed=hashed)


def failed_compose_manifest(
    product: ProductConfig, compose_id: str, reason: str, log_url: str | None, now: datetime
) -> ComposeManifest:
    """The manifest of a compose that produced no image (Pungi's DOOMED).

    Raises:
        InputError: the compose id carries no date, or the reason is empty.
    """
    if not reason.strip():
        raise InputError("--reason: must not be empty", hint="say why the compose failed")
    try:
        date, compose_type, respin = productmd.composeinfo.get_date_type_respin(compose_id)
    except ValueError as e:
        raise InputError(f"--compose-id {compose_id}: {e}") from e
    if date is None:
        raise InputError(
            f"--compose-id {compose_id}: no date in it",
            hint="compose ids look like Fedora-Atomic-22-20150915.0",
        )
    try:
        return ComposeManifest(
            product=product.name,
            created=now,
            compose_id=compose_id,
            date=date,
            respin=respin,
            compose_type=compose_type,
            release=None,
            outcome="no-image",
            reason=reason.strip(),
            log_url=log_url or None,
            source=log_url or "",
            checksums_verified=False,
            images=[],
        )
    except ValueError as e:
        raise InputError(f"--compose-id {compose_id}: not a valid compose id ({e})") from e


def record_failed_compose(
    log: ManifestLog,
    manifest: ComposeManifest,
    signers: Sequence[Signer],
    options: WriteOptions,
) -> RecordOutcome:
    """Record a compose that produced no image."""
    trust = log.load_trust()
    return RecordOutcome(manifest=manifest, write=_write(log, manifest, signers, trust, options))


def commit_message(manifest: ComposeManifest) -> str:
    """The conventional commit message for recording ``manifest``."""
    suffix = "" if manifest.outcome == "images" else " (no image)"
    return f"compose: record {manifest.compose_id}{suffix}"


def _write(
    log: ManifestLog,
    manifest: ComposeManifest,
    signers: Sequence[Signer],
    trust: Trust,
    options: WriteOptions,
) -> WriteResult:
    return log.record([manifest], signers, trust, commit_message(manifest), options)
