"""Verify a published site end to end, from a pinned root: what ``fortnight-verify`` runs.

In order, stopping at the first thing that does not hold (one line, exit 4):

1. the root chain (``manifests/trust/<N>.json``) from the pin (``--root``, else the one
   this verifier recorded for the site on first use);
2. ``site-index.json`` is signed by a threshold of the ``site`` role's keys of the newest
   root version, and has not expired (else ``frozen: …``);
3. the checkpoint it names (``manifests/checkpoints/<N>.json``) is that checkpoint, signed by
   a trusted role, and is the Merkle root of the whole published ``manifests/log.idx``;
4. the checkpoint is not older than the newest this verifier saw for the site, and
   ``log.idx`` extends that one (``rollback: …`` otherwise);
5. every file the index names has its size and sha256;
6. with ``--image``, the file's size and sha256 are those of an image in a signed stream
   document (``streams/*.json``) of the site.

It then names, from those signed streams, the OSTree commit released per arch: what a host
that follows the public ref should be on (``rpm-ostree status`` shows it).

Then it records the pin and the checkpoint in the state folder, per site.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.adapters.sitefetch import SiteSource, check_name
from pipeline.core.merkle import TreeBuilder, leaf_hash
from pipeline.core.models.common import Envelope, SiteIndex, Trust, format_timestamp
from pipeline.errors import TrustError, describe_validation_error
from pipeline.fsutil import atomic_write
from pipeline.log.checkpoints import (
    IndexEntry,
    check_signed,
    checkpoint_path,
    frozen_message,
    parse_index,
    read_checkpoint,
)
from pipeline.log.signing import ManifestRejected, loads_strict, signed_bytes
from pipeline.log.trust import RootChain, read_chain, valid_signers

INDEX_NAME = "site-index.json"


@dataclass(frozen=True)
class SiteVerdict:
    """What held: the root fingerprint, the checkpoint, how many files were checked."""

    fingerprint: str
    number: int
    size: int
    files: int
    expires: datetime
    image: str | None = None
    #: The released OSTree tree per arch, from the signed streams: (stream, arch, ref,
    #: commit, version); a host that follows the ref should be on that commit.
    commits: tuple[tuple[str, str, str, str, str], ...] = ()


def _required(site: SiteSource, name: str) -> bytes:
    data = site.get(name)
    if data is None:
        raise TrustError(f"{name}: missing from {site.where}")
    return data


def _chain(site: SiteSource, pin: str | None, now: datetime, tmp: Path) -> RootChain:
    raw = _required(site, "manifests/trust.json")
    try:
        version = int(loads_strict(raw)["signed"]["version"])
    except (ManifestRejected, KeyError, TypeError, ValueError) as e:
        raise TrustError(f"manifests/trust.json: not root metadata ({e})") from None
    root = tmp / "manifests"
    (root / "trust").mkdir(parents=True)
    (root / "trust.json").write_bytes(raw)
    for n in range(1, version + 1):
        (root / "trust" / f"{n}.json").write_bytes(_required(site, f"manifests/trust/{n}.json"))
    return read_chain(root, pin, now)


def _index(site: SiteSource, trust: Trust, now: datetime) -> SiteIndex:
    raw = _required(site, INDEX_NAME)
    try:
        envelope = Envelope.model_validate(loads_strict(raw), strict=True)
        index = SiteIndex.model_validate(envelope.signed, strict=True)
        data = signed_bytes(envelope.signed)
    except ManifestRejected as e:
        raise TrustError(f"{INDEX_NAME}: {e.reason}") from None
    except ValidationError as e:
        raise TrustError(f"{INDEX_NAME}: not a site index ({describe_validation_error(e)})") from e
    role = trust.roles["site"]
    count = valid_signers(envelope, data, role, trust)
    if not role.keyids or count < role.threshold:
        raise TrustError(
            f"{INDEX_NAME}: not signed by a threshold of the site role's keys "
            f"({count} of {role.threshold})"
        )
    if index.expires <= now:
        raise TrustError(
            f"{INDEX_NAME}: frozen: the site's checkpoint expired at "
            f"{format_timestamp(index.expires)} (signed at {format_timestamp(index.time)})"
        )
    return index


def _prefix_roots(entries: list[IndexEntry], sizes: set[int]) -> Iterator[tuple[int, str]]:
    builder = TreeBuilder()
    if 0 in sizes:
        yield 0, builder.root().hex()
    for entry in entries:
        builder.append(leaf_hash(entry.line()))
        if builder.size in sizes:
            yield builder.size, builder.root().hex()


def _checkpoint(
    site: SiteSource, index: SiteIndex, trust: Trust, tmp: Path, seen: dict[str, Any]
) -> None:
    head = index.checkpoint
    path = tmp / f"{head.number}.json"
    path.write_bytes(_required(site, checkpoint_path(head.number)))
    cp = read_checkpoint(path, head.number)
    if (cp.signed.size, cp.signed.root) != (head.size, head.root):
        raise TrustError(f"{cp.path}: not the checkpoint {INDEX_NAME} names")
    if cp.signed.expires <= index.time:
        raise TrustError(f"{cp.path}: {frozen_message(cp.signed)}")
    check_signed(cp, [trust], [])
    entries = parse_index(_required(site, "manifests/log.idx"))
    if len(entries) != head.size:
        raise TrustError(f"manifests/log.idx: {len(entries)} entries, {cp.path} covers {head.size}")
    number, size = int(seen.get("number", 0)), int(seen.get("size", 0))
    if number > head.number or size > head.size:
        raise TrustError(
            f"rollback: this verifier saw checkpoint {number}, "
            f"the site has {head.number} < {number}",
            hint="the site (or a mirror) serves an older copy; do not use it",
        )
    roots = dict(_prefix_roots(entries, {head.size, size}))
    if roots[head.size] != head.root:
        raise TrustError(f"{cp.path}: its root is not that of manifests/log.idx")
    if number and roots.get(size) != seen.get("root"):
        raise TrustError(
            f"manifests/log.idx: does not extend checkpoint {number} this verifier saw",
            hint="the log's history was rewritten; do not use it",
        )


def _files(site: SiteSource, index: SiteIndex) -> None:
    for name, claim in index.files.items():
        data = site.get(check_name(name, INDEX_NAME))
        if data is None:
            raise TrustError(f"{name}: missing (the signed {INDEX_NAME} names it)")
        sha = hashlib.sha256(data).hexdigest()
        if (len(data), sha) != (claim.size, claim.sha256):
            raise TrustError(
                f"{name}: differs from the signed {INDEX_NAME} (sha256 {sha[:12]}…, "
                f"signed {claim.sha256[:12]}…)"
            )


def _digests(doc: Any) -> Iterator[tuple[int, str]]:
    if isinstance(doc, dict):
        if isinstance(doc.get("sha256"), str) and isinstance(doc.get("size"), int):
            yield doc["size"], doc["sha256"]
        for value in doc.values():
            yield from _digests(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _digests(value)


def check_image(site: SiteSource, index: SiteIndex, image: Path) -> str:
    """The stream that names ``image`` by size and sha256 (files already checked).

    Raises:
        TrustError: no signed stream names it.
    """
    digest, size = hashlib.sha256(), 0
    with image.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    sha = digest.hexdigest()
    for name in index.files:
        if name.startswith("streams/") and name.endswith(".json"):
            doc = json.loads(_required(site, name))
            if (size, sha) in set(_digests(doc)):
                return name
    raise TrustError(
        f"{image}: not an image of the current signed release (size {size}, sha256 {sha[:12]}…)",
        hint="download it again from the links on the site's download page",
    )


def released_commits(
    site: SiteSource, index: SiteIndex
) -> tuple[tuple[str, str, str, str, str], ...]:
    """The OSTree commit per arch each signed stream names (files already checked)."""
    found: list[tuple[str, str, str, str, str]] = []
    for name in sorted(index.files):
        if not (name.startswith("streams/") and name.endswith(".json")):
            continue
        doc = json.loads(_required(site, name))
        arches = doc.get("architectures") if isinstance(doc, dict) else None
        for arch, entry in sorted(arches.items() if isinstance(arches, dict) else []):
            tree = entry.get("ostree") if isinstance(entry, dict) else None
            if isinstance(tree, dict) and all(
                isinstance(tree.get(k), str) for k in ("ref", "commit", "version")
            ):
                found.append((name, arch, tree["ref"], tree["commit"], tree["version"]))
    return tuple(found)


def _state_file(state: Path, where: str) -> Path:
    return state / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"


def verify_site(
    site: SiteSource, pin: str | None, now: datetime, state: Path, image: Path | None = None
) -> SiteVerdict:
    """Verify ``site`` (see the module's steps) and record what was seen in ``state``.

    Raises:
        TrustError: the first thing that does not hold.
        FetchError: the site could not be read.
        InputError: the index names an unsafe file name.
    """
    saved = _state_file(state, site.where)
    try:
        seen: dict[str, Any] = json.loads(saved.read_bytes())
    except (OSError, ValueError):
        seen = {}
    with tempfile.TemporaryDirectory(prefix="fortnight-verify-") as tmp:
        chain = _chain(site, pin or seen.get("fingerprint"), now, Path(tmp))
        index = _index(site, chain.trust, now)
        _checkpoint(site, index, chain.trust, Path(tmp), seen)
    _files(site, index)
    found = check_image(site, index, image) if image is not None else None
    head = index.checkpoint
    record = {"fingerprint": chain.fingerprint, "number": head.number}
    record |= {"size": head.size, "root": head.root, "site": site.where}
    state.mkdir(parents=True, exist_ok=True)
    atomic_write(saved, json.dumps(record, indent=2, sort_keys=True).encode() + b"\n")
    return SiteVerdict(
        chain.fingerprint,
        head.number,
        head.size,
        len(index.files),
        index.expires,
        found,
        released_commits(site, index),
    )
