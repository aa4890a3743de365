"""Discover a compose's AMIs in EC2, per region, in parallel (``invoke cloud.discover``),
and withdraw them (``invoke cloud.withdraw``, ``invoke release.revoke --cloud``).

Discovery only calls ``describe_images``; withdrawal also calls
``modify_image_attribute`` and ``create_tags``. Clients come from the caller (boto3's
standard credential chain; an ``endpoint_url`` for tests or private clouds).
A region that fails is retried, then recorded as missing with a one-line reason
built from the error code and message, never from the client's configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pipeline.adapters.aws.common import AwsCallFailed, call_aws, reason
from pipeline.core.config import AwsClouds, ProductConfig
from pipeline.core.models.manifests import CloudImage, ComposeManifest, MissingRegion
from pipeline.errors import ConfigError

#: An EC2 client (``boto3.client("ec2", region_name=...)``). boto3 ships no type
#: information without the separate stubs, so it is ``Any`` here.
Ec2Client = Any
ClientFactory = Callable[[str], Ec2Client]

#: EC2 architecture names to the compose's.
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64", "i386": "i386"}
#: How a region without a matching AMI is reported (as opposed to a region that failed).
NO_MATCH = "no image matched"
#: The tag a withdrawn AMI carries; its value is the date of the withdrawal.
WITHDRAWN_TAG = "FortnightWithdrawn"

T = TypeVar("T")


def aws_config(product: ProductConfig) -> AwsClouds:
    """The product's ``[clouds.aws]`` table.

    Raises:
        ConfigError: there is none.
    """
    if product.clouds.aws is None:
        raise ConfigError(
            f"no [clouds.aws] in product.toml of {product.name}",
            hint="add regions and owner (see the README, 'Cloud images')",
        )
    return product.clouds.aws


def image_filters(config: AwsClouds, compose_id: str) -> list[dict[str, Any]]:
    """The ``describe_images`` filters that select the compose's images."""
    if config.match == "tag":
        return [{"Name": f"tag:{config.tag_key}", "Values": [compose_id]}]
    return [{"Name": "name", "Values": [config.name_pattern.replace("{compose_id}", compose_id)]}]


def describe_match(config: AwsClouds, compose_id: str) -> str:
    """How images are matched, for a reason line."""
    if config.match == "tag":
        return f"tag {config.tag_key}={compose_id}"
    return f"name {config.name_pattern.replace('{compose_id}', compose_id)}"


def query_region(
    make_client: ClientFactory,
    region: str,
    owner: str,
    filters: list[dict[str, Any]],
    *,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """``describe_images`` in one region, retried on throttling and transport errors.

    Raises:
        AwsCallFailed: auth errors at once; retryable errors after ``attempts``.
    """

    def call() -> list[dict[str, Any]]:
        client = make_client(region)
        images: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Owners": [owner], "Filters": filters}
        while True:
            page = client.describe_images(**kwargs)
            images.extend(page.get("Images", []))
            token = page.get("NextToken")
            if not token:
                return images
            kwargs["NextToken"] = token

    return call_aws(call, attempts=attempts, backoff=backoff, sleep=sleep)


def _volume_type(image: dict[str, Any]) -> str:
    root = image.get("RootDeviceName")
    mappings = [m for m in image.get("BlockDeviceMappings", []) if "Ebs" in m]
    for m in mappings:
        if m.get("DeviceName") == root:
            return str(m["Ebs"].get("VolumeType") or "unknown")
    if mappings:
        return str(mappings[0]["Ebs"].get("VolumeType") or "unknown")
    return str(image.get("RootDeviceType") or "unknown")


def to_images(region: str, found: Iterable[dict[str, Any]], arches: list[str]) -> list[CloudImage]:
    """The images of one region, one per arch (the newest when several match)."""
    by_arch: dict[str, dict[str, Any]] = {}
    for image in found:
        arch = ARCHES.get(str(image.get("Architecture", "")), str(image.get("Architecture", "")))
        if arch not in arches:
            continue
        newest = by_arch.get(arch)
        key = (str(image.get("CreationDate", "")), str(image["ImageId"]))
        if newest is None or key > (str(newest.get("CreationDate", "")), str(newest["ImageId"])):
            by_arch[arch] = image
    return [
        CloudImage(
            arch=arch,
            region=region,
            ami_id=str(image["ImageId"]),
            name=str(image.get("Name", "")),
            virtualization_type=str(image.get("VirtualizationType") or "unknown"),
            volume_type=_volume_type(image),
            public=bool(image.get("Public", False)),
        )
        for arch, image in by_arch.items()
    ]


def discover(
    compose: ComposeManifest,
    config: AwsClouds,
    make_client: ClientFactory,
    *,
    arches: list[str],
    workers: int = 4,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[CloudImage], list[MissingRegion]]:
    """Query every configured region (at most ``workers`` at once) for the compose's AMIs.

    A region that fails, or where nothing matched, is returned in ``missing`` with
    its reason; the others are unaffected. Both lists are sorted (arch, region).
    """
    filters = image_filters(config, compose.compose_id)
    wanted = config.arches or arches

    def one(region: str) -> tuple[str, list[CloudImage] | str]:
        try:
            found = query_region(
                make_client,
                region,
                config.owner,
                filters,
                attempts=attempts,
                backoff=backoff,
                sleep=sleep,
            )
        except AwsCallFailed as e:
            return region, e.reason
        images = to_images(region, found, wanted)
        if not images:
            return region, f"{NO_MATCH} {describe_match(config, compose.compose_id)}"
        return region, images

    regions = sorted(set(config.regions))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions)))) as pool:
        results = list(pool.map(one, regions))
    images = [i for _, r in results if isinstance(r, list) for i in r]
    missing = [MissingRegion(region=g, reason=r) for g, r in results if isinstance(r, str)]
    images.sort(key=lambda i: (i.arch, i.region))
    missing.sort(key=lambda m: m.region)
    return images, missing


# --- withdrawal --------------------------------------------------------------------------


@dataclass(frozen=True)
class WithdrawAction:
    """What withdrawing one AMI did (or, in a dry run, would do).

    ``was_public``: it had public launch permission; ``tagged``: the date tag was (or
    would be) added; ``done``: the changes were made (False in a dry run, on an error,
    or when there was nothing to do); ``error``: one line, when the AMI's calls failed.
    """

    region: str
    ami_id: str
    arch: str
    was_public: bool
    done: bool
    error: str | None
    tagged: bool = False

    @property
    def unchanged(self) -> bool:
        """Already private and tagged: nothing to do."""
        return self.error is None and not self.was_public and not self.tagged

    def describe(self) -> str:
        """The action, for a table: ``made private + tagged``, ``would tag``, ``unchanged``…"""
        if self.error is not None:
            return "failed"
        if self.unchanged:
            return "unchanged (already private and tagged)"
        if self.done:
            return "made private + tagged" if self.was_public else "tagged"
        return "would make private + tag" if self.was_public else "would tag"


def withdraw_one(
    client: Ec2Client,
    image: CloudImage,
    *,
    today: date,
    dry_run: bool,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> WithdrawAction:
    """Withdraw one AMI: drop public launch permission, tag it with the date.

    Reads the AMI's current state first, so a re-run on an AMI already private and
    tagged changes nothing (it keeps the first date). In a dry run only
    ``describe_images`` is called.
    """

    def retry(call: Callable[[], T]) -> T:
        return call_aws(call, attempts=attempts, backoff=backoff, sleep=sleep)

    def action(was_public: bool, done: bool, tagged: bool, error: str | None) -> WithdrawAction:
        return WithdrawAction(
            region=image.region,
            ami_id=image.ami_id,
            arch=image.arch,
            was_public=was_public,
            done=done,
            error=error,
            tagged=tagged,
        )

    try:
        found = retry(lambda: client.describe_images(ImageIds=[image.ami_id]).get("Images", []))
    except AwsCallFailed as e:
        return action(image.public, False, False, e.reason)
    if not found:
        return action(image.public, False, False, f"{image.ami_id} not found")
    public = bool(found[0].get("Public", False))
    tags = {t.get("Key"): t.get("Value") for t in found[0].get("Tags", [])}
    if not public and WITHDRAWN_TAG in tags:
        return action(False, False, False, None)
    if dry_run:
        return action(public, False, True, None)
    try:
        _make_private_and_tag(client, image.ami_id, public, today, retry)
    except AwsCallFailed as e:
        return action(public, False, True, e.reason)
    return action(public, True, True, None)


def _make_private_and_tag(
    client: Ec2Client,
    ami_id: str,
    public: bool,
    today: date,
    retry: Callable[[Callable[[], Any]], Any],
) -> None:
    """Drop the AMI's public launch permission (when it has it), then add the date tag.

    Raises:
        AwsCallFailed: a call failed (after retries on throttling and transport errors).
    """
    if public:
        retry(
            lambda: client.modify_image_attribute(
                ImageId=ami_id, LaunchPermission={"Remove": [{"Group": "all"}]}
            )
        )
    retry(
        lambda: client.create_tags(
            Resources=[ami_id], Tags=[{"Key": WITHDRAWN_TAG, "Value": today.isoformat()}]
        )
    )


def withdraw(
    images: list[CloudImage],
    make_client: ClientFactory,
    *,
    today: date,
    dry_run: bool,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    workers: int = 4,
) -> list[WithdrawAction]:
    """Withdraw the AMIs (regions in parallel, at most ``workers`` at once).

    Each AMI loses its public launch permission (``LaunchPermission`` ``Remove``
    ``Group: all``) and is tagged ``FortnightWithdrawn=<today>``. Nothing is deleted:
    to restore an AMI, add the launch permission back (``Add`` ``Group: all``) and
    delete the tag. An AMI already private and tagged is left alone (``unchanged``).
    A region that fails (after retries on throttling and transport errors) is
    reported in its actions' ``error``; the other regions are unaffected. In a dry
    run, only ``describe_images`` is called and the actions say what would happen.
    Sorted (arch, region).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - slow to import

    by_region: dict[str, list[CloudImage]] = {}
    for image in images:
        by_region.setdefault(image.region, []).append(image)

    def one(region: str) -> list[WithdrawAction]:
        try:
            client = make_client(region)
        except (ClientError, BotoCoreError) as e:
            why = reason(e)
            return [
                WithdrawAction(i.region, i.ami_id, i.arch, i.public, False, why)
                for i in by_region[region]
            ]
        return [
            withdraw_one(
                client,
                image,
                today=today,
                dry_run=dry_run,
                attempts=attempts,
                backoff=backoff,
                sleep=sleep,
            )
            for image in by_region[region]
        ]

    regions = sorted(by_region)
    if not regions:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions)))) as pool:
        actions = [a for result in pool.map(one, regions) for a in result]
    actions.sort(key=lambda a: (a.arch, a.region, a.ami_id))
    return actions
