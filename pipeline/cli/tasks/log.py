"""The manifest log's own tasks: create it, trust keys, verify it, its schema, its status."""

from __future__ import annotations

import json as jsonlib
import os
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import DEFAULT_PRODUCT, ROOT, parse_at, role_name
from pipeline.cli.setup import now, open_log, pin_option, repo_path
from pipeline.core.models.common import format_timestamp
from pipeline.core.state import summary
from pipeline.log.checkpoints import check_fresh
from pipeline.log.signing import generate_key, load_signers
from pipeline.log.store import init_log
from pipeline.log.trust import (
    PIN_CONFIG,
    empty_trust,
    first_version,
    root_key_signers,
    with_root_keys,
)
from pipeline.stages.load import load_states
from pipeline.stages.schema import write_schemas


@task(
    help={
        "repo": "where to create the log (default: $FORTNIGHT_REPO or .)",
        "product": "product whose bundled product.toml to copy in",
    }
)
@boundary
def init(c: Context, repo: str | None = None, product: str = DEFAULT_PRODUCT) -> None:
    """Create a manifest log: a git repository with signed root version 1 (the root keys
    in FORTNIGHT_KEY_ROOT, _2.._9) and product.toml; print the root fingerprint."""
    path = repo_path(repo, os.environ)
    log = open_log(str(path), os.environ)
    if log.trust_path.exists():
        console.out.print(f"already a manifest log: {path}")
        return
    toml = (ROOT / "manifests" / product / "product.toml").read_bytes()
    signers = root_key_signers(os.environ)
    init_log(path, {product: toml}, first_version(with_root_keys(empty_trust(), signers), signers))
    pinned = log.load_root()
    console.out.print(f"created: {path}")
    console.out.print(f"root fingerprint: {pinned.chain.fingerprint}")
    console.err.print(
        f"keep and publish this fingerprint; this clone pinned it in git config {PIN_CONFIG}"
    )


@task(
    help={
        "role": "root, compose, test, release, timestamp or site",
        "out": "folder for the private key (outside the repository)",
        "repo": "the manifest log (default: .)",
        "no_commit": "write the new root version without committing",
    }
)
@boundary
def generate(
    c: Context, role: str, out: str, repo: str | None = None, no_commit: bool = False
) -> None:
    """Create an Ed25519 key pair for ROLE and trust it in the next root version (signed
    with FORTNIGHT_KEY_ROOT, _2.._9). Before 'invoke init', a root key is only created."""
    log = open_log(repo, os.environ)
    role_ = role_name(role)
    if role_ == "root" and not log.trust_path.exists():
        key = generate_key(role_, Path(out), log.repo)
    else:
        root = load_signers("root", os.environ, log.load_trust())
        key = log.add_trusted_key(role_, Path(out), root, commit=not no_commit)
    console.err.print(f"private key written to {key.private_path} (mode 0600); keep it secret")
    console.out.print(key.env_line(role_))


@task(
    help={
        "repo": "the manifest log (default: .)",
        "cached": "trust the verification cache for files git reports unchanged (faster)",
        "root": "the pinned root: its fingerprint, or a file with it or with trust/1.json "
        "(default: $FORTNIGHT_ROOT, else git config fortnight.root, else trust on first use)",
        "at": "check freshness as of this date or datetime (default: now)",
    }
)
@boundary
def verify(
    c: Context,
    repo: str | None = None,
    cached: bool = False,
    root: str | None = None,
    at: str | None = None,
) -> None:
    """Verify the root chain from the pinned root, the log index and its checkpoints, then
    every manifest's signatures; name each bad file and why; exit 4 on any failure or
    when the newest checkpoint has expired (the log is frozen)."""
    log = open_log(repo, os.environ, cache=cached)  # an audit re-checks every signature
    pinned = log.load_root(pin_option(root))
    if pinned.recorded:
        console.err.print(
            f"note: no pinned root; trusting root {pinned.chain.fingerprint} on first use "
            f"(recorded in git config {PIN_CONFIG})"
        )
    report = log.verify_all(pinned.chain.trust)
    console.out.print(console.counts_table(report.counts(), len(report.failures)))
    for path, reason in report.failures:
        console.err.print(f"rejected: {path}: {reason}")
    if report.failures:
        raise Exit(f"error: {len(report.failures)} manifest(s) failed verification", code=4)
    check_fresh(report.head, parse_at(at, now()))
    if report.head is not None:
        head = report.head
        console.out.print(
            f"checkpoint {head.number}: {head.size} manifest(s), signed "
            f"{format_timestamp(head.time)}, fresh until {format_timestamp(head.expires)}"
        )


@task(help={"check": "do not write; exit 1 when the committed schema is stale"})
@boundary
def schema(c: Context, check: bool = False) -> None:
    """Write the JSON Schema of every manifest kind under manifests/schema/."""
    changed = write_schemas(ROOT / "manifests" / "schema", check=check)
    if check and changed:
        raise Exit(f"error: stale schema: {', '.join(changed)}; run 'invoke schema'", code=1)
    console.out.print(f"{len(changed)} schema file(s) {'stale' if check else 'written'}")


@task(
    help={
        "product": "only this product (default: every product in the log)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "limit": "how many composes to show (newest first)",
        "at": "the state at this date or datetime (default: now)",
        "json": "print the documented JSON shape instead of tables",
    }
)
@boundary
def status(
    c: Context,
    product: str | None = None,
    repo: str | None = None,
    limit: int = 10,
    at: str | None = None,
    json: bool = False,
) -> None:
    """Show the current release, freshness, open bug, withdrawals and composes."""
    when = parse_at(at, now())
    states = load_states(open_log(repo, os.environ), product, when)
    if json:
        doc = {"products": {s.product.name: summary(s) for s in states}}
        print(jsonlib.dumps(doc, indent=2, sort_keys=True))
        return
    for state in states:
        console.out.print(console.release_panel(state))
        console.out.print(console.status_table(state, limit))
