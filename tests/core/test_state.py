"""Derived compose status: one pure function, table-driven over the cases that matter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import VerdictManifest
from pipeline.core.state import derive
from tests.conftest import NOW, compose_on, doomed_on, make_result, product_config

PRODUCT = product_config()
LATER = NOW.replace(day=28)


def verdict(
    compose_id: str, action: str, number: int = 1, test: str | None = None, suite: str | None = None
) -> VerdictManifest:
    return VerdictManifest(
        product="atomic-host",
        created=NOW.replace(day=20),
        compose_id=compose_id,
        number=number,
        action=action,  # type: ignore[arg-type]
        test=test,
        suite=suite,
        reason="known bad",
        operator="dusty",
    )


def status_of(*manifests: Manifest) -> tuple[str, list[str]]:
    view = derive(manifests, PRODUCT, LATER).composes[-1]
    return view.status, view.reasons


def test_no_results_is_pending() -> None:
    assert status_of(compose_on(15)) == ("pending", ["images: no results yet"])


def test_all_passed() -> None:
    c = compose_on(15)
    assert status_of(c, make_result(c)) == ("passed", [])


def test_blocking_failure_fails_and_says_which() -> None:
    c = compose_on(15)
    status, reasons = status_of(c, make_result(c, fail=["format"]))
    assert status == "failed"
    assert reasons == ["images: blocking test format failed on x86_64 qcow2 (exit code 1)"]


def test_advisory_failure_warns_but_passes() -> None:
    c = compose_on(15)
    status, reasons = status_of(c, make_result(c, fail=["name"]))
    assert status == "passed"
    assert reasons == ["images: advisory test name failed"]
    assert (
        derive([c, make_result(c, fail=["name"])], PRODUCT, LATER)
        .composes[0]
        .suites["images"]
        .verdict
        == "WARNED"
    )


def test_latest_run_counts_and_all_runs_are_kept() -> None:
    c = compose_on(15)
    first = make_result(c, fail=["checksum"], started=NOW.replace(day=16))
    rerun = make_result(c, started=NOW.replace(day=17))
    view = derive([c, rerun, first], PRODUCT, LATER).composes[0]
    assert view.status == "passed"
    assert len(view.suites["images"].runs) == 2
    # In the other order of time, the failure is the latest.
    again = make_result(c, fail=["checksum"], started=NOW.replace(day=18))
    assert derive([c, first, rerun, again], PRODUCT, LATER).composes[0].status == "failed"


def test_no_image_and_manual_fail() -> None:
    assert status_of(doomed_on(15)) == ("no-image", ["no image: DOOMED"])
    c = compose_on(15)
    status, reasons = status_of(c, make_result(c), verdict(c.compose_id, "fail"))
    assert (status, reasons) == ("failed-manual", ["failed by dusty: known bad"])


@pytest.mark.parametrize(
    ("suite", "expected"), [(None, "passed"), ("images", "passed"), ("other", "failed")]
)
def test_waiver_accepts_one_failed_test(suite: str | None, expected: str) -> None:
    c = compose_on(15)
    waiver = verdict(c.compose_id, "waive", test="format", suite=suite)
    status, reasons = status_of(c, make_result(c, fail=["format"]), waiver)
    assert status == expected
    if expected == "passed":
        assert reasons == ["images: format waived by dusty: known bad"]


def test_arch_slices_are_pending_until_every_image_has_results() -> None:
    two = compose_on(15)
    aarch = two.images[0].model_copy(update={"arch": "aarch64"})
    c = two.model_copy(update={"images": [two.images[0], aarch]})
    x86_only = make_result(c, images=[c.images[0]])
    status, reasons = status_of(c, x86_only)
    assert (status, reasons) == ("pending", ["images: waiting for aarch64 qcow2"])
    arm = make_result(c, images=[aarch], started=NOW + timedelta(minutes=5), run=None)
    arm = arm.model_copy(update={"run": "20150915T120500Z-0000aa"})
    assert status_of(c, x86_only, arm)[0] == "passed"
    # A failure in one slice fails the compose even while another slice is missing.
    assert status_of(c, make_result(c, images=[aarch], fail=["format"]))[0] == "failed"


def test_derive_is_pure_and_ignores_the_future_and_other_products() -> None:
    c = compose_on(15)
    future = compose_on(27)
    other = compose_on(16, product="other-product")
    state = derive([future, c, other], PRODUCT, NOW.replace(day=20))
    assert [v.compose_id for v in state.composes] == [c.compose_id]
    assert derive([c, future], PRODUCT, LATER) == derive([future, c], PRODUCT, LATER)


def test_order_is_by_date_then_respin() -> None:
    a = compose_on(15, compose_id="Fedora-Atomic-22-20150915.1", respin=1)
    b = compose_on(15)
    c = compose_on(14)
    state = derive([a, b, c], PRODUCT, LATER)
    assert [v.compose_id for v in state.composes] == [
        "Fedora-Atomic-22-20150914.0",
        "Fedora-Atomic-22-20150915.0",
        "Fedora-Atomic-22-20150915.1",
    ]
