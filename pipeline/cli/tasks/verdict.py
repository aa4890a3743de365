"""Operator verdicts: ``compose.fail`` and ``test.waive`` (release key)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import WRITE_HELP, WriteFlags
from pipeline.cli.report import report_settled, report_write
from pipeline.cli.setup import Setup, now, operator_name, task_setup
from pipeline.cli.tasks.tracker import sync_and_report

if TYPE_CHECKING:
    from pipeline.core.models.manifests import VerdictAction

VERDICT_HELP = {
    "compose_id": "the compose",
    "reason": "why (shown on the site and in the log)",
    "reason_url": "a link with more (a bug, a mailing-list post)",
    "operator": "who decides (default: git config user.name)",
    "no_tracker": "do not sync the failure tracker afterwards",
    **WRITE_HELP,
}


@task(name="fail", help=VERDICT_HELP)
@boundary
def compose_fail(
    c: Context,
    compose_id: str,
    reason: str,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str | None = None,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Fail a compose by hand, even though its tests passed (release key)."""
    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    _verdict(s, "fail", compose_id, reason=reason, reason_url=reason_url, operator=operator)
    if not no_tracker:
        sync_and_report(s, s.signers)


@task(
    name="waive", help={"test": "the failed test to accept", "suite": "its suite", **VERDICT_HELP}
)
@boundary
def waive_task(
    c: Context,
    compose_id: str,
    test: str,
    reason: str,
    suite: str | None = None,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str | None = None,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Accept one failed test of a compose as a known false negative (release key)."""
    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    _verdict(
        s,
        "waive",
        compose_id,
        reason=reason,
        reason_url=reason_url,
        operator=operator,
        test=test,
        suite=suite,
    )
    if not no_tracker:
        sync_and_report(s, s.signers)


def _verdict(
    s: Setup,
    action: VerdictAction,
    compose_id: str,
    *,
    reason: str,
    reason_url: str | None,
    operator: str | None,
    test: str | None = None,
    suite: str | None = None,
) -> None:
    from pipeline.stages.verdict import record_verdict  # noqa: PLC0415

    verdict, write = record_verdict(
        s.log,
        s.config,
        compose_id,
        action=action,
        reason=reason,
        operator=operator_name(operator, s.log, os.environ),
        test=test,
        suite=suite,
        reason_url=reason_url,
        signers=s.signers,
        options=s.options,
        now=now(),
    )
    if verdict is None or write is None:
        console.out.print(f"{compose_id} is already failed by an operator (no change)")
        if write is not None:
            report_settled(write)
    else:
        report_write(write, [verdict.relpath()])
