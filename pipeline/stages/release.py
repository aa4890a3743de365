"""Releases: decide the cycle's release, and withdraw one (with its cloud images, if asked)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Trust
from pipeline.core.models.manifests import ReleaseManifest, RevocationManifest
from pipeline.core.release import decide, revocation
from pipeline.core.state import State
from pipeline.errors import InputError
from pipeline.log.freshness import Refreshed, refresh
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.load import load_state

#: How old the newest checkpoint may be before ``release.cut`` refreshes it.
REFRESH_AFTER = timedelta(days=1)


def cut_release(
    log: ManifestLog,
    product: ProductConfig,
    at: datetime,
    *,
    signers: Sequence[Signer],
    options: WriteOptions,
) -> tuple[ReleaseManifest | None, WriteResult | None, State]:
    """Record the decision of the cycle ``at`` falls in, if it needs one (see release.decide).

    Holds the checkout lock from reading the log to committing, so two runs
    at once decide once.
    """
    log.require_repo()
    with log.lock():
        state, trust = load_state(log, product, at)
        manifest = decide(state, at)
        if manifest is None:
            return None, None, state
        what = (
            f"release {manifest.compose_id}"
            if manifest.decision == "release"
            else "stale, no image"
        )
        write = log.record(
            [manifest], signers, trust, f"release: {manifest.release_id}: {what}", options
        )
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
) -> tuple[RevocationManifest | None, WriteResult | None]:
    """Withdraw a release; withdrawing it again is a no-op.

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
            return None, None
        write = log.record(
            [manifest],
            signers,
            trust,
            f"release: withdraw {release_id} ({manifest.compose_id})",
            options,
        )
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
