"""Operator tasks (invoke). Each parses options, calls the library, reports.

Errors raised on purpose (``FortnightError``) are caught once, here, and shown
as one line with a documented exit code; set ``FORTNIGHT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline import console
from pipeline.compose import (
    WriteOptions,
    failed_compose_manifest,
    record_compose,
    record_failed_compose,
)
from pipeline.config import load_product
from pipeline.demo import run_demo
from pipeline.errors import ConfigError, FortnightError
from pipeline.ingest import http_session, is_url, load_compose
from pipeline.models import ROLES, RoleName
from pipeline.schema import write_schemas
from pipeline.signing import empty_trust, load_signer
from pipeline.store import ManifestLog, PushConfig, dump_json, init_log

ROOT = Path(__file__).resolve().parent
DEFAULT_PRODUCT = "atomic-host"

P = ParamSpec("P")
R = TypeVar("R")


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``FortnightError`` into ``error: …`` on one line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FortnightError as e:
            if os.environ.get("FORTNIGHT_DEBUG"):
                raise
            raise Exit(f"error: {e.diagnostics()}", code=e.exit_code) from e
        except KeyboardInterrupt:
            raise Exit("interrupted: nothing half-written was kept", code=130) from None

    return wrapper


def _repo(repo: str | None) -> Path:
    return Path(repo or os.environ.get("FORTNIGHT_REPO") or ".").resolve()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_options(
    dry_run: bool, no_commit: bool, push: bool, remote: str | None, log: ManifestLog
) -> WriteOptions:
    configured = log.configured_remote()
    do_push = (push or bool(remote) or bool(configured)) and not no_commit
    target = PushConfig(remote=remote or configured or "origin") if do_push else None
    return WriteOptions(dry_run=dry_run, commit=not no_commit, push=target)


def _role(role: str) -> RoleName:
    for name in ROLES:
        if role == name:
            return name
    raise ConfigError(f"--role {role}: unknown role", hint=f"use one of {', '.join(ROLES)}")


# --- log and keys --------------------------------------------------------------------


@task(
    help={
        "repo": "where to create the log (default: $FORTNIGHT_REPO or .)",
        "product": "product whose bundled product.toml to copy in",
    }
)
@boundary
def init(c: Context, repo: str | None = None, product: str = DEFAULT_PRODUCT) -> None:
    """Create a manifest log: a git repository with trust.json and product.toml."""
    path = _repo(repo)
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
    log = ManifestLog(_repo(repo))
    role_name = _role(role)
    key = log.add_trusted_key(role_name, Path(out), commit=not no_commit)
    console.err.print(f"private key written to {key.private_path} (mode 0600); keep it secret")
    console.out.print(key.env_line(role_name))


@task(help={"repo": "the manifest log (default: .)"})
@boundary
def verify(c: Context, repo: str | None = None) -> None:
    """Verify every manifest; name each bad file and why; exit 4 on any failure."""
    log = ManifestLog(_repo(repo))
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


# --- compose -------------------------------------------------------------------------


@task(
    help={
        "source": "Pungi compose directory (root or compose/) or http(s) URL",
        "product": f"product name (default {DEFAULT_PRODUCT})",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "verify_checksums": "check size and sha256 of URL images (streamed, not stored)",
        "skip_checksums": "do not check image files of a local compose",
        "failed": "record a compose that produced no image (needs --compose-id, --reason)",
        "compose_id": "with --failed: the compose id",
        "reason": "with --failed: why it produced no image",
        "log_url": "with --failed: where its log is",
        "dry_run": "show what would be recorded; write nothing",
        "no_commit": "write the manifest but do not commit",
        "push": "push after committing (rebase and retry on races)",
        "remote": "remote to push to (default: git config fortnight.remote, else origin)",
    }
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
) -> None:
    """Record a compose (or, with --failed, a compose with no image) in the log."""
    log = ManifestLog(_repo(repo))
    log.require_repo()
    config = load_product(log.root, product)
    trust = log.load_trust()
    signer = load_signer("compose", os.environ, trust)  # before any work
    options = _write_options(dry_run, no_commit, push, remote, log)
    if failed:
        if not compose_id or reason is None:
            raise ConfigError("--failed needs --compose-id and --reason")
        manifest = failed_compose_manifest(config, compose_id, reason, log_url, _now())
        outcome = record_failed_compose(log, manifest, [signer], options)
    else:
        if not source:
            raise ConfigError("--source is required (or --failed --compose-id ID --reason TEXT)")
        if verify_checksums and skip_checksums:
            raise ConfigError("--verify-checksums and --skip-checksums exclude each other")
        session = http_session()
        verify_files = verify_checksums or (not is_url(source) and not skip_checksums)
        loaded = load_compose(source, session)
        with console.byte_progress() as progress:
            outcome = record_compose(
                log,
                config,
                loaded,
                [signer],
                _now(),
                verify=verify_files,
                options=options,
                session=session,
                progress=progress,
            )
    if outcome.manifest.images:
        console.out.print(console.compose_table(outcome.manifest))
    write = outcome.write
    path = outcome.manifest.relpath()
    if write.dry_run:
        verb = "would record" if write.written else "already recorded"
    else:
        verb = "recorded" if write.written else "already recorded (no change)"
    checked = f", {len(outcome.hashed)} image(s) checked" if outcome.hashed else ""
    commit = f", commit {write.commit[:12]}" if write.commit else ""
    pushed = ", pushed" if write.pushed else ""
    console.out.print(f"{verb}: manifests/{path}{checked}{commit}{pushed}")


# --- the main job --------------------------------------------------------------------


@task(help={"dir": "scratch folder (default: a new temporary folder); replaced if it exists"})
@boundary
def demo(c: Context, dir: str | None = None) -> None:
    """Run the pipeline on embedded defaults in a scratch log and print a summary."""
    workdir = Path(dir).resolve() if dir else Path(tempfile.mkdtemp(prefix="fortnight-demo-"))
    result = run_demo(workdir, ROOT / "manifests" / DEFAULT_PRODUCT / "product.toml", _now())
    console.out.print(console.compose_table(result.recorded.manifest))
    console.out.print(
        f"recorded {result.doomed.manifest.compose_id}: no image ({result.doomed.manifest.reason})"
    )
    console.out.print(console.counts_table(result.report.counts(), len(result.report.failures)))
    console.out.print(f"manifest log: {result.repo}  (git log --stat there)")
    console.out.print(f"keys:         {result.keys}  (generated for this run)")
    console.out.print(f"try:          invoke verify --repo {result.repo}")


# --- development ---------------------------------------------------------------------


@task(name="test", help={"pytest_args": "extra arguments for pytest, e.g. '-k store -x'"})
def run_tests(c: Context, pytest_args: str = "") -> None:
    """Run the whole suite: ruff, mypy --strict, the schema check, and pytest."""
    steps: list[list[str]] = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        [sys.executable, "-m", "pytest", *pytest_args.split()],
    ]
    for step in steps:
        console.err.print(
            f"$ {' '.join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step))}"
        )
        rc = subprocess.run(step, cwd=ROOT, check=False).returncode
        if rc == 5 and "pytest" in step:  # no test collected (e.g. a -k that matches nothing)
            console.err.print("pytest collected no test")
            rc = 0
        if rc != 0:
            raise Exit(code=rc)


keys = Collection("keys")
keys.add_task(generate)
compose = Collection("compose")
compose.add_task(record)
ns = Collection(init, verify, schema, demo, run_tests, keys, compose)
