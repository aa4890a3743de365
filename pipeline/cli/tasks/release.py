"""``release.cut`` and ``release.revoke``."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import DEFAULT_PRODUCT, WRITE_HELP, WriteFlags, parse_at
from pipeline.cli.report import (
    report_current_release,
    report_nothing_to_cut,
    report_withdraw,
    report_write,
)
from pipeline.cli.setup import now, operator_name, task_setup, timestamp_or
from pipeline.stages.load import load_state
from pipeline.stages.release import cut_release, keep_fresh, revoke_release


@task(name="cut", help={"at": "decide as of this date or datetime (default: now)", **WRITE_HELP})
@boundary
def release_cut(
    c: Context,
    product: str = DEFAULT_PRODUCT,
    at: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Decide the current cycle's release if it needs a decision; safe to run any time."""
    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    when = parse_at(at, now())
    manifest, write, state = cut_release(
        s.log, s.config, when, signers=s.signers, options=s.options
    )
    fresh = keep_fresh(s.log, s.trust, timestamp_or(s, os.environ), when, s.options)
    if fresh is not None:
        console.err.print(f"checkpoint {fresh.checkpoint.number}: refreshed")
    if manifest is None or write is None:
        report_nothing_to_cut(state, s.config)
        return
    console.out.print(console.decision_table(manifest))
    console.out.print(manifest.explanation)
    report_write(write, [manifest.relpath()])


@task(
    name="revoke",
    help={
        "release_id": "the release to withdraw (e.g. 2018-05-15)",
        "reason": "why (shown on the page)",
        "reason_url": "a link with more",
        "operator": "who decides (default: git config user.name)",
        "cloud": "also withdraw the compose's AMIs (private + tagged; see cloud.withdraw)",
        "endpoint_url": "EC2 endpoint for every region, with --cloud (default: AWS)",
        **WRITE_HELP,
    },
)
@boundary
def release_revoke(
    c: Context,
    release_id: str,
    reason: str,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str = DEFAULT_PRODUCT,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
    cloud: bool = False,
    endpoint_url: str | None = None,
) -> None:
    """Withdraw a release: the page falls back to the previous good one and warns."""
    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    manifest, write = revoke_release(
        s.log,
        s.config,
        release_id,
        reason=reason,
        reason_url=reason_url,
        operator=operator_name(operator, s.log, os.environ),
        signers=s.signers,
        options=s.options,
        now=now(),
    )
    if manifest is None or write is None:
        console.out.print(f"release {release_id} is already withdrawn (no change)")
    else:
        report_write(write, [manifest.relpath()])
        report_current_release(load_state(s.log, s.config, now())[0])
    if cloud:
        from pipeline.stages.clouds import (  # noqa: PLC0415 - the AWS adapter loads only here
            ec2_client_factory,
            withdraw_release_images,
        )

        compose_id, actions = withdraw_release_images(
            s.log,
            s.config,
            release_id,
            make_client=ec2_client_factory(endpoint_url),
            now=now(),
            dry_run=dry_run,
        )
        report_withdraw(compose_id, actions, dry_run)
