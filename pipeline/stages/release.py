"""Releases: decide the cycle's release, and withdraw one (with its cloud images, if asked)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import ReleaseManifest, RevocationManifest
from pipeline.core.release import decide, revocation
from pipeline.core.state import State
from pipeline.errors import InputError
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.load import load_state
from pipeline.stages.ostree import FaultHook, OstreeSetup, apply, no_fault, prepare, sync_refs


def cut_release(
    log: ManifestLog,
    product: ProductConfig,
    at: datetime,
    *,
    signers: Sequence[Signer],
    options: WriteOptions,
    ostree: OstreeSetup | None = None,
    fault: FaultHook = no_fault,
) -> tuple[ReleaseManifest | None, WriteResult | None, State]:
    """Record the decision of the cycle ``at`` falls in, if it needs one (see release.decide).

    Holds the checkout lock from reading the log to committing, so two runs
    at once decide once. With ``ostree``, the release's commits are pulled, signed and
    deltaed before its manifest is written, and the refs and summary move after.

    Raises:
        OstreeError: a commit could not be promoted; no release manifest is written.
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
            return None, None
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
