"""Discover a compose's AMIs in EC2, per region, in parallel (``invoke cloud.discover``).

Only ``describe_images`` is called, through a client the caller makes (boto3's
standard credential chain; an ``endpoint_url`` for tests or private clouds).
A region that fails is retried, then recorded as missing with a one-line reason
built from the error code and message, never from the client's configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from pipeline.config import AwsClouds, ProductConfig
from pipeline.errors import ConfigError
from pipeline.models import CloudImage, ComposeManifest, MissingRegion

#: An EC2 client (``boto3.client("ec2", region_name=...)``). boto3 ships no type
#: information without the separate stubs, so it is ``Any`` here.
Ec2Client = Any
ClientFactory = Callable[[str], Ec2Client]

#: Error codes worth retrying: EC2 is throttling or briefly unavailable.
RETRY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
    }
)
#: Transport errors worth retrying: the endpoint is down or slow.
RETRY_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)

#: EC2 architecture names to the compose's.
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64", "i386": "i386"}
#: How a region without a matching AMI is reported (as opposed to a region that failed).
NO_MATCH = "no image matched"


class RegionFailed(Exception):
    """A region could not be queried; ``reason`` is one line, safe to record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _client_reason(e: ClientError) -> str:
    error = e.response.get("Error", {})
    code = error.get("Code") or "ClientError"
    message = error.get("Message") or ""
    return _one_line(f"{code}: {message}" if message else str(code))


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
        RegionFailed: auth errors at once; retryable errors after ``attempts``.
    """
    reason = "not queried"
    for attempt in range(max(attempts, 1)):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
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
        except ClientError as e:
            reason = _client_reason(e)
            code = e.response.get("Error", {}).get("Code", "")
            if code not in RETRY_CODES:
                raise RegionFailed(reason) from None
        except RETRY_ERRORS as e:
            reason = _one_line(f"{type(e).__name__}: {e}")
        except BotoCoreError as e:  # no credentials, bad configuration: not retried
            raise RegionFailed(_one_line(f"{type(e).__name__}: {e}")) from None
    raise RegionFailed(f"{reason} (after {max(attempts, 1)} attempts)")


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
        except RegionFailed as e:
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
