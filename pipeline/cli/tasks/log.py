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
from pipeline.cli.options import ROOT, parse_at, role_name
from pipeline.cli.report import report_uncommitted
from pipeline.cli.setup import now, open_log, pin_option, writable_log
from pipeline.errors import ConfigError, VerificationError


@task(
    help={
        "repo": "where to create the log (default: $FORTNIGHT_REPO or .)",
        "product": "also copy in this bundled example product (atomic-host or cloud-base); "
        "default: no product (start one with product.new)",
    }
)
@boundary
def init(c: Context, repo: str | None = None, product: str | None = None) -> None:
    """Create a manifest log: a git repository with signed root version 1 (the root keys
    in FORTNIGHT_KEY_ROOT, _2.._9) and a .gitignore; print the root fingerprint."""
    from pipeline.log.store import init_log  # noqa: PLC0415
    from pipeline.log.trust import (  # noqa: PLC0415
        PIN_CONFIG,
        empty_trust,
        first_version,
        root_key_signers,
        with_root_keys,
    )

    log = writable_log(repo, os.environ)
    path = log.repo
    if log.trust_path.exists():
        console.out.print(f"already a manifest log: {path}")
        return
    products = {product: bundled_product(product)} if product else {}
    signers = root_key_signers(os.environ)
    init_log(path, products, first_version(with_root_keys(empty_trust(), signers), signers))
    pinned = log.load_root()
    console.out.print(f"created: {path}")
    console.out.print(f"root fingerprint: {pinned.chain.fingerprint}")
    console.err.print(
        f"keep and publish this fingerprint; this clone pinned it in git config {PIN_CONFIG}"
    )
    if not product:
        console.err.print(
            "next: start a product with 'product.new NAME --display-name TEXT --base VERSION'"
        )


def bundled_product(product: str) -> bytes:
    """The product.toml of a bundled example product.

    Raises:
        ConfigError: no such bundled product (the known ones are named).
    """
    bundled = sorted(p.parent.name for p in (ROOT / "manifests").glob("*/product.toml"))
    if product not in bundled:
        raise ConfigError(
            f"--product {product}: not a bundled example product (bundled: {', '.join(bundled)})",
            hint="run init without --product, then 'product.new NAME ...' for your own",
        )
    return (ROOT / "manifests" / product / "product.toml").read_bytes()


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
    from pipeline.log.signing import generate_key, load_signers  # noqa: PLC0415

    log = writable_log(repo, os.environ)
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
    when the newest checkpoint has expired (the log is frozen). Warn of manifests not
    committed."""
    from pipeline.core.models.common import format_timestamp  # noqa: PLC0415
    from pipeline.log.checkpoints import check_fresh  # noqa: PLC0415
    from pipeline.log.stranded import find_uncommitted  # noqa: PLC0415
    from pipeline.log.trust import PIN_CONFIG  # noqa: PLC0415
    from pipeline.stages.ostree import verify_refs  # noqa: PLC0415

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
    if log.git.is_repo():
        report_uncommitted(find_uncommitted(log.git), log.repo)
    if report.failures:
        raise Exit(f"error: {len(report.failures)} manifest(s) failed verification", code=4)
    check_fresh(report.head, parse_at(at, now()))
    problems = verify_refs(log, os.environ, now(), report.verified)
    for problem in problems:
        console.err.print(f"ostree: {problem}")
    if problems:
        raise Exit(
            f"error: {len(problems)} OSTree ref(s) do not match the log; run 'invoke ostree.sync'",
            code=4,
        )
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
    from pipeline.stages.schema import write_schemas  # noqa: PLC0415

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
    from pipeline.core.state import summary  # noqa: PLC0415
    from pipeline.stages.load import load_states_apart  # noqa: PLC0415

    when = parse_at(at, now())
    states, rejected = load_states_apart(open_log(repo, os.environ), product, when)
    if json:
        doc = {"products": {s.product.name: summary(s) for s in states}}
        print(jsonlib.dumps(doc, indent=2, sort_keys=True))
    else:
        for state in states:
            console.out.print(console.release_panel(state))
            console.out.print(console.status_table(state, limit))
    if rejected:  # the products that verified were shown; this one line names the rest
        raise VerificationError(rejected)
