"""``listen`` and ``announce``: the message bus (fedora-messaging loads only here; docs/bus.md)."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import ROOT
from pipeline.cli.setup import open_log

BUS_HELP = {
    "config": "fedora-messaging TOML file (default: $FEDORA_MESSAGING_CONF, else "
    "fedora-messaging.toml.example)",
    "repo": "the manifest log (default: [consumer_config] repo, $FORTNIGHT_REPO or .)",
}


@task(help={"product": "only this product (default: [consumer_config.products])", **BUS_HELP})
@boundary
def listen(
    c: Context, product: str | None = None, config: str | None = None, repo: str | None = None
) -> None:
    """Run the pipeline from Pungi's and fedimg's bus messages until stopped; announce."""
    # fedora-messaging is slow to import: only in the bus tasks
    from pipeline.adapters.bus.settings import config_path, load_settings  # noqa: PLC0415
    from pipeline.stages import listen as listening  # noqa: PLC0415

    path = config_path(config, os.environ, ROOT)
    settings = load_settings(path)
    log = open_log(repo or settings.repo, os.environ)
    listening.listen(log, settings, path, product=product, root=ROOT, env=os.environ)


@task(
    help={
        "since": "re-send what was recorded after this commit (default: the last announced)",
        "dry_run": "list the messages and print the announcement mails; send nothing",
        **BUS_HELP,
    }
)
@boundary
def announce(
    c: Context,
    since: str | None = None,
    config: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
) -> None:
    """Publish a bus message for each manifest recorded since the last announcement, and
    mail each release, stale cycle and withdrawal to the product's [announce] mail_to."""
    # fedora-messaging is slow to import: only in the bus tasks
    from pipeline.adapters.bus.client import amqp_publisher  # noqa: PLC0415
    from pipeline.adapters.bus.settings import config_path, load_settings  # noqa: PLC0415
    from pipeline.adapters.mail import settings_from_env  # noqa: PLC0415
    from pipeline.stages import announce as announcing  # noqa: PLC0415
    from pipeline.stages.mailing import Mailer  # noqa: PLC0415

    settings = load_settings(config_path(config, os.environ, ROOT))
    log = open_log(repo or settings.repo, os.environ)
    publish = amqp_publisher(settings.publish_timeout)
    mailer = Mailer(
        log,
        log.load_trust(),
        settings_from_env(os.environ),
        site_url=settings.site_url,
        dry_run=dry_run,
    )
    report = announcing.announce(
        log, settings, publish=publish, since=since, dry_run=dry_run, mailer=mailer
    )
    for msg in report.messages:
        verb = "would announce" if dry_run else "announced"
        console.out.print(f"{verb}: {msg.topic} ({msg.body['manifest']})")
    for mail in report.mails:
        console.out.print(f"{'would mail' if dry_run else 'mailed'}: {mail['Subject']}")
        if dry_run:
            shown = ("From", "To", "Subject", "Date", "Message-ID")
            headers = "".join(f"{k}: {mail[k]}\n" for k in shown)
            text = f"{headers}\n{mail.get_content()}"
            console.out.print(text, markup=False, highlight=False)
    for path, reason in report.rejected:
        console.err.print(f"not announced (failed verification): {path}: {reason}")
    if report.since is None:
        console.out.print(f"announcements start at {report.head[:12]}; nothing sent")
    elif not report.messages:
        console.out.print(f"nothing to announce since {report.since[:12]}")
