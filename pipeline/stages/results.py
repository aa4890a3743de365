"""Test results of a compose: run the battery on it, or import a JUnit report, and record them.

Each verifies what it loads first (the product's folder of the log) and fails closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from pipeline.core.config import ProductConfig, SandboxKind
from pipeline.core.models.manifests import Image, ResultManifest
from pipeline.core.state import ComposeView
from pipeline.errors import ConfigError, InputError, TestRunError
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.battery import PlannedSuite, plan_suites
from pipeline.stages.isolation import Sandbox
from pipeline.stages.junit import DEFAULT_LIMITS, JunitLimits, import_junit
from pipeline.stages.load import load_state, require_compose
from pipeline.stages.ostree import ostree_setup
from pipeline.stages.testing import (
    Clock,
    LogStore,
    RunSettings,
    count_tests,
    image_files,
    run_suite,
)


@dataclass
class RunOutcome:
    """What test.run or test.import did."""

    manifests: list[ResultManifest]
    write: WriteResult
    #: With ``--dry-run``: what would run, as (suite, test, image path), in order.
    planned: list[tuple[str, str, str]] = field(default_factory=list)


Runnable = Sequence[tuple[PlannedSuite, Sequence[Image]]]


def _planned(runnable: Runnable) -> list[tuple[str, str, str]]:
    """Every (suite, test, image) a run would execute (tunir pauses left out)."""
    return [
        (suite.name, test.name, img.path)
        for suite, imgs in runnable
        for img in imgs
        for test in suite.tests
        if test.applies_to(img.type, img.arch)
    ]


def run_battery(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    *,
    suite: str | None,
    arches: Sequence[str],
    logs: LogStore,
    scratch: Path,
    signers: Sequence[Signer],
    options: WriteOptions,
    base_env: Mapping[str, str],
    clock: Clock,
    runner: str,
    workers: int,
    session: requests.Session,
    sandbox: SandboxKind | None = None,
    on_plan: Callable[[int], None] = lambda total: None,
    on_test: Callable[[], None] = lambda: None,
) -> RunOutcome:
    """Run the battery (or one suite) on a recorded compose and record one manifest per suite.

    Test commands see ``base_env``'s allowlisted variables and the battery's ``pass_env``;
    ``sandbox`` (default: the battery's) runs each in bubblewrap.

    Raises:
        InputError: the compose is not recorded, or its files are missing.
        TestRunError: the compose has no image, or nothing matches ``suite``/``arches``.
        ConfigError: the battery is broken, or its sandbox cannot hide the keys.
    """
    state, trust = load_state(log, product, clock())
    view = require_compose(state, compose_id)
    if view.compose.outcome == "no-image":
        raise TestRunError(
            f"{compose_id}: produced no image; there is nothing to test",
            hint="its status is already no-image",
        )
    suites = plan_suites(product, log.product_dir(product.name), suite)
    plan = [(s, s.images(view.compose, list(arches))) for s in suites]
    runnable = [(s, imgs) for s, imgs in plan if imgs]
    if not runnable:
        raise TestRunError(
            f"{compose_id}: no image matches the battery"
            + (f" on {', '.join(arches)}" if arches else ""),
            hint="check --arch and the types and arches in the battery",
        )
    if options.dry_run:  # nothing is downloaded, run or written
        return RunOutcome([], WriteResult(dry_run=True), planned=_planned(runnable))
    needed: dict[tuple[str, str, str, str, int], Image] = {
        img.key(): img for _, imgs in runnable for img in imgs
    }
    jail = _sandbox(product, sandbox, base_env)
    files = image_files(view.compose, list(needed.values()), scratch / "images", session)
    if jail is not None:
        jail.check([scratch, *jail.visible(), *(p.parent for p in files.values())])
    on_plan(sum(count_tests(s, imgs) for s, imgs in runnable))
    settings = RunSettings(
        view.compose,
        logs,
        scratch / "work",
        base_env,
        clock,
        runner,
        workers or 1,
        pass_env=tuple(product.battery.pass_env),
        sandbox=jail,
        ostree_repo=_ostree_repo(product, log, base_env),
    )
    manifests = [
        run_suite(s, imgs, files, settings, arches=list(arches), on_test=on_test)
        for s, imgs in runnable
    ]
    summary = ", ".join(f"{m.suite} {m.result}" for m in manifests)
    write = log.record(manifests, signers, trust, f"test: {compose_id}: {summary}", options)
    return RunOutcome(manifests, write)


def _sandbox(
    product: ProductConfig, kind: SandboxKind | None, env: Mapping[str, str]
) -> Sandbox | None:
    """The sandbox of a run: ``kind``, else the battery's.

    Raises:
        ConfigError: bubblewrap is not installed.
    """
    if (kind or product.battery.sandbox) == "none":
        return None
    return Sandbox.bubblewrap(env, network=product.battery.sandbox_network)


def _failed_before(view: ComposeView, suite: str) -> set[str]:
    """The tests of ``suite`` whose latest result on the compose failed."""
    tests = view.suites[suite].results if suite in view.suites else []
    return {t.case.name for t in tests if t.case.outcome == "FAILED"}


def import_results(
    log: ManifestLog,
    product: ProductConfig,
    compose_id: str,
    suite: str,
    junit: Path,
    *,
    advisory: Sequence[str],
    arches: Sequence[str],
    logs: LogStore,
    signers: Sequence[Signer],
    options: WriteOptions,
    clock: Clock,
    runner: str,
    limits: JunitLimits = DEFAULT_LIMITS,
) -> RunOutcome:
    """Record a JUnit XML report as a test-result manifest of ``suite``.

    Advisory patterns come from the suite's ``advisory`` list in product.toml
    plus ``advisory``; every other test blocks. The manifest records at most
    ``limits.max_cases`` cases (every failure first, then those that failed before).

    Raises:
        InputError: the compose is unknown, has no matching image, or the XML is bad.
    """
    state, trust = load_state(log, product, clock())
    view = require_compose(state, compose_id)
    spec = product.battery.suites.get(suite)
    if spec is not None and not spec.external:
        raise ConfigError(
            f"--suite {suite}: runs by command in the battery; import into an external suite",
            hint=f"add [battery.suites.{suite}] external = true, or another name",
        )
    images = [img for img in view.compose.images if not arches or img.arch in arches]
    if not images and view.compose.images:
        raise InputError(f"{compose_id}: no image on {', '.join(arches)}")
    patterns = [*(spec.advisory if spec else []), *advisory]
    manifest = import_junit(
        junit,
        view.compose,
        suite,
        advisory=patterns,
        images=images,
        logs=logs,
        clock=clock,
        runner=runner,
        limits=limits,
        prefer=_failed_before(view, suite),
    )
    write = log.record(
        [manifest],
        signers,
        trust,
        f"test: {compose_id}: {suite} {manifest.result} (imported)",
        options,
    )
    return RunOutcome([manifest], write)


def _ostree_repo(product: ProductConfig, log: ManifestLog, env: Mapping[str, str]) -> str:
    """The compose OSTree repository's local path for the ``ostree`` check ("" if none)."""
    setup = ostree_setup(product, log.repo, env)
    if setup is None or setup.source is None or isinstance(setup.source, str):
        return ""
    return str(setup.source.path)
