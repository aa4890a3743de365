"""Operator verdicts on a real log: fail by hand once, waive only a failed blocking test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline.core.models.manifests import VerdictAction
from pipeline.errors import InputError
from pipeline.log.writer import WriteOptions
from pipeline.stages.load import load_state
from pipeline.stages.verdict import record_verdict
from tests.sitekit import History, day


def _verdict(
    h: History,
    compose_id: str,
    action: VerdictAction,
    *,
    test: str | None = None,
    reason: str = "broken",
) -> Any:
    return record_verdict(
        h.log.log,
        h.product,
        compose_id,
        action=action,
        reason=reason,
        operator="dusty",
        test=test,
        suite=None,
        reason_url=None,
        signers=[h.log.signers["release"]],
        options=WriteOptions(),
        now=day(2),
    )


def test_fail_by_hand_once(make_history: Callable[..., History]) -> None:
    h = make_history()
    cid = h.compose(day(1)).compose_id
    verdict, write = _verdict(h, cid, "fail", reason="  broken  ")
    assert verdict.action == "fail" and verdict.reason == "broken" and verdict.number == 1
    assert write.commit is not None
    state, _ = load_state(h.log.log, h.product, day(3))
    view = state.compose(cid)
    assert view is not None and view.status == "failed-manual"
    assert _verdict(h, cid, "fail") == (None, None)


def test_waive_a_failed_test(make_history: Callable[..., History]) -> None:
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    verdict, _ = _verdict(h, cid, "waive", test="checksum")
    assert (verdict.action, verdict.test) == ("waive", "checksum")


@pytest.mark.parametrize(
    ("action", "test", "reason", "message"),
    [
        ("waive", "boots", "broken", "--test boots: no failed blocking test"),
        ("fail", None, " ", "--reason: must not be empty"),
    ],
)
def test_verdict_rejects(
    make_history: Callable[..., History],
    action: VerdictAction,
    test: str | None,
    reason: str,
    message: str,
) -> None:
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    with pytest.raises(InputError, match=message):
        _verdict(h, cid, action, test=test, reason=reason)


def test_verdict_on_unknown_compose(make_history: Callable[..., History]) -> None:
    h = make_history()
    h.compose(day(1))
    with pytest.raises(InputError, match="--compose-id Nope-1: not recorded"):
        _verdict(h, "Nope-1", "fail")
