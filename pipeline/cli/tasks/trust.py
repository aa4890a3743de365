"""The root of trust's tasks: show the chain, upgrade an unsigned trust.json, remove a key,
set a threshold (adding a key is 'invoke keys.generate')."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import at_least_one, role_name
from pipeline.cli.setup import open_log, pin_option

if TYPE_CHECKING:
    from pipeline.core.models.common import Trust
    from pipeline.log.store import ManifestLog


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
    from pipeline.log.trust import created  # noqa: PLC0415

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
    from pipeline.log.trust import first_version, legacy_trust, root_key_signers, with_root_keys  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    signers = root_key_signers(os.environ)
    raw = first_version(with_root_keys(legacy_trust(log.root), signers), signers)
    log.write_root(raw, "trust: signed root version 1 (upgrade)", commit=not no_commit)
    pinned = log.load_root()
    console.out.print(f"root fingerprint: {pinned.chain.fingerprint}")
    console.err.print("keep and publish this fingerprint; other clones pin it on first verify")


def _next_root(
    log: ManifestLog, change: Callable[[Trust], Trust], message: str, commit: bool
) -> None:
    from pipeline.log.signing import load_signers  # noqa: PLC0415
    from pipeline.log.trust import next_version  # noqa: PLC0415

    chain = log.load_root().chain
    root = load_signers("root", os.environ, chain.trust)
    log.write_root(next_version(chain, change(chain.trust), root), message, commit=commit)
    console.out.print(f"root version {chain.newest.signed.version + 1} written")


@task(
    name="remove",
    help={
        "keyid": "the key to stop trusting (see 'invoke trust.show')",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "no_commit": "write the root version without committing",
    },
)
@boundary
def trust_remove(c: Context, keyid: str, repo: str | None = None, no_commit: bool = False) -> None:
    """Stop trusting KEYID: the next root version, signed with FORTNIGHT_KEY_ROOT (_2.._9)."""
    from pipeline.log.trust import remove_key  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    _next_root(
        log, lambda t: remove_key(t, keyid), f"trust: remove key {keyid[:12]}", not no_commit
    )


@task(
    name="threshold",
    help={
        "role": "root, compose, test, release, timestamp or site",
        "threshold": "how many distinct keys of the role must sign (required)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "no_commit": "write the root version without committing",
    },
)
@boundary
def trust_threshold(
    c: Context, role: str, threshold: int = 0, repo: str | None = None, no_commit: bool = False
) -> None:
    """Set ROLE's threshold: the next root version, signed with FORTNIGHT_KEY_ROOT (_2.._9)."""
    from pipeline.log.trust import set_threshold  # noqa: PLC0415

    log = open_log(repo, os.environ)
    log.require_repo()
    role_ = role_name(role)
    threshold = at_least_one("threshold", threshold)
    message = f"trust: {role_} threshold {threshold}"
    _next_root(log, lambda t: set_threshold(t, role_, threshold), message, not no_commit)
