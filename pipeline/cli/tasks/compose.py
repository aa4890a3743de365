"""``compose.record``: record a compose, or a compose that produced no image."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.adapters.ingest import http_session, is_url, load_compose
from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import (
    DEFAULT_PRODUCT,
    WRITE_HELP,
    FailedCompose,
    WriteFlags,
    record_request,
)
from pipeline.cli.report import report_write
from pipeline.cli.setup import now, task_setup
from pipeline.cli.tasks.tracker import sync_and_report
from pipeline.stages.compose import failed_compose_manifest, record_compose, record_failed_compose
from pipeline.stages.ostree import gather_trees, ostree_setup


@task(
    iterable=["ostree_commit"],
    help={
        "source": "Pungi compose directory (root or compose/) or http(s) URL",
        "verify_checksums": "check size and sha256 of URL images (streamed, not stored)",
        "skip_checksums": "do not check image files of a local compose",
        "failed": "record a compose that produced no image (needs --compose-id, --reason)",
        "compose_id": "with --failed: the compose id",
        "reason": "with --failed: why it produced no image",
        "log_url": "with --failed: where its log is",
        "no_tracker": "with --failed: do not sync the failure tracker afterwards",
        "ostree_repo": "the compose's OSTree repository (path or URL): record each arch's "
        "commit of [ostree] compose_ref",
        "ostree_commit": "ARCH=CHECKSUM: record this OSTree commit for ARCH (repeatable)",
        **WRITE_HELP,
        "no_commit": "write the manifest but do not commit",
    },
)
@boundary
def record(
    c: Context,
    source: str | None = None,
    product: str = DEFAULT_PRODUCT,
    repo: str | None = None,
    verify_checksums: bool = False,
    skip_checksums: bool = False,
    failed: bool = False,
    compose_id: str | None = None,
    reason: str | None = None,
    log_url: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
    no_tracker: bool = False,
    ostree_repo: str | None = None,
    ostree_commit: list[str] | None = None,
) -> None:
    """Record a compose (or, with --failed, a compose with no image) in the log."""
    asked = record_request(
        source=source,
        failed=failed,
        compose_id=compose_id,
        reason=reason,
        log_url=log_url,
        verify_checksums=verify_checksums,
        skip_checksums=skip_checksums,
        source_is_url=bool(source) and is_url(source or ""),
    )
    flags = WriteFlags(dry_run, no_commit, push, remote)
    s = task_setup(repo, product, "compose", flags, sync=failed and not no_tracker)
    if isinstance(asked, FailedCompose):
        failure = failed_compose_manifest(
            s.config, asked.compose_id, asked.reason, asked.log_url, now()
        )
        done = record_failed_compose(s.log, failure, s.signers, s.options)
        report_write(done.write, [done.manifest.relpath()])
        if s.release is not None:
            sync_and_report(s, s.release)
        return
    session = http_session()
    loaded = load_compose(asked.source, session)
    trees = []
    if ostree_repo or ostree_commit:
        trees = gather_trees(
            ostree_setup(s.config, s.log.repo, os.environ),
            loaded.info.release.version,
            repo=ostree_repo,
            commits=ostree_commit or [],
            arches=s.config.ostree_arches(),
        )
    with console.byte_progress() as progress:
        outcome = record_compose(
            s.log,
            s.config,
            loaded,
            s.signers,
            now(),
            verify=asked.verify_files,
            options=s.options,
            session=session,
            progress=progress,
            ostree=trees,
        )
    console.out.print(console.compose_table(outcome.manifest))
    checked = f"{len(outcome.hashed)} image(s) checked" if outcome.hashed else ""
    report_write(outcome.write, [outcome.manifest.relpath()], checked)
