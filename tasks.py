"""Operator tasks (invoke). Each parses options, calls the library, reports.

Errors raised on purpose (``FortnightError``) are caught once, here, and shown
as one line with a documented exit code; set ``FORTNIGHT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import functools
import json as jsonlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import ParamSpec, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from securesystemslib.signer import Signer

from pipeline.adapters.aws.ec2 import ClientFactory, WithdrawAction
from pipeline.adapters.ingest import http_session, is_url, load_compose
from pipeline.cli import console
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import ROLES, RoleName, Trust
from pipeline.core.state import derive, summary
from pipeline.core.units import human_size
from pipeline.demo.run import run_demo
from pipeline.demo.simulate import DayReport
from pipeline.errors import CloudError, ConfigError, FortnightError
from pipeline.log.git import PushConfig
from pipeline.log.signing import empty_trust, load_signers
from pipeline.log.store import ManifestLog, WriteOptions, WriteResult, dump_json, init_log
from pipeline.stages.clouds import discover_clouds, withdraw_clouds
from pipeline.stages.compose import (
    failed_compose_manifest,
    record_compose,
    record_failed_compose,
)
from pipeline.stages.load import load_state
from pipeline.stages.schema import write_schemas
from pipeline.stages.testing import LogStore
from pipeline.stages.workflow import (
    cut_release,
    import_results,
    make_tracker,
    record_verdict,
    revoke_release,
    run_battery,
    sync_tracker,
)

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


def _log(repo: str | None, *, cache: bool = True) -> ManifestLog:
    """The manifest log; FORTNIGHT_NO_CACHE=1 turns the verification cache off."""
    use_cache = cache and not os.environ.get("FORTNIGHT_NO_CACHE")
    return ManifestLog(_repo(repo), cache=use_cache)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_options(
    dry_run: bool, no_commit: bool, push: bool, remote: str | None, log: ManifestLog
) -> WriteOptions:
    configured = log.configured_remote()
    do_push = (push or bool(remote) or bool(configured)) and not no_commit
    target = PushConfig(remote=remote or configured or "origin") if do_push else None
    return WriteOptions(dry_run=dry_run, commit=not no_commit, push=target)


@dataclass(frozen=True)
class Setup:
    """What a mutating task needs, loaded and checked before any work."""

    log: ManifestLog
    config: ProductConfig
    trust: Trust
    signers: list[Signer]  # as many as the role's threshold needs
    release: list[Signer] | None  # for the tracker sync afterwards; None with --no-tracker
    options: WriteOptions


def _setup(
    repo: str | None,
    product: str,
    role: RoleName,
    *,
    sync: bool,
    dry_run: bool,
    no_commit: bool,
    push: bool,
    remote: str | None,
) -> Setup:
    """Open the log, load product and trust, and every key the task will sign with."""
    log = _log(repo)
    log.require_repo()
    config = load_product(log.root, product)
    trust = log.load_trust()
    signers = load_signers(role, os.environ, trust)
    release = load_signers("release", os.environ, trust) if sync else None
    options = _write_options(dry_run, no_commit, push, remote, log)
    return Setup(log, config, trust, signers, release, options)


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
    log = _log(repo)
    role_name = _role(role)
    key = log.add_trusted_key(role_name, Path(out), commit=not no_commit)
    console.err.print(f"private key written to {key.private_path} (mode 0600); keep it secret")
    console.out.print(key.env_line(role_name))


@task(
    help={
        "repo": "the manifest log (default: .)",
        "cached": "trust the verification cache for files git reports unchanged (faster)",
    }
)
@boundary
def verify(c: Context, repo: str | None = None, cached: bool = False) -> None:
    """Verify every manifest's signatures; name each bad file and why; exit 4 on any failure."""
    log = _log(repo, cache=cached)  # an audit re-checks every signature by default
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
        "no_tracker": "with --failed: do not sync the failure tracker afterwards",
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
    no_tracker: bool = False,
) -> None:
    """Record a compose (or, with --failed, a compose with no image) in the log."""
    s = _setup(
        repo,
        product,
        "compose",
        sync=failed and not no_tracker,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    log, config, signers, options = s.log, s.config, s.signers, s.options
    if failed:
        if not compose_id or reason is None:
            raise ConfigError("--failed needs --compose-id and --reason")
        manifest = failed_compose_manifest(config, compose_id, reason, log_url, _now())
        outcome = record_failed_compose(log, manifest, signers, options)
        _report_write(outcome.write, [outcome.manifest.relpath()])
        if s.release is not None:
            _sync(log, config, s.release, options)
        return
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
                signers,
                _now(),
                verify=verify_files,
                options=options,
                session=session,
                progress=progress,
            )
    console.out.print(console.compose_table(outcome.manifest))
    checked = f"{len(outcome.hashed)} image(s) checked" if outcome.hashed else ""
    _report_write(outcome.write, [outcome.manifest.relpath()], checked)


def _report_write(write: WriteResult, paths: Sequence[PurePosixPath], extra: str = "") -> None:
    """One line per manifest: recorded, would record, or already recorded."""
    for path in paths:
        if write.dry_run:
            verb = "would record" if path in write.written else "already recorded"
        else:
            verb = "recorded" if path in write.written else "already recorded (no change)"
        details = [d for d in (extra,) if d]
        if write.commit:
            details.append(f"commit {write.commit[:12]}")
        if write.pushed:
            details.append("pushed")
        console.out.print(f"{verb}: manifests/{path}" + "".join(f", {d}" for d in details))


def _sync(
    log: ManifestLog, config: ProductConfig, release: list[Signer], options: WriteOptions
) -> None:
    """Sync the tracker and say what it did."""
    report = sync_tracker(
        log,
        config,
        signers=release,
        options=options,
        now=_now(),
        backend_for=lambda state: make_tracker(config, state, os.environ),
    )
    for event in report.events:
        prefix = "would " if options.dry_run else ""
        console.out.print(
            f"tracker: {prefix}{event.action} {event.bug} ({event.url}) for {event.compose_id}"
        )
    if report.open_bug is not None and not report.events:
        console.out.print(
            f"tracker: bug {report.open_bug.id} open ({report.open_bug.url}); nothing new to report"
        )
    elif report.open_bug is None and not report.events:
        console.out.print("tracker: no open bug, nothing to do")


def _logs(logs: str | None, log: ManifestLog) -> LogStore:
    root = logs or os.environ.get("FORTNIGHT_LOGS") or str(log.repo / "logs")
    return LogStore(Path(root).resolve())


# --- tests, verdicts, tracker ----------------------------------------------------------

WRITE_HELP = {
    "product": f"product name (default {DEFAULT_PRODUCT})",
    "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    "dry_run": "show what would be recorded; write nothing",
    "no_commit": "write manifests but do not commit",
    "push": "push after committing (rebase and retry on races)",
    "remote": "remote to push to (default: git config fortnight.remote, else origin)",
}


@task(
    name="run",
    iterable=["arch"],
    help={
        "compose_id": "the recorded compose to test",
        "suite": "run only this suite of the battery",
        "arch": "test only images of this arch (repeatable): one slice of a CI matrix",
        "logs": "log store folder (default: $FORTNIGHT_LOGS, else <repo>/logs)",
        "workers": "images tested at once (default: battery.workers, else the cores)",
        "runner": "name of this runner in the manifest (default: the host name)",
        "no_tracker": "do not sync the failure tracker afterwards",
        **WRITE_HELP,
    },
)
@boundary
def run_task(
    c: Context,
    compose_id: str,
    product: str = DEFAULT_PRODUCT,
    suite: str | None = None,
    arch: list[str] | None = None,
    logs: str | None = None,
    workers: int = 0,
    runner: str | None = None,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Run the test battery on every matching image of a compose; record the results."""
    s = _setup(
        repo,
        product,
        "test",
        sync=not no_tracker,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    log, config = s.log, s.config
    cores = len(os.sched_getaffinity(0))
    with (
        tempfile.TemporaryDirectory(prefix="fortnight-test-") as scratch,
        console.count_progress("testing") as (on_plan, on_test),
    ):
        outcome = run_battery(
            log,
            config,
            compose_id,
            suite=suite,
            arches=arch or [],
            logs=_logs(logs, log),
            scratch=Path(scratch),
            signers=s.signers,
            options=s.options,
            base_env=os.environ,
            clock=_now,
            runner=runner or socket.gethostname(),
            workers=workers or config.battery.workers or cores,
            session=http_session(),
            on_plan=on_plan,
            on_test=on_test,
        )
    console.out.print(console.results_table(outcome.manifests))
    for m in outcome.manifests:
        console.out.print(f"{m.suite}: {m.result}")
    _report_write(outcome.write, [m.relpath() for m in outcome.manifests])
    if s.release is not None:
        _sync(log, config, s.release, s.options)


@task(
    name="import",
    iterable=["arch", "advisory"],
    help={
        "compose_id": "the recorded compose the report is about",
        "suite": "an external suite of the battery (or a new name)",
        "junit": "the JUnit XML report (pytest, openQA, tmt…)",
        "advisory": "fnmatch pattern of test names that only warn (repeatable)",
        "arch": "the report covers only images of this arch (repeatable)",
        "logs": "log store folder (default: $FORTNIGHT_LOGS, else <repo>/logs)",
        "runner": "name of the system that ran the tests (default: the host name)",
        "no_tracker": "do not sync the failure tracker afterwards",
        **WRITE_HELP,
    },
)
@boundary
def import_task(
    c: Context,
    compose_id: str,
    suite: str,
    junit: str,
    product: str = DEFAULT_PRODUCT,
    advisory: list[str] | None = None,
    arch: list[str] | None = None,
    logs: str | None = None,
    runner: str | None = None,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Record a JUnit XML report as the results of a test suite."""
    s = _setup(
        repo,
        product,
        "test",
        sync=not no_tracker,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    outcome = import_results(
        s.log,
        s.config,
        compose_id,
        suite,
        Path(junit),
        advisory=advisory or [],
        arches=arch or [],
        logs=_logs(logs, s.log),
        signers=s.signers,
        options=s.options,
        clock=_now,
        runner=runner or socket.gethostname(),
    )
    console.out.print(console.results_table(outcome.manifests))
    _report_write(outcome.write, [m.relpath() for m in outcome.manifests])
    if s.release is not None:
        _sync(s.log, s.config, s.release, s.options)


def _operator(operator: str | None, log: ManifestLog) -> str:
    if operator:
        return operator
    name = log.git.run("config", "user.name", check=False).stdout.strip()
    return name or os.environ.get("USER") or "operator"


VERDICT_HELP = {
    "compose_id": "the compose",
    "reason": "why (shown on the site and in the log)",
    "reason_url": "a link with more (a bug, a mailing-list post)",
    "operator": "who decides (default: git config user.name)",
    "no_tracker": "do not sync the failure tracker afterwards",
    **WRITE_HELP,
}


@task(name="fail", help=VERDICT_HELP)
@boundary
def compose_fail(
    c: Context,
    compose_id: str,
    reason: str,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str = DEFAULT_PRODUCT,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Fail a compose by hand, even though its tests passed (release key)."""
    _verdict(
        "fail",
        compose_id,
        reason,
        reason_url,
        operator,
        None,
        None,
        product,
        no_tracker,
        repo,
        dry_run,
        no_commit,
        push,
        remote,
    )


@task(
    name="waive", help={"test": "the failed test to accept", "suite": "its suite", **VERDICT_HELP}
)
@boundary
def waive_task(
    c: Context,
    compose_id: str,
    test: str,
    reason: str,
    suite: str | None = None,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str = DEFAULT_PRODUCT,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Accept one failed test of a compose as a known false negative (release key)."""
    _verdict(
        "waive",
        compose_id,
        reason,
        reason_url,
        operator,
        test,
        suite,
        product,
        no_tracker,
        repo,
        dry_run,
        no_commit,
        push,
        remote,
    )


def _verdict(
    action: str,
    compose_id: str,
    reason: str,
    reason_url: str | None,
    operator: str | None,
    test: str | None,
    suite: str | None,
    product: str,
    no_tracker: bool,
    repo: str | None,
    dry_run: bool,
    no_commit: bool,
    push: bool,
    remote: str | None,
) -> None:
    s = _setup(
        repo,
        product,
        "release",
        sync=False,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    log, config, signers, options = s.log, s.config, s.signers, s.options
    verdict, write = record_verdict(
        log,
        config,
        compose_id,
        action=action,
        reason=reason,
        operator=_operator(operator, log),
        test=test,
        suite=suite,
        reason_url=reason_url,
        signers=signers,
        options=options,
        now=_now(),
    )
    if verdict is None or write is None:
        console.out.print(f"{compose_id} is already failed by an operator (no change)")
    else:
        _report_write(write, [verdict.relpath()])
    if not no_tracker:
        _sync(log, config, signers, options)


@task(name="sync", help=WRITE_HELP)
@boundary
def tracker_sync(
    c: Context,
    product: str = DEFAULT_PRODUCT,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """File, comment on or close the product's failure bug to match the log (release key)."""
    s = _setup(
        repo,
        product,
        "release",
        sync=False,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    _sync(s.log, s.config, s.signers, s.options)


def _at(at: str | None) -> datetime:
    """``--at``: a date (midnight UTC) or an ISO datetime; default now."""
    if not at:
        return _now()
    try:
        value = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--at {at}: not a date or datetime", hint="use e.g. 2018-05-15 or 2018-05-15T06:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


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
    log = _log(repo)
    names = [product] if product else log.product_names()
    when = _at(at)
    trust = log.load_trust()
    manifests = [v.manifest for v in log.load_verified(trust)]
    states = [derive(manifests, load_product(log.root, name), when) for name in names]
    if json:
        doc = {"products": {s.product.name: summary(s) for s in states}}
        print(jsonlib.dumps(doc, indent=2, sort_keys=True))
        return
    for state in states:
        console.out.print(console.release_panel(state))
        console.out.print(console.status_table(state, limit))


# --- releases ------------------------------------------------------------------------


@task(name="cut", help={"at": "decide as of this date or datetime (default: now)", **WRITE_HELP})
@boundary
def release_cut(
    c: Context,
    product: str = DEFAULT_PRODUCT,
    at: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Decide the current cycle's release if it needs a decision; safe to run any time."""
    s = _setup(
        repo,
        product,
        "release",
        sync=False,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    when = _at(at)
    manifest, write, state = cut_release(
        s.log, s.config, when, signers=s.signers, options=s.options
    )
    if manifest is None or write is None:
        cycle = state.cycle
        if cycle is None:
            console.out.print(f"nothing to do: the first release day is {s.config.release.anchor}")
        else:
            console.out.print(
                f"nothing to do: the cycle of {cycle} is decided; next release "
                f"day {state.next_release_day}"
            )
        return
    console.out.print(console.decision_table(manifest))
    console.out.print(manifest.explanation)
    _report_write(write, [manifest.relpath()])


@task(
    name="revoke",
    help={
        "release_id": "the release to withdraw (e.g. 2018-05-15)",
        "reason": "why (shown on the page)",
        "reason_url": "a link with more",
        "operator": "who decides (default: git config user.name)",
        "cloud": "also withdraw the compose's AMIs (private + tagged; see cloud.withdraw)",
        "endpoint_url": "EC2 endpoint for every region, with --cloud (default: AWS)",
        **WRITE_HELP,
    },
)
@boundary
def release_revoke(
    c: Context,
    release_id: str,
    reason: str,
    reason_url: str | None = None,
    operator: str | None = None,
    product: str = DEFAULT_PRODUCT,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
    cloud: bool = False,
    endpoint_url: str | None = None,
) -> None:
    """Withdraw a release: the page falls back to the previous good one and warns."""
    s = _setup(
        repo,
        product,
        "release",
        sync=False,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    manifest, write = revoke_release(
        s.log,
        s.config,
        release_id,
        reason=reason,
        reason_url=reason_url,
        operator=_operator(operator, s.log),
        signers=s.signers,
        options=s.options,
        now=_now(),
    )
    if manifest is None or write is None:
        console.out.print(f"release {release_id} is already withdrawn (no change)")
    else:
        _report_write(write, [manifest.relpath()])
    state, _ = load_state(s.log, s.config, _now())
    if manifest is not None and write is not None:
        current = state.current
        console.out.print(
            "current release now: "
            + (
                f"{current.release_id} ({current.manifest.compose_id})"
                if current
                else "none: no image available"
            )
        )
    if cloud:
        view = state.release(release_id)
        compose_id = manifest.compose_id if manifest else view and view.manifest.compose_id
        if not compose_id:  # unreachable: revoke_release checked the release
            raise ConfigError(f"--release-id {release_id}: no compose to withdraw")
        actions = withdraw_clouds(
            s.log,
            s.config,
            compose_id,
            make_client=_ec2_factory(endpoint_url),
            now=_now(),
            dry_run=dry_run,
        )
        _report_withdraw(compose_id, actions, dry_run)


# --- cloud images ----------------------------------------------------------------------


def _ec2_factory(endpoint_url: str | None) -> ClientFactory:
    """EC2 clients through boto3's standard credential chain (never logged here).

    boto3's own retries are off: ``pipeline.adapters.aws.ec2`` retries a region itself, so a
    failing region is reported once, with its reason.
    """
    import boto3  # noqa: PLC0415 - only this task needs it; keeps other tasks fast
    from botocore.config import Config  # noqa: PLC0415

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10)

    def make(region: str) -> object:
        return boto3.client("ec2", region_name=region, endpoint_url=endpoint_url, config=config)

    return make


@task(
    name="discover",
    help={
        "compose_id": "the recorded compose whose AMIs to find",
        "workers": "regions queried at once (default 4)",
        "endpoint_url": "EC2 endpoint for every region (tests, private clouds; default: AWS)",
        **WRITE_HELP,
    },
)
@boundary
def cloud_discover(
    c: Context,
    compose_id: str,
    product: str = DEFAULT_PRODUCT,
    workers: int = 4,
    endpoint_url: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Find a compose's AMIs in every region of [clouds.aws] and record them (compose role)."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    s = _setup(
        repo,
        product,
        "compose",
        sync=False,
        dry_run=dry_run,
        no_commit=no_commit,
        push=push,
        remote=remote,
    )
    outcome = discover_clouds(
        s.log,
        s.config,
        compose_id,
        signers=s.signers,
        options=s.options,
        now=_now(),
        make_client=_ec2_factory(endpoint_url),
        workers=workers,
    )
    console.out.print(console.clouds_table(outcome.manifest))
    for m in outcome.manifest.missing:
        console.out.print(f"missing: {m.region}: {m.reason}")
    if outcome.write is None:
        console.out.print(
            f"unchanged since run {outcome.manifest.run}: "
            f"manifests/{outcome.manifest.relpath()}; nothing recorded"
        )
        return
    _report_write(outcome.write, [outcome.manifest.relpath()])


def _report_withdraw(compose_id: str, actions: list[WithdrawAction], dry_run: bool) -> None:
    """Print the withdrawal table; exit 8 (``CloudError``) if an AMI failed."""
    console.out.print(console.withdraw_table(compose_id, actions, dry_run))
    failed = [a for a in actions if a.error is not None]
    if failed:
        regions = ", ".join(sorted({a.region for a in failed}))
        raise CloudError(
            f"{len(failed)} of {len(actions)} AMI(s) of {compose_id} not withdrawn ({regions})",
            hint="re-run when the region answers: withdrawing is idempotent",
        )
    if dry_run:
        console.out.print("dry run: nothing changed in EC2")


@task(
    name="withdraw",
    help={
        "compose_id": "the compose whose AMIs (newest cloud.discover run) to withdraw",
        "endpoint_url": "EC2 endpoint for every region (tests, private clouds; default: AWS)",
        "attempts": "tries per EC2 call on throttling or connection errors (default 4)",
        "dry_run": "show the plan; change nothing",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    },
)
@boundary
def cloud_withdraw(
    c: Context,
    compose_id: str,
    product: str = DEFAULT_PRODUCT,
    endpoint_url: str | None = None,
    attempts: int = 4,
    repo: str | None = None,
    dry_run: bool = False,
) -> None:
    """Make a compose's AMIs private and tag them with the date (restorable; records nothing)."""
    if attempts < 1:
        raise ConfigError(f"--attempts {attempts}: must be at least 1")
    log = _log(repo)
    log.require_repo()
    config = load_product(log.root, product)
    actions = withdraw_clouds(
        log,
        config,
        compose_id,
        make_client=_ec2_factory(endpoint_url),
        now=_now(),
        dry_run=dry_run,
        attempts=attempts,
    )
    _report_withdraw(compose_id, actions, dry_run)


# --- the main job --------------------------------------------------------------------


@task(
    help={
        "dir": "scratch folder (default: a new temporary folder); replaced if it exists",
        "weeks": "how many weeks of nightly composes to play (default: 10)",
        "seed": "the seed of the story's faults (default: 1); the same seed, the same story",
        "serve": "serve the site on 127.0.0.1 at the end until Ctrl-C (default: on)",
        "port": "port for --serve (default: 0, a free one)",
    }
)
@boundary
def demo(
    c: Context,
    dir: str | None = None,
    weeks: int = 10,
    seed: int = 1,
    serve: bool = True,
    port: int = 0,
) -> None:
    """Run the whole pipeline, day by day, on embedded defaults, build the site and serve it."""
    if weeks < 1:
        raise ConfigError(f"--weeks {weeks}: must be at least 1")
    workdir = Path(dir).resolve() if dir else Path(tempfile.mkdtemp(prefix="fortnight-demo-"))
    download_url = "/composes/{compose_id}/compose/"
    server = None
    if serve:  # bind first: the pages then carry absolute download links to this server
        from pipeline.site.serve import site_server  # noqa: PLC0415 - Pelican loads only here

        server = site_server(workdir / "www", "127.0.0.1", port)
        download_url = f"http://127.0.0.1:{server.server_address[1]}{download_url}"
    started = time.monotonic()
    with console.day_progress() as progress:
        task_id = progress.add_task("nights", total=None)

        def on_day(n: int, day: DayReport) -> None:
            progress.update(task_id, description=f"{day.day} {day.compose_id} {day.status}")
            progress.advance(task_id)
            for line in (day.decision, *day.bug_events, *day.notes):
                if line:
                    console.out.print(f"{day.day}  {line}")

        result = run_demo(
            workdir,
            ROOT / "manifests" / DEFAULT_PRODUCT / "product.toml",
            ROOT / "pelicanconf.py",
            weeks=weeks,
            seed=seed,
            today=_now().date(),
            on_day=on_day,
            on_plan=lambda days: progress.update(task_id, total=days),
            download_url=download_url,
        )
    t = result.totals
    console.out.print(console.counts_table(result.report.counts(), len(result.report.failures)))
    console.out.print(
        f"{t.composes} nights: {t.releases} releases, {t.stale_cycles} stale cycles, "
        f"{t.withdrawn} withdrawn; bugs {t.bugs_opened} opened, {t.bugs_closed} closed; "
        f"in {time.monotonic() - started:.0f} s"
    )
    shown = result.current or "no image"
    console.out.print(f"the page offers: {shown}{' (stale)' if result.stale else ''}")
    console.out.print(f"manifest log: {result.repo}  (git log --stat there)")
    console.out.print(f"keys:         {result.keys}  (generated for this run)")
    console.out.print(f"site:         {result.site}")
    if server is not None:
        from pipeline.site.serve import serve_forever  # noqa: PLC0415 - Pelican is loaded by now

        serve_forever(server, result.site)


# --- the site ------------------------------------------------------------------------


def _output(output: str | None, log: ManifestLog) -> Path:
    return Path(output or os.environ.get("FORTNIGHT_OUTPUT") or log.repo / "output").resolve()


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
    """Build the download site from the verified log (fails closed on any bad manifest)."""
    from pipeline.site.build import build_site  # noqa: PLC0415 - Pelican loads only for the site

    log = _log(repo)
    out = _output(output, log)
    conf = ROOT / ("publishconf.py" if production else "pelicanconf.py")
    started = time.monotonic()
    report = build_site(
        conf,
        log.repo,
        out,
        at=_at(at) if at else None,
        logs=_logs(logs, log).root,
        force=force,
        cache=log.cache,
        overrides={"FORTNIGHT_WORKERS": workers} if workers else None,
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

    out = _output(output, _log(repo))
    where = target or os.environ.get("FORTNIGHT_PUBLISH_TARGET")
    if not where:
        raise ConfigError("--target is required", hint="e.g. --target s3://my-bucket/site")
    if not (out / "index.html").is_file():
        raise ConfigError(f"{out}: no built site here", hint="run 'invoke site.build' first")
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

    out = _output(output, _log(repo))
    if not (out / "index.html").is_file():
        raise ConfigError(f"{out}: no built site here", hint="run 'invoke site.build' first")
    serve_site(out, bind, port)


# --- message bus (docs/bus.md) -------------------------------------------------------

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
    log = _log(repo or settings.repo)
    listening.listen(log, settings, path, product=product, root=ROOT, env=os.environ)


@task(
    help={
        "since": "re-send what was recorded after this commit (default: the last announced)",
        "dry_run": "list the messages; publish nothing",
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
    """Publish a bus message for each manifest recorded since the last announcement."""
    # fedora-messaging is slow to import: only in the bus tasks
    from pipeline.adapters.bus.client import amqp_publisher  # noqa: PLC0415
    from pipeline.adapters.bus.settings import config_path, load_settings  # noqa: PLC0415
    from pipeline.stages import announce as announcing  # noqa: PLC0415

    settings = load_settings(config_path(config, os.environ, ROOT))
    log = _log(repo or settings.repo)
    publish = amqp_publisher(settings.publish_timeout)
    report = announcing.announce(log, settings, publish=publish, since=since, dry_run=dry_run)
    for msg in report.messages:
        verb = "would announce" if dry_run else "announced"
        console.out.print(f"{verb}: {msg.topic} ({msg.body['manifest']})")
    for path, reason in report.rejected:
        console.err.print(f"not announced (failed verification): {path}: {reason}")
    if report.since is None:
        console.out.print(f"announcements start at {report.head[:12]}; nothing sent")
    elif not report.messages:
        console.out.print(f"nothing to announce since {report.since[:12]}")


# --- development ---------------------------------------------------------------------


@task(name="ci", help={"pytest_args": "extra arguments for pytest, e.g. '-k store -x'"})
def run_tests(c: Context, pytest_args: str = "") -> None:
    """Run the whole suite: ruff, mypy --strict, the schema check, and pytest."""
    needs = {
        "chromium": ("chromium", shutil.which("chromium")),
        "rabbitmq-server": ("RabbitMQ", Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()),
    }
    for package, (what, present) in needs.items():
        if not present:
            raise Exit(
                f"error: the tests need Debian's {what}; install it with "
                f"'apt-get install {package}' (.ci/run does)",
                code=2,
            )
    steps: list[list[str]] = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        [sys.executable, "-m", "pytest", *shlex.split(pytest_args)],
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
compose.add_task(compose_fail)
testing = Collection("test")
testing.add_task(run_task)
testing.add_task(import_task)
testing.add_task(waive_task)
tracker = Collection("tracker")
tracker.add_task(tracker_sync)
release = Collection("release")
release.add_task(release_cut)
release.add_task(release_revoke)
site = Collection("site")
site.add_task(site_build)
site.add_task(site_serve)
site.add_task(site_publish)
cloud = Collection("cloud")
cloud.add_task(cloud_discover)
cloud.add_task(cloud_withdraw)
ns = Collection(
    init, verify, status, schema, demo, keys, compose, testing, tracker, release, cloud, site
)
ns.add_task(run_tests)
ns.add_task(listen)
ns.add_task(announce)
