"""``tracker.sync``, and the sync other tasks run after recording."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli.boundary import boundary
from pipeline.cli.options import WRITE_HELP, WriteFlags
from pipeline.cli.report import report_settled, report_sync
from pipeline.cli.setup import Setup, now, task_setup

if TYPE_CHECKING:
    from pipeline.log.sslib import Signer


def sync_and_report(s: Setup, signers: list[Signer]) -> None:
    """Sync the tracker and say what it did."""
    from pipeline.core.siteconfig import load_site_config  # noqa: PLC0415
    from pipeline.stages.tracking import make_tracker, sync_tracker  # noqa: PLC0415

    site_url = load_site_config(s.log.repo).base_url
    report = sync_tracker(
        s.log,
        s.config,
        signers=signers,
        options=s.options,
        now=now(),
        backend_for=lambda state: make_tracker(s.config, state, os.environ, site_url),
        on_settled=report_settled,
    )
    report_sync(report, s.options.dry_run)


@task(name="sync", help=WRITE_HELP)
@boundary
def tracker_sync(
    c: Context,
    product: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """File, comment on or close the product's failure bug to match the log (release key)."""
    s = task_setup(repo, product, "release", WriteFlags(dry_run, no_commit, push, remote))
    sync_and_report(s, s.signers)
