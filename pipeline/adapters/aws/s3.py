"""The S3 client work of publishing the site: clients, listing, reading an object's
content hash, uploading with headers, deleting in batches.

What to upload and in what order is :mod:`pipeline.site.publish`'s business; this
module only talks to S3. Credentials come from boto3's standard chain only; error
messages are built from the error code and message (:func:`.common.reason`), never
from the client's configuration. boto3 is imported inside the functions that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.adapters.aws.common import reason
from pipeline.errors import SiteError

#: An S3 client (``boto3.client("s3", ...)``); ``Any`` as in :mod:`pipeline.adapters.aws.ec2`.
S3Client = Any
ClientFactory = Callable[[], S3Client]
#: boto3's managed transfer (``boto3.s3.transfer.S3Transfer``); ``Any``, boto3 has no types.
Transfer = Any

#: Attempts per request, the first included (botocore's "standard" retry mode retries
#: throttling, 5xx and transport errors with backoff; its ``max_attempts`` counts retries
#: only, so this is ``total_max_attempts``).
ATTEMPTS = 5
#: Parallel requests (``head_object``) when reading hashes.
WORKERS = 8
#: ``delete_objects`` takes at most this many keys.
DELETE_BATCH = 1000
#: The object metadata (``x-amz-meta-sha256``) that records an object's content.
SHA256_META = "sha256"
RERUN = "re-run site.publish to finish: it uploads only what is missing"


@dataclass(frozen=True)
class Target:
    """Where the site goes: a bucket and a key prefix (``""``, or without slashes at the ends)."""

    bucket: str
    prefix: str

    def key(self, rel: str) -> str:
        """The object key of the site-relative path ``rel``."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class Content(Protocol):
    """What is known of a local file's bytes (a :class:`pipeline.site.publish.LocalFile`)."""

    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def md5(self) -> str: ...


@dataclass(frozen=True)
class RemoteObject:
    """An object under the prefix; ``sha256`` is its metadata when it was read (else None)."""

    rel: str
    size: int
    etag: str
    sha256: str | None = None

    def same_as(self, local: Content) -> bool:
        """The object holds ``local``'s bytes: same size, and the ETag is its md5 (one-part
        upload, no SSE-KMS) or the ``sha256`` metadata is its sha256."""
        if self.size != local.size:
            return False
        return self.etag == local.md5 or self.sha256 == local.sha256


def s3_client_factory(
    endpoint_url: str | None = None, *, attempts: int = ATTEMPTS
) -> ClientFactory:
    """S3 clients through boto3's standard credential chain, with botocore's "standard"
    retries (throttling, 5xx and transport errors, with backoff) up to ``attempts``.

    ``endpoint_url``: another S3-compatible host (moto in tests, a private store).
    """
    from botocore.config import Config  # noqa: PLC0415 - botocore is slow to import

    config = Config(
        retries={"total_max_attempts": max(1, attempts), "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )

    def make() -> S3Client:
        import boto3  # noqa: PLC0415 - boto3 is slow to import

        return boto3.client("s3", endpoint_url=endpoint_url, config=config)

    return make


def _hidden(part: str) -> bool:
    return part.startswith(".")


def list_remote(client: S3Client, target: Target) -> dict[str, RemoteObject]:
    """The objects under the prefix, by site-relative path (``list_objects_v2``, every page).

    Keys with a dot-segment (``.well-known/``…) are left out: the site does not manage them,
    so they are never deleted.

    Raises:
        SiteError: the bucket cannot be listed (missing, access denied, unreachable).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    start = f"{target.prefix}/" if target.prefix else ""
    found: dict[str, RemoteObject] = {}
    kwargs: dict[str, Any] = {"Bucket": target.bucket, "Prefix": start}
    try:
        while True:
            page = client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                rel = str(obj["Key"])[len(start) :]
                if rel and not any(_hidden(p) for p in rel.split("/")):
                    etag = str(obj.get("ETag", "")).strip('"')
                    found[rel] = RemoteObject(rel, int(obj.get("Size", 0)), etag)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found
            kwargs["ContinuationToken"] = token
    except (ClientError, BotoCoreError) as e:
        raise SiteError(
            f"cannot list {target}: {reason(e)}", hint="check --target and the credentials"
        ) from e


def read_hashes(
    client: S3Client,
    target: Target,
    local: Mapping[str, Content],
    remote: Mapping[str, RemoteObject],
    *,
    workers: int = WORKERS,
) -> dict[str, RemoteObject]:
    """``remote``, with the sha256 metadata read (``head_object``) where size and ETag
    cannot settle whether an object holds its file: same size, an ETag that is not the md5.

    Raises:
        SiteError: a ``head_object`` failed (after retries).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    todo = [
        rel
        for rel, obj in remote.items()
        if rel in local and obj.size == local[rel].size and obj.etag != local[rel].md5
    ]

    def head(rel: str) -> RemoteObject:
        key = target.key(rel)
        try:
            meta = client.head_object(Bucket=target.bucket, Key=key).get("Metadata", {})
        except (ClientError, BotoCoreError) as e:
            raise SiteError(f"cannot read {key}: {reason(e)}", hint=RERUN) from e
        obj = remote[rel]
        return RemoteObject(rel, obj.size, obj.etag, meta.get(SHA256_META))

    updated = dict(remote)
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            for obj in pool.map(head, todo):
                updated[obj.rel] = obj
    return updated


def transfer(client: S3Client, multipart_threshold: int) -> Transfer:
    """boto3's managed transfer over ``client``: files of ``multipart_threshold`` bytes or
    more go up in parts. Use it as a context manager."""
    from boto3.s3.transfer import S3Transfer, TransferConfig  # noqa: PLC0415 - slow to import

    config = TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=max(multipart_threshold, 5 << 20),
        max_concurrency=4,
    )
    return S3Transfer(client, config)


def upload_file(
    transfer: Transfer, bucket: str, key: str, path: Path, *, headers: Mapping[str, Any]
) -> None:
    """Upload one file with ``headers`` (boto3's ``extra_args``: ``ContentType``…), in
    parts when large.

    Raises:
        SiteError: it failed after retries, or the file cannot be read (names the key).
    """
    from boto3.exceptions import S3UploadFailedError  # noqa: PLC0415 - boto3 is slow to import
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        transfer.upload_file(str(path), bucket, key, extra_args=dict(headers))
    except (ClientError, BotoCoreError, S3UploadFailedError) as e:
        raise SiteError(f"uploading {key} failed: {reason(e)}", hint=RERUN) from e
    except OSError as e:
        raise SiteError(f"uploading {key} failed: cannot read {path}: {e}", hint=RERUN) from e


def delete_keys(
    client: S3Client,
    target: Target,
    rels: Iterable[str],
    on_deleted: Callable[[list[str]], None],
) -> None:
    """Delete the objects of ``rels`` (``delete_objects``, up to 1000 keys a request);
    ``on_deleted`` is told the keys of each batch that are gone.

    Raises:
        SiteError: a request or a key failed (names the first key that did).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    keys = [target.key(rel) for rel in rels]
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        try:
            answer = client.delete_objects(
                Bucket=target.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as e:
            raise SiteError(f"deleting {batch[0]} failed: {reason(e)}", hint=RERUN) from e
        errors = answer.get("Errors", [])
        failed = {str(e.get("Key")) for e in errors}
        on_deleted([k for k in batch if k not in failed])
        if errors:
            first = errors[0]
            raise SiteError(
                f"deleting {first.get('Key')} failed: {first.get('Code')}: {first.get('Message')}",
                hint=RERUN,
            )
