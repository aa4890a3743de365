"""``release.cut`` and ``release.revoke``."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import WRITE_HELP, WriteFlags, parse_at
from pipeline.cli.report import (
    report_current_release,
    report_nothing_to_cut,
    report_settled,
    report_withdraw,
    report_write,
)
from pipeline.cli.setup import now, operator_name, task_setup, timestamp_or


@task(
    name="cut",
    help={
        "at": "decide as of this date or datetime (default: now); not before the product's "
        "newest manifest, not after now plus 10 minutes",
        "simulate": "allow any --at (rehearsals on a scratch log; the decision is permanent)",
        **WRITE_HELP,
    },
)
@boundary
def release_cut(
    c: Context,
    product: str | None = None,
    at: str | None = None,
    simulate: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Decide the current cycle's release if it needs a decision; safe to run any time."""
    from pipeline.core.models.common import format_timestamp  # noqa: PLC0415
    from pipeline.stages.ostree import ostree_setup  # noqa: PLC0415
    from pipeline.stages.release import (  # noqa: PLC0415
        AtBounds,
        composes_after,
        cut_release,
        keep_fresh,
    )

    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    clock = now()
    when = parse_at(at, clock)
    bounds = AtBounds(clock) if at and not simulate else None
    manifest, write, state = cut_release(
        s.log,
        s.config,
        when,
        signers=s.signers,
        options=s.options,
        bounds=bounds,
        ostree=ostree_setup(s.config, s.log.repo, os.environ),
    )
    if dry_run and at:
        for later in composes_after(s.log, s.config, when):
            console.out.print(
                f"ignored: {later.compose_id}: recorded {format_timestamp(later.created)}, "
                f"after --at {format_timestamp(when)}"
            )
    fresh = keep_fresh(s.log, s.trust, timestamp_or(s, os.environ), when, s.options)
    if fresh is not None:
        console.err.print(f"checkpoint {fresh.checkpoint.number}: refreshed")
    if manifest is None or write is None:
        report_nothing_to_cut(state, s.config)
        if write is not None:
            report_settled(write)
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
    product: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
    cloud: bool = False,
    endpoint_url: str | None = None,
) -> None:
    """Withdraw a release: the page falls back to the previous good one and warns."""
    from pipeline.stages.load import load_state  # noqa: PLC0415
    from pipeline.stages.ostree import ostree_setup  # noqa: PLC0415
    from pipeline.stages.release import revoke_release  # noqa: PLC0415

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
        ostree=ostree_setup(s.config, s.log.repo, os.environ),
    )
    if manifest is None or write is None:
        console.out.print(f"release {release_id} is already withdrawn (no change)")
        if write is not None:
            report_settled(write)
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
