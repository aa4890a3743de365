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
from pipeline.cli.setup import now, open_log, repo_path
from pipeline.core.state import summary
from pipeline.log.signing import empty_trust
from pipeline.log.store import dump_json, init_log
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
    """Create a manifest log: a git repository with trust.json and product.toml."""
    path = repo_path(repo, os.environ)
    toml = (ROOT / "manifests" / product / "product.toml").read_bytes()
    created = init_log(path, {product: toml}, dump_json(empty_trust().model_dump(mode="json")))
    console.out.print(f"{'created' if created else 'already a manifest log'}: {path}")


@task(
    help={
        "role": "compose, test or release",
        "out": "folder for the private key (outside the repository)",
        "repo": "the manifest log (default: .)",
        "no_commit": "update trust.json without committing",
    }
)
@boundary
def generate(
    c: Context, role: str, out: str, repo: str | None = None, no_commit: bool = False
) -> None:
    """Create an Ed25519 key pair for ROLE and trust its public key."""
    log = open_log(repo, os.environ)
    role_ = role_name(role)
    key = log.add_trusted_key(role_, Path(out), commit=not no_commit)
    console.err.print(f"private key written to {key.private_path} (mode 0600); keep it secret")
    console.out.print(key.env_line(role_))


@task(
    help={
        "repo": "the manifest log (default: .)",
        "cached": "trust the verification cache for files git reports unchanged (faster)",
    }
)
@boundary
def verify(c: Context, repo: str | None = None, cached: bool = False) -> None:
    """Verify every manifest's signatures; name each bad file and why; exit 4 on any failure."""
    log = open_log(repo, os.environ, cache=cached)  # an audit re-checks every signature
    report = log.verify_all(log.load_trust())
    console.out.print(console.counts_table(report.counts(), len(report.failures)))
    for path, reason in report.failures:
        console.err.print(f"rejected: {path}: {reason}")
    if report.failures:
        raise Exit(f"error: {len(report.failures)} manifest(s) failed verification", code=4)


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
