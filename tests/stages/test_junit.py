"""Issue 17: a JUnit report is streamed, size-capped, and recorded with at most so many
cases per manifest: every failure first, the counts and the stored report cover all."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.core.config import ProductConfig
from pipeline.core.state import derive
from pipeline.errors import InputError
from pipeline.log.signing import load_signer
from pipeline.log.writer import WriteOptions
from pipeline.stages.isolation import redactor_for
from pipeline.stages.junit import JunitLimits
from pipeline.stages.results import RunOutcome, import_results
from pipeline.stages.testing import LogStore
from tests.conftest import NOW, ComposeTree, Log
from tests.stages.test_testing import recorded

COMPOSE_ID = "Fedora-28-20180425.0"


def junit(cases: list[tuple[str, str]]) -> str:
    """A report of (name, outcome) cases: outcome ``pass``, ``fail`` or ``skip``."""
    body = {
        "pass": "",
        "fail": '<failure message="it broke">trace of {name}</failure>',
        "skip": '<skipped message="later"/>',
    }
    rows = [
        f'<testcase classname="t" name="{name}" time="0.01">'
        f"{body[outcome].format(name=name)}</testcase>"
        for name, outcome in cases
    ]
    return (
        '<?xml version="1.0"?><testsuites><testsuite name="x">'
        + "".join(rows)
        + ("</testsuite></testsuites>")
    )


def do_import(
    log: Log,
    product: ProductConfig,
    report: Path,
    tmp_path: Path,
    *,
    max_cases: int,
    advisory: tuple[str, ...] = (),
    minutes: int = 0,
) -> RunOutcome:
    return import_results(
        log.log,
        product,
        COMPOSE_ID,
        "openqa",
        report,
        advisory=list(advisory),
        arches=[],
        logs=LogStore(tmp_path / "logs", redactor_for(log.env)),
        signers=[load_signer("test", log.env, log.log.load_trust())],
        options=WriteOptions(),
        clock=lambda: NOW + timedelta(minutes=minutes),
        runner="ci",
        limits=JunitLimits(max_cases=max_cases),
    )


@pytest.fixture
def setup(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> tuple[Log, ProductConfig]:
    log = make_log()
    return log, recorded(log, make_compose_tree())


def test_a_large_report_keeps_counts_every_failure_and_the_full_report(
    setup: tuple[Log, ProductConfig], tmp_path: Path
) -> None:
    log, product = setup
    cases = [(f"c{i}", "pass") for i in range(3000)]
    for i, outcome in ((7, "fail"), (1500, "fail"), (2999, "fail"), (10, "skip")):
        cases[i] = (f"c{i}", outcome)
    report = tmp_path / "big.xml"
    report.write_text(junit(cases))
    [m] = do_import(log, product, report, tmp_path, max_cases=10, advisory=("t.c2999",)).manifests
    assert m.counts is not None and m.report is not None
    assert (m.counts.total, m.counts.passed, m.counts.failed, m.counts.skipped) == (
        3000,
        2996,
        3,
        1,
    )
    assert m.counts.recorded == len(m.tests) == 10
    failed = [(t.name, t.blocking) for t in m.tests if t.outcome == "FAILED"]
    assert failed == [("t.c7", True), ("t.c1500", True), ("t.c2999", False)]
    assert [t.name for t in m.tests] == sorted((t.name for t in m.tests), key=lambda n: int(n[3:]))
    assert m.result == "FAILED"
    stored = tmp_path / "logs" / m.report.path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == m.report.sha256
    assert stored.read_bytes() == report.read_bytes()
    signed = (log.repo / "manifests" / m.relname()).stat().st_size
    assert signed < 20_000, signed  # ten cases, not three thousand


def test_blocking_failures_come_first_when_failures_exceed_the_cap(
    setup: tuple[Log, ProductConfig], tmp_path: Path
) -> None:
    """Twenty advisory failures, then one blocking: the verdict stays FAILED."""
    log, product = setup
    cases = [(f"warn{i}", "fail") for i in range(20)] + [("real", "fail")]
    report = tmp_path / "r.xml"
    report.write_text(junit(cases))
    [m] = do_import(log, product, report, tmp_path, max_cases=5, advisory=("t.warn*",)).manifests
    assert len(m.tests) == 5 and "t.real" in {t.name for t in m.tests}
    assert m.result == "FAILED" and m.counts is not None and m.counts.failed == 21


def test_a_rerun_records_the_tests_that_failed_before(
    setup: tuple[Log, ProductConfig], tmp_path: Path
) -> None:
    """The fixed test is recorded as passed even past the cap, so the compose passes."""
    log, product = setup
    first = tmp_path / "first.xml"
    first.write_text(junit([(f"c{i}", "fail" if i == 900 else "pass") for i in range(1000)]))
    do_import(log, product, first, tmp_path, max_cases=50)
    second = tmp_path / "second.xml"
    second.write_text(junit([(f"c{i}", "pass") for i in range(1000)]))
    [m] = do_import(log, product, second, tmp_path, max_cases=50, minutes=5).manifests
    assert "t.c900" in {t.name for t in m.tests}
    manifests = [v.manifest for v in log.log.load_verified(log.log.load_trust())]
    state = derive(manifests, product, NOW + timedelta(hours=1))
    view = state.compose(COMPOSE_ID)
    assert view is not None and view.suites["openqa"].blocking_failures == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '<?xml version="1.0" encoding="x-klingon"?><testsuite/>',
            "cannot be decoded (unknown encoding: x-klingon)",
        ),
        ("<testsuite>" + "<a>" * 50 + "</testsuite>", "not valid XML (mismatched tag"),
        ('<testsuite><testcase name="" /></testsuite>', "<testcase> number 1 has no name"),
        ('<testsuite><testcase name="x" time="nan"/></testsuite>', "time 'nan' is not a number"),
        ('<testsuite><testcase name="x" time="1e999"/></testsuite>', "is not a number"),
    ],
)
def test_hostile_reports_are_one_line_errors(
    content: str, message: str, setup: tuple[Log, ProductConfig], tmp_path: Path
) -> None:
    log, product = setup
    report = tmp_path / "r.xml"
    report.write_text(content)
    head = log.git("rev-parse", "HEAD")
    with pytest.raises(InputError) as exc:
        do_import(log, product, report, tmp_path, max_cases=10)
    assert message in exc.value.message and "\n" not in exc.value.diagnostics()
    assert log.git("rev-parse", "HEAD") == head
