"""``compose.record``: record a compose, or a compose that produced no image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import (
    WRITE_HELP,
    FailedCompose,
    WriteFlags,
    byte_limit,
    record_request,
)
from pipeline.cli.report import report_write
from pipeline.cli.setup import now, open_log, product_of, task_setup
from pipeline.cli.tasks.tracker import sync_and_report
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.adapters.ingest import LoadedCompose
    from pipeline.cli.setup import Setup
    from pipeline.stages.ostree import GatheredTrees


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
        "max_metadata_bytes": "cap on images.json and composeinfo.json (default: "
        "$FORTNIGHT_MAX_METADATA_BYTES, else 64MiB)",
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
    product: str | None = None,
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
    max_metadata_bytes: str | None = None,
    ostree_repo: str | None = None,
    ostree_commit: list[str] | None = None,
) -> None:
    """Record a compose (or, with --failed, a compose with no image) in the log."""
    # productmd and the compose stage load only here, not for `invoke --list`
    from pipeline.adapters.ingest import http_session, is_url, load_compose  # noqa: PLC0415
    from pipeline.stages.compose import record_compose  # noqa: PLC0415

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
    limit = _metadata_limit(max_metadata_bytes)
    flags = WriteFlags(dry_run, no_commit, push, remote)
    s = task_setup(repo, product, "compose", flags, sync=failed and not no_tracker)
    if isinstance(asked, FailedCompose):
        _record_failed(s, asked)
        return
    session = http_session()
    loaded = load_compose(asked.source, session, max_bytes=limit)
    trees = _ostree_trees(s, loaded, ostree_repo, ostree_commit or [])
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
            ostree=trees.trees,
            ostree_packages=trees.packages,
        )
    console.out.print(console.compose_table(outcome.manifest))
    checked = f"{len(outcome.hashed)} image(s) checked" if outcome.hashed else ""
    report_write(outcome.write, [outcome.manifest.relpath()], checked)


def _metadata_limit(option: str | None) -> int:
    """``--max-metadata-bytes``, else ``$FORTNIGHT_MAX_METADATA_BYTES``, else the default."""
    from pipeline.adapters.ingest import MAX_METADATA_ENV  # noqa: PLC0415
    from pipeline.adapters.metadata import DEFAULT_MAX_METADATA_BYTES  # noqa: PLC0415

    return byte_limit(
        option,
        os.environ,
        option="--max-metadata-bytes",
        variable=MAX_METADATA_ENV,
        default=DEFAULT_MAX_METADATA_BYTES,
    )


def _record_failed(s: Setup, asked: FailedCompose) -> None:
    """Record a compose that produced no image, then sync the failure tracker."""
    from pipeline.stages.compose import (  # noqa: PLC0415
        failed_compose_manifest,
        record_failed_compose,
    )

    failure = failed_compose_manifest(
        s.config, asked.compose_id, asked.reason, asked.log_url, now()
    )
    done = record_failed_compose(s.log, failure, s.signers, s.options)
    report_write(done.write, [done.manifest.relpath()])
    if s.release is not None:
        sync_and_report(s, s.release)


def _ostree_trees(
    s: Setup, loaded: LoadedCompose, repo: str | None, commits: list[str]
) -> GatheredTrees:
    """The OSTree commits ``--ostree-repo``/``--ostree-commit`` name, read for the manifest
    (none without either option)."""
    from pipeline.stages.ostree import GatheredTrees, gather, ostree_setup  # noqa: PLC0415

    if not (repo or commits):
        return GatheredTrees([])
    return gather(
        ostree_setup(s.config, s.log.repo, os.environ),
        loaded.info.release.version,
        repo=repo,
        commits=commits,
        arches=s.config.ostree_arches(),
        packages=loaded.rpms is None,
    )


@task(
    name="sample",
    help={
        "out": "a new folder for the sample compose (its compose/ folder inside)",
        "product": "the product whose images to write (default: the log's default product)",
        "broken": "format (the first image's header is damaged: a blocking check fails) or "
        "name (its file name loses the arch: an advisory check warns)",
        "compose_id": "the compose id (default: <base name>-<version>-<today>.0)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    },
)
@boundary
def sample(
    c: Context,
    out: str,
    product: str | None = None,
    broken: str | None = None,
    compose_id: str | None = None,
    repo: str | None = None,
) -> None:
    """Write a small, well-formed sample compose of a product, to try the battery before
    real composes exist (record it with compose.record --source OUT)."""
    from pipeline.core.config import load_product  # noqa: PLC0415
    from pipeline.demo.sample_compose import (  # noqa: PLC0415
        BROKEN_KINDS,
        BrokenKind,
        write_sample,
    )

    if broken is not None and broken not in BROKEN_KINDS:
        raise ConfigError(f"--broken {broken}: unknown kind", hint="use format or name")
    log = open_log(repo, os.environ)
    config = load_product(log.root, product_of(product, log, os.environ))
    cid = compose_id or f"{config.base.name}-{config.base.version}-{now():%Y%m%d}.0"
    kind: BrokenKind | None = None
    for known in BROKEN_KINDS:
        kind = known if broken == known else kind
    written = write_sample(config, Path(out).resolve(), cid, kind)
    images = ", ".join(f"{arch} {kind_}" for arch, kind_ in written.images)
    console.out.print(f"sample compose {cid} of {config.name}: {written.compose_dir} ({images})")
    if written.broken:
        console.out.print(f"broken ({broken}): {written.broken[0]} {written.broken[1]}")
    console.out.print(f"next: compose.record --source {written.compose_dir}")
