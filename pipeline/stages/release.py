"""Releases: decide the cycle's release, and withdraw one (with its cloud images, if asked)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Trust, format_timestamp
from pipeline.core.models.manifests import ComposeManifest, ReleaseManifest, RevocationManifest
from pipeline.core.release import decide, revocation
from pipeline.core.state import State, derive
from pipeline.errors import ConfigError, InputError
from pipeline.log.freshness import Refreshed, refresh
from pipeline.log.reader import Verified
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.load import load_state
from pipeline.stages.ostree import FaultHook, OstreeSetup, apply, no_fault, prepare, sync_refs

#: How far past the clock ``--at`` may be (clocks of the machines that write a log differ).
AT_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class AtBounds:
    """Where a decision's time may fall: not before the newest manifest it decides on,
    not after ``now + skew`` (a decision from the future would not show today)."""

    now: datetime
    skew: timedelta = AT_SKEW


def check_at(verified: Sequence[Verified], at: datetime, bounds: AtBounds, product: str) -> None:
    """Refuse a decision time outside ``bounds``.

    Raises:
        ConfigError: ``at`` is before the newest manifest, or after now plus the skew.
    """
    if at > bounds.now + bounds.skew:
        raise ConfigError(
            f"--at {format_timestamp(at)}: later than now ({format_timestamp(bounds.now)}) "
            f"plus {int(bounds.skew.total_seconds()) // 60} min; a decision from the future "
            "would not show in status or on the site today",
            hint="omit --at (or pass --simulate on a scratch log)",
        )
    newest = max(verified, key=lambda v: v.manifest.created, default=None)
    if newest is not None and at < newest.manifest.created:
        raise ConfigError(
            f"--at {format_timestamp(at)}: earlier than the newest manifest of {product} "
            f"(manifests/{newest.name}, created {format_timestamp(newest.manifest.created)}); "
            "it would record a permanent decision that ignores it",
            hint="omit --at (or pass --simulate on a scratch log)",
        )


def composes_after(log: ManifestLog, product: ProductConfig, at: datetime) -> list[ComposeManifest]:
    """The product's composes recorded after ``at``: a decision at ``at`` ignores them.

    Raises:
        VerificationError: a manifest of the product failed verification.
    """
    verified = log.load_verified(log.load_trust(), products=[product.name])
    later = [
        v.manifest
        for v in verified
        if isinstance(v.manifest, ComposeManifest) and v.manifest.created > at
    ]
    return sorted(later, key=lambda m: m.created)


#: How old the newest checkpoint may be before ``release.cut`` refreshes it.
REFRESH_AFTER = timedelta(days=1)


def cut_release(
    log: ManifestLog,
    product: ProductConfig,
    at: datetime,
    *,
    signers: Sequence[Signer],
    options: WriteOptions,
    bounds: AtBounds | None = None,
    ostree: OstreeSetup | None = None,
    fault: FaultHook = no_fault,
) -> tuple[ReleaseManifest | None, WriteResult | None, State]:
    """Record the decision of the cycle ``at`` falls in, if it needs one (see release.decide).

    With ``bounds`` (the operator's task; a simulation passes none), ``at`` must fall
    between the newest manifest of the product and the clock plus a small skew.
    Holds the checkout lock from reading the log to committing, so two runs
    at once decide once. With nothing to decide, a decision an earlier run left
    uncommitted is committed (and pushed, when asked): the write returned then, if any.
    With ``ostree``, the release's commits are pulled, signed and deltaed before its
    manifest is written, and the refs and summary move after.

    Raises:
        ConfigError: ``at`` is outside ``bounds``.
        VerificationError: a manifest of the product failed verification.
        OstreeError: a commit could not be promoted; no release manifest is written.
    """
    log.require_repo()
    with log.lock():
        trust = log.load_trust()
        verified = log.load_verified(trust, products=[product.name])
        if bounds is not None:
            check_at(verified, at, bounds, product.name)
        state = derive([v.manifest for v in verified], product, at)
        manifest = decide(state, at)
        if manifest is None:
            settled = log.settle(
                [f"{product.name}/{ReleaseManifest.DIRECTORY}"], trust, options, signers
            )
            return None, settled if settled.did_anything() else None, state
        what = (
            f"release {manifest.compose_id}"
            if manifest.decision == "release"
            else "stale, no image"
        )
        promote = ostree if not options.dry_run else None
        if promote is not None:
            prepare(promote, manifest.ostree, fault)
        write = log.record(
            [manifest], signers, trust, f"release: {manifest.release_id}: {what}", options
        )
        if promote is not None and options.commit:
            fault("recorded")
            apply(promote, manifest.ostree, fault)
        return manifest, write, state


def revoke_release(
    log: ManifestLog,
    product: ProductConfig,
    release_id: str,
    *,
    reason: str,
    reason_url: str | None,
    operator: str,
    signers: Sequence[Signer],
    options: WriteOptions,
    now: datetime,
    ostree: OstreeSetup | None = None,
) -> tuple[RevocationManifest | None, WriteResult | None]:
    """Withdraw a release; withdrawing it again is a no-op. With ``ostree``, the public
    refs move back to the release that becomes current (and the summary is re-signed),
    also when it was withdrawn before (the refs are made to match the log).

    A revocation an earlier run left uncommitted is committed (see :func:`cut_release`).

    Raises:
        InputError: no such release, a stale decision, or an empty reason.
    """
    log.require_repo()
    with log.lock():
        state, trust = load_state(log, product, now)
        try:
            manifest = revocation(state, release_id, reason, reason_url, operator, now)
        except LookupError as e:
            raise InputError(
                f"--release-id {release_id}: {e.args[0]}",
                hint="see 'invoke status' for release ids",
            ) from e
        except ValueError as e:
            raise InputError(f"--release-id {release_id}: {e}") from e
        if manifest is None:
            if ostree is not None and not options.dry_run:
                sync_refs(ostree, state)
            scope = f"{product.name}/{RevocationManifest.DIRECTORY}"
            settled = log.settle([scope], trust, options, signers)
            return None, settled if settled.did_anything() else None
        write = log.record(
            [manifest],
            signers,
            trust,
            f"release: withdraw {release_id} ({manifest.compose_id})",
            options,
        )
        if ostree is not None and not options.dry_run and options.commit:
            sync_refs(ostree, load_state(log, product, now)[0])
        return manifest, write


def keep_fresh(
    log: ManifestLog,
    trust: Trust,
    signers: Sequence[Signer],
    at: datetime,
    options: WriteOptions,
) -> Refreshed | None:
    """Refresh the log's newest checkpoint (:func:`pipeline.log.freshness.refresh`) when it
    was signed a day or more before ``at``, so a daily ``release.cut`` keeps the log fresh
    with at most one commit a day; None when it is fresh enough, on a dry run or without
    a commit.

    Raises:
        TrustError: the log does not verify.
    """
    if options.dry_run or not options.commit:
        return None
    head = log.reader.verify_log(trust).head
    if head is None or at - head.time < REFRESH_AFTER:
        return None
    return refresh(log.writer, trust, signers, at, validity=options.validity, push=options.push)
