"""Cloud images of a compose: discover its AMIs per region, withdraw them with a release."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.adapters.aws.ec2 import (
    NO_MATCH,
    ClientFactory,
    WithdrawAction,
    aws_config,
    discover,
    withdraw,
)
from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import CloudImage, CloudImagesManifest, MissingRegion
from pipeline.errors import ConfigError, InputError
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.load import load_state, require_compose

BUGZILLA_KEY_ENV = "FORTNIGHT_BUGZILLA_API_KEY"


@dataclass
class CloudOutcome:
    """What cloud.discover found, and what it recorded (``write`` None: same as the newest run)."""

    manifest: CloudImagesManifest
    write: WriteResult | None


def carry_forward(
    previous: CloudImagesManifest, images: list[CloudImage], missing: list[MissingRegion]
) -> tuple[list[CloudImage], list[MissingRegion]]:
    """Keep what an earlier run found in a region that could not be queried this time.

    A region that answered "no image matched" drops its images (they are gone); one that
    failed (throttling, auth, endpoint down) keeps the earlier run's images, so a passing
    outage never makes the newest run hide AMIs that exist.
    """
    failed = {m.region for m in missing if not m.reason.startswith(NO_MATCH)}
    kept = [i for i in previous.images if i.region in failed]
    if not kept:
        return images, missing
    regions = {i.region for i in kept}
    merged = sorted([*images, *kept], key=lambda i: (i.arch, i.region))
    return merged, [m for m in missing if m.region not in regions]


def discover_clouds(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    signers: Sequence[Signer],
    options: WriteOptions,
    now: datetime,
    make_client: ClientFactory,
    workers: int,
    attempts: int = 4,
    backoff: float = 1.0,
) -> CloudOutcome:
    """Find the compose's AMIs in every configured region and record them as a new run.

    When the result equals the newest run's (images and missing regions), nothing
    is recorded: a re-run is safe. Holds the checkout lock, so two runs number apart.

    Raises:
        ConfigError: the product has no ``[clouds.aws]``.
        InputError: the compose is not recorded.
    """
    config = aws_config(product)
    log.require_repo()
    with log.lock():
        state, trust = load_state(log, product, now)
        view = require_compose(state, compose_id)
        images, missing = discover(
            view.compose,
            config,
            make_client,
            arches=list(product.images.arches),
            workers=workers,
            attempts=attempts,
            backoff=backoff,
        )
        previous = state.clouds.get(compose_id)
        if previous is not None:
            images, missing = carry_forward(previous, images, missing)
        if previous is not None and (previous.images, previous.missing) == (images, missing):
            return CloudOutcome(previous, None)
        manifest = CloudImagesManifest(
            product=product.name,
            created=now,
            compose_id=compose_id,
            run=previous.run + 1 if previous is not None else 1,
            images=images,
            missing=missing,
        )
        regions = len({i.region for i in images})
        message = f"cloud: discover {compose_id} ({regions} regions, {len(missing)} missing)"
        write = log.record([manifest], signers, trust, message, options)
        return CloudOutcome(manifest, write)


def withdraw_clouds(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    make_client: ClientFactory,
    now: datetime,
    dry_run: bool,
    workers: int = 4,
    attempts: int = 4,
    backoff: float = 1.0,
) -> list[WithdrawAction]:
    """Withdraw the AMIs of the compose's newest cloud-images run (see :func:`withdraw`).

    This changes EC2 only and records nothing in the log: the revocation manifest
    (``release.revoke``) is the log's record of a withdrawal; the AMIs' date tag is
    EC2's. Restorable: add the launch permission back and delete the tag.

    Raises:
        InputError: no cloud images are recorded for the compose.
    """
    log.require_repo()
    state, _ = load_state(log, product, now)
    manifest = state.clouds.get(compose_id)
    if manifest is None or not manifest.images:
        raise InputError(f"no cloud images recorded for {compose_id}", hint="run cloud.discover")
    return withdraw(
        list(manifest.images),
        make_client,
        today=now.date(),
        dry_run=dry_run,
        workers=workers,
        attempts=attempts,
        backoff=backoff,
    )


def withdraw_release_images(
    log: ManifestLog,
    product: ProductConfig,
    release_id: str,
    *,
    make_client: ClientFactory,
    now: datetime,
    dry_run: bool,
) -> tuple[str, list[WithdrawAction]]:
    """Withdraw the AMIs of a release's compose (``release.revoke --cloud``).

    Returns the compose id and what was done per AMI; see :func:`withdraw_clouds`.

    Raises:
        ConfigError: no such release (``release.revoke`` checks it first).
        InputError: no cloud images are recorded for its compose.
    """
    state, _ = load_state(log, product, now)
    view = state.release(release_id)
    compose_id = view.manifest.compose_id if view is not None else None
    if not compose_id:  # release.revoke checked the release before this runs
        raise ConfigError(f"--release-id {release_id}: no compose to withdraw")
    actions = withdraw_clouds(
        log, product, compose_id, make_client=make_client, now=now, dry_run=dry_run
    )
    return compose_id, actions


def ec2_client_factory(endpoint_url: str | None) -> ClientFactory:
    """EC2 clients through boto3's standard credential chain (never logged here).

    boto3's own retries are off: ``pipeline.adapters.clouds`` retries a region itself, so a
    failing region is reported once, with its reason.
    """
    import boto3  # noqa: PLC0415 - only the cloud tasks need it; keeps the others fast
    from botocore.config import Config  # noqa: PLC0415

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10)

    def make(region: str) -> object:
        return boto3.client("ec2", region_name=region, endpoint_url=endpoint_url, config=config)

    return make
