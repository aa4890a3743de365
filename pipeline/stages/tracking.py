"""The failure tracker: pick the product's backend and reconcile it with the log."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import TrackerEventManifest
from pipeline.core.state import State
from pipeline.core.tracker import (
    Bug,
    LocalTracker,
    SyncReport,
    TrackerBackend,
    sync,
    sync_state,
)
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult

BUGZILLA_KEY_ENV = "FORTNIGHT_BUGZILLA_API_KEY"


class DryRunTracker:
    """Reads from a real tracker; files, comments and closes nothing."""

    def __init__(self, inner: TrackerBackend) -> None:
        self.inner = inner
        self.name = inner.name

    def find_open(self, tag: str) -> list[Bug]:
        """As the real tracker."""
        return self.inner.find_open(tag)

    def get(self, bug_id: str) -> Bug:
        """As the real tracker."""
        return self.inner.get(bug_id)

    def create(self, tag: str, summary: str, description: str) -> Bug:
        """Pretend: bug 0."""
        return Bug("0", "(dry run)", True, summary, (description,))

    def comment(self, bug_id: str, text: str) -> None:
        """Do nothing."""

    def close(self, bug_id: str, comment: str) -> None:
        """Do nothing."""


def make_tracker(
    product: ProductConfig, state: State, env: Mapping[str, str], site_url: str = ""
) -> TrackerBackend:
    """The product's tracker backend; a local tracker's bug URLs are the site's pages
    (absolute under ``site_url`` when it is known)."""
    config = product.tracker
    if config.backend == "local" or config.bugzilla is None:
        return LocalTracker(state, site_url)
    from pipeline.adapters.bugzilla import BugzillaTracker  # noqa: PLC0415 - only when configured

    bz = config.bugzilla
    return BugzillaTracker(
        url=bz.url,
        product=bz.product,
        component=bz.component,
        version=bz.version,
        tag_field=bz.tag_field,
        api_key=env.get(BUGZILLA_KEY_ENV) or None,
    )


def sync_tracker(
    log: ManifestLog,
    product: ProductConfig,
    *,
    signers: Sequence[Signer],
    options: WriteOptions,
    now: datetime,
    backend_for: Callable[[State], TrackerBackend],
    on_settled: Callable[[WriteResult], None] = lambda write: None,
) -> SyncReport:
    """Reconcile the failure tracker with the log, recording each action as it happens.

    First, tracker events an earlier run left uncommitted (killed before its commit, or
    ``--no-commit``) are committed (and pushed, when asked); ``on_settled`` hears of it.

    Raises:
        TrackerError: the tracker failed; what was done and recorded stands.
    """
    log.require_repo()
    with log.lock():  # one sync at a time per checkout: two would both file a bug
        trust = log.load_trust()
        scope = f"{product.name}/{TrackerEventManifest.DIRECTORY}"
        settled = log.settle([scope], trust, options, signers)
        if settled.did_anything():
            on_settled(settled)
        verified = log.load_verified(trust, products=[product.name])
        state = sync_state([v.manifest for v in verified], product, now)
        backend = backend_for(state)
        if options.dry_run:
            backend = DryRunTracker(backend)

        def record(event: TrackerEventManifest) -> None:
            message = f"tracker: {event.action} {event.bug} for {event.compose_id}"
            log.record([event], signers, trust, message, options)

        return sync(state, backend, record, now)
