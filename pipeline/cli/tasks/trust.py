"""The root of trust's tasks: show the chain, upgrade an unsigned trust.json."""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.setup import open_log, pin_option
from pipeline.log.trust import (
    created,
    first_version,
    legacy_trust,
    root_key_signers,
    with_root_keys,
)


@task(
    name="show",
    help={
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "root": "the pinned root: fingerprint or file (default: as for 'invoke verify')",
    },
)
@boundary
def trust_show(c: Context, repo: str | None = None, root: str | None = None) -> None:
    """Verify and print the root chain: each version's root keys, threshold and roles."""
    log = open_log(repo, os.environ)
    pinned = log.load_root(pin_option(root))
    dates = {v.signed.version: created(log.git, v.path) for v in pinned.chain.versions}
    console.out.print(console.root_chain_table(pinned.chain, dates))
    console.out.print(f"root fingerprint: {pinned.chain.fingerprint} (pin: {pinned.pin.source})")


@task(
    name="upgrade",
    help={
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "no_commit": "write the root version without committing",
    },
)
@boundary
def trust_upgrade(c: Context, repo: str | None = None, no_commit: bool = False) -> None:
    """Turn an unsigned trust.json into signed root version 1, with the root keys in
    FORTNIGHT_KEY_ROOT (_2.._9) added to the root role; print the root fingerprint."""
    log = open_log(repo, os.environ)
    log.require_repo()
    signers = root_key_signers(os.environ)
    raw = first_version(with_root_keys(legacy_trust(log.root), signers), signers)
    log.write_root(raw, "trust: signed root version 1 (upgrade)", commit=not no_commit)
    pinned = log.load_root()
    console.out.print(f"root fingerprint: {pinned.chain.fingerprint}")
    console.err.print("keep and publish this fingerprint; other clones pin it on first verify")
