"""Operations the tasks (and the demo) run: each loads the verified log, acts, and records.

These glue the stages to the store; they hold no policy of their own. Each
verifies what it loads first (the product's folder of the log) and fails
closed; ``invoke verify`` checks the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from securesystemslib.signer import Signer

from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import (
    Image,
    ReleaseManifest,
    ResultManifest,
    RevocationManifest,
    TrackerEventManifest,
    VerdictManifest,
)
from pipeline.core.release import decide, revocation
from pipeline.core.state import State
from pipeline.core.tracker import LocalTracker, SyncReport, sync
from pipeline.core.trackers import Bug, TrackerBackend
from pipeline.errors import ConfigError, InputError, TestRunError
from pipeline.log.store import ManifestLog, WriteOptions, WriteResult
from pipeline.stages.battery import plan_suites
from pipeline.stages.load import load_state, require_compose
from pipeline.stages.testing import (
    Clock,
    LogStore,
    RunSettings,
    count_tests,
    image_files,
    import_junit,
    run_suite,
)

BUGZILLA_KEY_ENV = "FORTNIGHT_BUGZILLA_API_KEY"


# --- test runs -------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What test.run or test.import did."""

    manifests: list[ResultManifest]
    write: WriteResult


def run_battery(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    suite: str | None,
    arches: Sequence[str],
    logs: LogStore,
    scratch: Path,
    signers: Sequence[Signer],
    options: WriteOptions,
    base_env: Mapping[str, str],
    clock: Clock,
    runner: str,
    workers: int,
    session: requests.Session,
    on_plan: Callable[[int], None] = lambda total: None,
    on_test: Callable[[], None] = lambda: None,
) -> RunOutcome:
    """Run the battery (or one suite) on a recorded compose and record one manifest per suite.

    Raises:
        InputError: the compose is not recorded, or its files are missing.
        TestRunError: the compose has no image, or nothing matches ``suite``/``arches``.
        ConfigError: the battery is broken.
    """
    state, trust = load_state(log, product, clock())
    view = require_compose(state, compose_id)
    if view.compose.outcome == "no-image":
        raise TestRunError(
            f"{compose_id}: produced no image; there is nothing to test",
            hint="its status is already no-image",
        )
    suites = plan_suites(product, log.product_dir(product.name), suite)
    plan = [(s, s.images(view.compose, list(arches))) for s in suites]
    runnable = [(s, imgs) for s, imgs in plan if imgs]
    if not runnable:
        raise TestRunError(
            f"{compose_id}: no image matches the battery"
            + (f" on {', '.join(arches)}" if arches else ""),
            hint="check --arch and the types and arches in the battery",
        )
    needed: dict[tuple[str, str, str, str, int], Image] = {
        img.key(): img for _, imgs in runnable for img in imgs
    }
    files = image_files(view.compose, list(needed.values()), scratch / "images", session)
    on_plan(sum(count_tests(s, imgs) for s, imgs in runnable))
    settings = RunSettings(
        view.compose, logs, scratch / "work", base_env, clock, runner, workers or 1
    )
    manifests = [
        run_suite(s, imgs, files, settings, arches=list(arches), on_test=on_test)
        for s, imgs in runnable
    ]
    summary = ", ".join(f"{m.suite} {m.result}" for m in manifests)
    write = log.record(manifests, signers, trust, f"test: {compose_id}: {summary}", options)
    return RunOutcome(manifests, write)


def import_results(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    suite: str,
    junit: Path,
    *,
    advisory: Sequence[str],
    arches: Sequence[str],
    logs: LogStore,
    signers: Sequence[Signer],
    options: WriteOptions,
    clock: Clock,
    runner: str,
) -> RunOutcome:
    """Record a JUnit XML report as a test-result manifest of ``suite``.

    Advisory patterns come from the suite's ``advisory`` list in product.toml
    plus ``advisory``; every other test blocks.

    Raises:
        InputError: the compose is unknown, has no matching image, or the XML is bad.
    """
    state, trust = load_state(log, product, clock())
    view = require_compose(state, compose_id)
    spec = product.battery.suites.get(suite)
    if spec is not None and not spec.external:
        raise ConfigError(
            f"--suite {suite}: runs by command in the battery; import into an external suite",
            hint=f"add [battery.suites.{suite}] external = true, or another name",
        )
    images = [img for img in view.compose.images if not arches or img.arch in arches]
    if not images and view.compose.images:
        raise InputError(f"{compose_id}: no image on {', '.join(arches)}")
    patterns = [*(spec.advisory if spec else []), *advisory]
    manifest = import_junit(
        junit,
        view.compose,
        suite,
        advisory=patterns,
        images=images,
        logs=logs,
        clock=clock,
        runner=runner,
    )
    write = log.record(
        [manifest],
        signers,
        trust,
        f"test: {compose_id}: {suite} {manifest.result} (imported)",
        options,
    )
    return RunOutcome([manifest], write)


# --- operator verdicts -----------------------------------------------------------------


def record_verdict(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    action: str,
    reason: str,
    operator: str,
    test: str | None,
    suite: str | None,
    reason_url: str | None,
    signers: Sequence[Signer],
    options: WriteOptions,
    now: datetime,
) -> tuple[VerdictManifest | None, WriteResult | None]:
    """Fail a compose by hand, or waive one failed test of it. Failing twice is a no-op.

    Raises:
        InputError: the compose is unknown or produced no image, the reason is
            empty, or a waiver names no failed blocking test.
    """
    if not reason.strip():
        raise InputError("--reason: must not be empty", hint="say why, for the page and the log")
    state, trust = load_state(log, product, now)
    view = require_compose(state, compose_id)
    if view.compose.outcome == "no-image":
        raise InputError(f"{compose_id}: produced no image; there is nothing to fail or waive")
    if action == "fail" and view.status == "failed-manual":
        return None, None
    if action == "waive":
        failed = sorted(
            {
                t.case.name
                for s in view.suites.values()
                if suite in (None, s.name)
                for t in s.blocking_failures
            }
        )
        if test not in failed:
            raise InputError(
                f"--test {test}: no failed blocking test of that name in {compose_id}"
                + (f" suite {suite}" if suite else ""),
                hint=f"failed: {', '.join(failed) or 'none'}",
            )
    verdict = VerdictManifest(
        product=product.name,
        created=now,
        compose_id=compose_id,
        number=len(view.verdicts) + 1,
        action=action,  # type: ignore[arg-type]
        test=test if action == "waive" else None,
        suite=suite if action == "waive" else None,
        reason=reason.strip(),
        reason_url=reason_url or None,
        operator=operator,
    )
    what = f"waive {test} on" if action == "waive" else "fail"
    write = log.record([verdict], signers, trust, f"verdict: {what} {compose_id}", options)
    return verdict, write


# --- tracker ---------------------------------------------------------------------------


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


def make_tracker(product: ProductConfig, state: State, env: Mapping[str, str]) -> TrackerBackend:
    """The product's tracker backend."""
    config = product.tracker
    if config.backend == "local" or config.bugzilla is None:
        return LocalTracker(state)
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
) -> SyncReport:
    """Reconcile the failure tracker with the log, recording each action as it happens.

    Raises:
        TrackerError: the tracker failed; what was done and recorded stands.
    """
    log.require_repo()
    with log.lock():  # one sync at a time per checkout: two would both file a bug
        state, trust = load_state(log, product, now)
        backend = backend_for(state)
        if options.dry_run:
            backend = DryRunTracker(backend)

        def record(event: TrackerEventManifest) -> None:
            message = f"tracker: {event.action} {event.bug} for {event.compose_id}"
            log.record([event], signers, trust, message, options)

        return sync(state, backend, record, now)


# --- releases --------------------------------------------------------------------------


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


# --- cloud images ----------------------------------------------------------------------
