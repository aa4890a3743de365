"""``cloud.discover`` and ``cloud.withdraw``: a compose's AMIs (the AWS adapter loads here only)."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli.boundary import boundary
from pipeline.cli.options import WRITE_HELP, WriteFlags, at_least_one
from pipeline.cli.report import report_discover, report_withdraw
from pipeline.cli.setup import now, open_log, product_of, task_setup


@task(
    name="discover",
    help={
        "compose_id": "the recorded compose whose AMIs to find",
        "workers": "regions queried at once (default 4)",
        "endpoint_url": "EC2 endpoint for every region (tests, private clouds; default: AWS)",
        **WRITE_HELP,
    },
)
@boundary
def cloud_discover(
    c: Context,
    compose_id: str,
    product: str | None = None,
    workers: int = 4,
    endpoint_url: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Find a compose's AMIs in every region of [clouds.aws] and record them (compose role)."""
    from pipeline.stages.clouds import discover_clouds, ec2_client_factory  # noqa: PLC0415

    at_least_one("workers", workers)
    s = task_setup(repo, product, "compose", WriteFlags(dry_run, no_commit, push, remote))
    outcome = discover_clouds(
        s.log,
        s.config,
        compose_id,
        signers=s.signers,
        options=s.options,
        now=now(),
        make_client=ec2_client_factory(endpoint_url),
        workers=workers,
    )
    report_discover(outcome.manifest, outcome.write)


@task(
    name="withdraw",
    help={
        "compose_id": "the compose whose AMIs (newest cloud.discover run) to withdraw",
        "endpoint_url": "EC2 endpoint for every region (tests, private clouds; default: AWS)",
        "attempts": "tries per EC2 call on throttling or connection errors (default 4)",
        "dry_run": "show the plan; change nothing",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    },
)
@boundary
def cloud_withdraw(
    c: Context,
    compose_id: str,
    product: str | None = None,
    endpoint_url: str | None = None,
    attempts: int = 4,
    repo: str | None = None,
    dry_run: bool = False,
) -> None:
    """Make a compose's AMIs private and tag them with the date (restorable; records nothing)."""
    from pipeline.core.config import load_product  # noqa: PLC0415
    from pipeline.stages.clouds import ec2_client_factory, withdraw_clouds  # noqa: PLC0415

    at_least_one("attempts", attempts)
    log = open_log(repo, os.environ)
    log.require_repo()
    actions = withdraw_clouds(
        log,
        load_product(log.root, product_of(product, log, os.environ)),
        compose_id,
        make_client=ec2_client_factory(endpoint_url),
        now=now(),
        dry_run=dry_run,
        attempts=attempts,
    )
    report_withdraw(compose_id, actions, dry_run)
