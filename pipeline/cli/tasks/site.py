"""``site.build``, ``site.publish``, ``site.serve`` (Pelican and the S3 client load only here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import ROOT, parse_at
from pipeline.cli.setup import log_store, now, open_log, output_dir, site_signers
from pipeline.core.units import human_size
from pipeline.errors import ConfigError


@task(
    name="build",
    help={
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "output": "output folder (default: $FORTNIGHT_OUTPUT, else <repo>/output)",
        "at": "build the site as of this date or datetime (default: now)",
        "production": "use publishconf.py (absolute site URL for feeds and the stream)",
        "logs": "log store folder to copy test logs from (default: $FORTNIGHT_LOGS, else "
        "<repo>/logs)",
        "force": "rebuild every page, ignoring what the last build recorded",
        "workers": "products built at once, in worker processes (default: one per core)",
    },
)
@boundary
def site_build(
    c: Context,
    repo: str | None = None,
    output: str | None = None,
    at: str | None = None,
    production: bool = False,
    logs: str | None = None,
    force: bool = False,
    workers: int = 0,
) -> None:
    """Build the download site from the verified log (fails closed on any bad manifest);
    with FORTNIGHT_KEY_SITE set, sign its index (site-index.json) for fortnight-verify."""
    from pipeline.site.build import build_site  # noqa: PLC0415 - Pelican loads only for the site

    log = open_log(repo, os.environ)
    out = output_dir(output, log, os.environ)
    conf = ROOT / ("publishconf.py" if production else "pelicanconf.py")
    started = time.monotonic()
    report = build_site(
        conf,
        log.repo,
        out,
        at=parse_at(at, now()) if at else None,
        logs=log_store(logs, log, os.environ).root,
        force=force,
        cache=log.cache,
        overrides={"FORTNIGHT_WORKERS": workers} if workers else None,
        site_signers=site_signers(log, os.environ),
    )
    console.out.print(
        f"site: {out}: {report.pages} pages rendered, {report.written} files written, "
        f"{report.unchanged} unchanged, {report.removed} removed "
        f"(built: {', '.join(report.products_built) or 'none'}; "
        f"unchanged products: {', '.join(report.products_skipped) or 'none'}) "
        f"in {time.monotonic() - started:.1f} s"
    )


@task(
    name="publish",
    help={
        "target": "where to publish: s3://BUCKET/PREFIX (default: $FORTNIGHT_PUBLISH_TARGET)",
        "output": "the built site (default: $FORTNIGHT_OUTPUT, else <repo>/output)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "endpoint_url": "another S3-compatible endpoint (default: AWS)",
        "dry_run": "compare and show what would change; upload and delete nothing",
        "force": "upload every file, e.g. after the Content-Type or Cache-Control rules changed",
        "attempts": "tries per request, with backoff (default: 5)",
    },
)
@boundary
def site_publish(
    c: Context,
    target: str | None = None,
    output: str | None = None,
    repo: str | None = None,
    endpoint_url: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    attempts: int = 5,
) -> None:
    """Sync the built site to S3: only what changed, pages after what they link, deletes last."""
    from pipeline.adapters.aws.s3 import s3_client_factory  # noqa: PLC0415 - boto3 is slow
    from pipeline.site.publish import publish  # noqa: PLC0415 - boto3 is slow

    out = output_dir(output, open_log(repo, os.environ), os.environ)
    where = target or os.environ.get("FORTNIGHT_PUBLISH_TARGET")
    if not where:
        raise ConfigError("--target is required", hint="e.g. --target s3://my-bucket/site")
    require_built(out)
    factory = s3_client_factory(endpoint_url, attempts=attempts)
    with console.byte_progress() as bar:
        task_id = bar.add_task("publishing", total=None)
        report = publish(
            out,
            where,
            client_factory=factory,
            dry_run=dry_run,
            force=force,
            on_plan=lambda plan: bar.update(task_id, total=sum(u.size for u in plan.uploads)),
            progress=lambda _key, size: bar.advance(task_id, size),
        )
    uploads, deletes = report.plan.uploads, report.plan.deletes
    if dry_run:
        size = human_size(sum(u.size for u in uploads))
        console.out.print(
            f"would publish {report.target}: upload {len(uploads)} ({size}), "
            f"{report.unchanged} unchanged, delete {len(deletes)}; dry run: nothing changed"
        )
        return
    console.out.print(
        f"published {report.target}: {report.uploaded} uploaded "
        f"({human_size(report.bytes_uploaded)}), {report.unchanged} unchanged, "
        f"{report.deleted} deleted"
    )


@task(
    name="serve",
    help={
        "output": "the built site (default: $FORTNIGHT_OUTPUT, else <repo>/output)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "bind": "address to listen on (default: 127.0.0.1)",
        "port": "port (default: 8000; 0 picks a free one)",
    },
)
@boundary
def site_serve(
    c: Context,
    output: str | None = None,
    repo: str | None = None,
    bind: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Preview the built site over HTTP until interrupted (Ctrl-C)."""
    from pipeline.site.serve import serve_site  # noqa: PLC0415 - Pelican loads only for the site

    out = output_dir(output, open_log(repo, os.environ), os.environ)
    require_built(out)
    serve_site(out, bind, port)


def require_built(out: Path) -> None:
    """A built site is at ``out``; else say what is there instead.

    Raises:
        ConfigError: no folder, an empty one, or one without the front page.
    """
    if not out.is_dir():
        raise ConfigError(
            f"{out}: no such folder: the site was not built here",
            hint="run 'site.build' with the same --repo and --output first",
        )
    if not (out / "index.html").is_file():
        what = "empty" if not any(out.iterdir()) else "has no index.html (the front page)"
        raise ConfigError(
            f"{out}: {what}: not a complete site build",
            hint="run 'site.build --force' (with the same --repo and --output)",
        )
