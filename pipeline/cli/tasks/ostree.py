"""``ostree.sync``: make the public OSTree refs match the verified log."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.setup import now, open_log, product_of


@task(
    name="sync",
    help={
        "product": "the product (default: $FORTNIGHT_PRODUCT, else the log's default)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "dry_run": "say what would move; change nothing",
    },
)
@boundary
def ostree_sync(
    c: Context, product: str | None = None, repo: str | None = None, dry_run: bool = False
) -> None:
    """Move each public ref to the commit of the newest standing release; re-sign the summary."""
    from pipeline.core.config import load_product  # noqa: PLC0415
    from pipeline.stages.ostree import sync_product  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    config = load_product(log.root, product_of(product, log, os.environ))
    setup, report = sync_product(log, config, os.environ, now(), dry_run=dry_run)
    verb = "would move" if dry_run else "moved"
    for ref, (old, new) in report.moved.items():
        console.out.print(f"ostree: {verb} {ref}: {old or 'nothing'} -> {new}")
    for ref in report.deleted:
        console.out.print(f"ostree: {'would delete' if dry_run else 'deleted'} {ref}")
    if report.summary:
        console.out.print(f"ostree: {'would re-sign' if dry_run else 're-signed'} the summary")
    if not (report.moved or report.deleted or report.summary):
        console.out.print(f"ostree: {setup.public.path}: refs match the log (no change)")
