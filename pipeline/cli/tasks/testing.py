"""``test.run`` and ``test.import``: test results of a compose."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import (
    WRITE_HELP,
    WriteFlags,
    byte_limit,
    count_limit,
    sandbox_kind,
)
from pipeline.cli.report import report_results, report_write
from pipeline.cli.setup import log_store, now, task_setup
from pipeline.cli.tasks.tracker import sync_and_report


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
        "sandbox": "bwrap: run each test in bubblewrap, unable to read the signing keys; "
        "none: without (default: battery.sandbox)",
        "no_tracker": "do not sync the failure tracker afterwards",
        **WRITE_HELP,
    },
)
@boundary
def run_task(
    c: Context,
    compose_id: str,
    product: str | None = None,
    suite: str | None = None,
    arch: list[str] | None = None,
    logs: str | None = None,
    workers: int = 0,
    runner: str | None = None,
    sandbox: str | None = None,
    no_tracker: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
    push: bool = False,
    remote: str | None = None,
) -> None:
    """Run the test battery on every matching image of a compose; record the results."""
    from pipeline.adapters.ingest import http_session  # noqa: PLC0415 - requests loads here
    from pipeline.stages.results import run_battery  # noqa: PLC0415

    flags = WriteFlags(dry_run, no_commit, push, remote)
    kind = sandbox_kind(sandbox)
    s = task_setup(repo, product, "test", flags, sync=not no_tracker)
    with (
        tempfile.TemporaryDirectory(prefix="fortnight-test-") as scratch,
        console.count_progress("testing") as (on_plan, on_test),
    ):
        outcome = run_battery(
            s.log,
            s.config,
            compose_id,
            suite=suite,
            arches=arch or [],
            logs=log_store(logs, s.log, os.environ),
            scratch=Path(scratch),
            signers=s.signers,
            options=s.options,
            base_env=os.environ,
            clock=now,
            runner=runner or socket.gethostname(),
            workers=workers or s.config.battery.workers or len(os.sched_getaffinity(0)),
            session=http_session(),
            sandbox=kind,
            on_plan=on_plan,
            on_test=on_test,
        )
    if flags.dry_run:
        for suite_name, test, image in outcome.planned:
            console.out.print(f"would run: {suite_name}: {test} on {image}")
        console.out.print(f"dry run: {len(outcome.planned)} test(s) would run; nothing ran")
        return
    console.out.print(console.results_table(outcome.manifests))
    for m in outcome.manifests:
        console.out.print(f"{m.suite}: {m.result}")
    report_write(outcome.write, [m.relpath() for m in outcome.manifests])
    if s.release is not None:
        sync_and_report(s, s.release)


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
        "max_junit_bytes": "cap on the report's size (default: $FORTNIGHT_MAX_JUNIT_BYTES, "
        "else 64MiB)",
        "max_cases": "test cases recorded in the manifest, failures first; the counts and "
        "the stored report cover all (default: $FORTNIGHT_MAX_JUNIT_CASES, else 1000)",
        **WRITE_HELP,
    },
)
@boundary
def import_task(
    c: Context,
    compose_id: str,
    suite: str,
    junit: str,
    product: str | None = None,
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
    max_junit_bytes: str | None = None,
    max_cases: int = 0,
) -> None:
    """Record a JUnit XML report as the results of a test suite."""
    from pipeline.stages.junit import DEFAULT_MAX_CASES, DEFAULT_MAX_JUNIT_BYTES, JunitLimits  # noqa: PLC0415
    from pipeline.stages.results import import_results  # noqa: PLC0415 - loads the test runner

    limits = JunitLimits(
        max_bytes=byte_limit(
            max_junit_bytes,
            os.environ,
            option="--max-junit-bytes",
            variable="FORTNIGHT_MAX_JUNIT_BYTES",
            default=DEFAULT_MAX_JUNIT_BYTES,
        ),
        max_cases=count_limit(
            max_cases,
            os.environ,
            option="--max-cases",
            variable="FORTNIGHT_MAX_JUNIT_CASES",
            default=DEFAULT_MAX_CASES,
        ),
    )
    flags = WriteFlags(dry_run, no_commit, push, remote)
    s = task_setup(repo, product, "test", flags, sync=not no_tracker)
    outcome = import_results(
        s.log,
        s.config,
        compose_id,
        suite,
        Path(junit),
        advisory=advisory or [],
        arches=arch or [],
        logs=log_store(logs, s.log, os.environ),
        signers=s.signers,
        options=s.options,
        clock=now,
        runner=runner or socket.gethostname(),
        limits=limits,
    )
    report_results(outcome.manifests, outcome.write)
    if s.release is not None:
        sync_and_report(s, s.release)
