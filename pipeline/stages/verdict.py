"""Operator verdicts: fail a compose by hand, or waive one failed test of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import VerdictAction, VerdictManifest
from pipeline.errors import InputError
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.load import load_state, require_compose


def record_verdict(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    action: VerdictAction,
    reason: str,
    operator: str,
    test: str | None,
    suite: str | None,
    reason_url: str | None,
    signers: Sequence[Signer],
    options: WriteOptions,
    now: datetime,
) -> tuple[VerdictManifest | None, WriteResult | None]:
    """Fail a compose by hand, or waive one failed test of it. Failing twice is a no-op
    (that commits a verdict an earlier run left uncommitted: the write returned, if any).

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
        scope = f"{product.name}/{VerdictManifest.DIRECTORY}"
        settled = log.settle([scope], trust, options, signers)
        return None, settled if settled.did_anything() else None
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
        action=action,
        test=test if action == "waive" else None,
        suite=suite if action == "waive" else None,
        reason=reason.strip(),
        reason_url=reason_url or None,
        operator=operator,
    )
    what = f"waive {test} on" if action == "waive" else "fail"
    write = log.record([verdict], signers, trust, f"verdict: {what} {compose_id}", options)
    return verdict, write
