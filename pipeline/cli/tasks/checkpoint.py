"""The log's checkpoints: keep them fresh, and give an old log its first one."""

from __future__ import annotations

import os
from datetime import timedelta

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import WriteFlags, at_least_one, parse_at
from pipeline.cli.setup import now, open_log

#: pipeline.log.checkpoints.DEFAULT_VALIDITY in days (not imported: `invoke --list` stays light;
#: tests/log/test_checkpoints.py checks they agree).
VALIDITY_DAYS = 17
DAYS_HELP = f"days the checkpoint stays fresh (default {VALIDITY_DAYS}: a cycle + grace)"


@task(
    name="refresh",
    help={
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "at": "sign as of this date or datetime (default: now)",
        "days": DAYS_HELP,
        "no_commit": "write the checkpoint but do not commit",
        "push": "push after committing (rebase and retry on races)",
        "remote": "remote to push to (default: git config fortnight.remote, else origin)",
    },
)
@boundary
def checkpoint_refresh(
    c: Context,
    repo: str | None = None,
    at: str | None = None,
    days: int = VALIDITY_DAYS,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Verify the log and re-sign its newest checkpoint with FORTNIGHT_KEY_TIMESTAMP: same
    size and root, a new time and expiry (run it daily, with release.cut)."""
    from pipeline.core.models.common import format_timestamp  # noqa: PLC0415
    from pipeline.log.freshness import refresh  # noqa: PLC0415
    from pipeline.log.signing import load_signers  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    trust = log.load_trust()
    signers = load_signers("timestamp", os.environ, trust)
    options = WriteFlags(False, no_commit, push, remote).options(log.configured_remote())
    done = refresh(
        log.writer,
        trust,
        signers,
        parse_at(at, now()),
        validity=timedelta(days=at_least_one("days", days)),
        commit=options.commit,
        push=options.push,
    )
    cp = done.checkpoint
    console.out.print(
        f"checkpoint {cp.number}: {cp.size} manifest(s), fresh until {format_timestamp(cp.expires)}"
    )


@task(
    name="upgrade",
    help={
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "days": DAYS_HELP,
        "no_commit": "write log.idx and the checkpoint without committing",
    },
)
@boundary
def checkpoint_upgrade(
    c: Context, repo: str | None = None, days: int = VALIDITY_DAYS, no_commit: bool = False
) -> None:
    """Give a log made before checkpoints its log.idx (manifests in the order git recorded
    them) and checkpoint 1, signed with the root keys (FORTNIGHT_KEY_ROOT, _2.._9)."""
    from pipeline.log.freshness import upgrade  # noqa: PLC0415
    from pipeline.log.trust import root_key_signers  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    log.load_trust()  # the root chain must verify first
    done = upgrade(
        log.writer,
        root_key_signers(os.environ),
        now(),
        validity=timedelta(days=at_least_one("days", days)),
        commit=not no_commit,
    )
    cp = done.checkpoint
    console.out.print(f"checkpoint 1: {cp.size} manifest(s) indexed in {log.root.name}/log.idx")
