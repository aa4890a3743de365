"""The release engine: cadence, stale cycles, retry/skip, withdrawals, base switches, freshness."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.release import candidates, decide, revocation
from pipeline.core.state import State, compose_order, cycle_day, derive, next_release_day, summary
from tests.core.history import ANCHOR, History, product


def test_cycle_days() -> None:
    policy = product().release
    assert cycle_day(policy, datetime(2015, 9, 14, 23, tzinfo=UTC)) is None
    assert cycle_day(policy, datetime(2015, 9, 15, 0, tzinfo=UTC)) == date(2015, 9, 15)
    assert cycle_day(policy, datetime(2015, 9, 28, 23, tzinfo=UTC)) == date(2015, 9, 15)
    assert cycle_day(policy, datetime(2015, 9, 29, tzinfo=UTC)) == date(2015, 9, 29)
    assert next_release_day(policy, datetime(2015, 9, 1, tzinfo=UTC)) == ANCHOR
    assert next_release_day(policy, datetime(2015, 9, 20, tzinfo=UTC)) == date(2015, 9, 29)


def test_release_day_picks_the_newest_passing_compose_once() -> None:
    h = History()
    h.compose(10)
    newest_pass = h.compose(12)
    h.compose(13, "fail")
    h.compose(14, "pending")
    assert h.cut(h.at(13)) is None  # before the first release day
    decision = h.cut(h.at(14))
    assert decision is not None
    assert (decision.release_id, decision.decision, decision.compose_id) == (
        "2015-09-15",
        "release",
        newest_pass.compose_id,
    )
    assert [(c.verdict, c.status) for c in decision.considered] == [
        ("rejected", "pending"),
        ("rejected", "failed"),
        ("chosen", "passed"),
        ("older", "passed"),
    ]
    assert decision.considered[1].reason.startswith("images: blocking test format failed")
    assert h.cut(h.at(14, 18)) is None  # cutting twice equals cutting once
    assert h.state(h.at(15)).current.manifest.compose_id == newest_pass.compose_id  # type: ignore[union-attr]


def test_stale_cycle_keeps_previous_links_bug_then_retry_releases_late() -> None:
    h = History()
    first = h.compose(13)
    h.cut(h.at(14))
    h.compose(20, "fail")
    h.bug("Fedora-Atomic-22-20150921.0", h.at(20, 12))
    h.compose(27, "no-image")
    stale = h.cut(h.at(28))
    assert stale is not None and stale.decision == "stale"
    assert stale.previous == "2015-09-15"
    assert stale.open_bug is not None and stale.open_bug.url == "atomic-host/bugs/local1.html"
    assert "keeping 2015-09-15 (" + first.compose_id + ")" in stale.explanation
    state = h.state(h.at(29))
    assert state.freshness.stale
    assert (
        state.freshness.reason == "the cycle of 2015-09-29 produced no image that passed its tests"
    )
    assert state.current.manifest.compose_id == first.compose_id  # type: ignore[union-attr]
    assert h.cut(h.at(30)) is None  # retry: nothing new yet
    late_compose = h.compose(31)
    late = h.cut(h.at(31, 12))
    assert late is not None
    assert (late.release_id, late.sequence, late.compose_id) == (
        "2015-09-29.2",
        2,
        late_compose.compose_id,
    )
    assert "(late, after a stale decision)" in late.explanation
    assert not h.state(h.at(32)).freshness.stale
    assert h.cut(h.at(33)) is None


def test_skip_policy_waits_for_the_next_cycle() -> None:
    h = History(config=product(policy="skip"))
    h.compose(13, "fail")
    assert h.cut(h.at(14)).decision == "stale"  # type: ignore[union-attr]
    h.compose(15)
    assert h.cut(h.at(16)) is None
    assert h.cut(h.at(28)).decision == "release"  # type: ignore[union-attr]


def test_wrong_base_is_rejected_until_switched() -> None:
    h = History()
    h.compose(12, version="22")
    h.compose(13, version="23")
    decision = h.cut(h.at(14))
    assert decision is not None and decision.compose_id == "Fedora-Atomic-22-20150913.0"
    assert decision.considered[0].reason == "wrong base: Fedora 23, eligible 22"
    # The base switch is a reviewed change of product.toml: 23 Beta from now on.
    h.config = product(version="23", prerelease="Beta")
    h.compose(20, version="23")
    switched = h.cut(h.at(28))
    assert switched is not None and switched.compose_id == "Fedora-Atomic-23-20150921.0"
    assert switched.base.label() == "Fedora 23 Beta"
    assert summary(h.state(h.at(29)))["current"]["base"] == "Fedora 23 Beta"  # type: ignore[index]


def test_revocation_falls_back_and_never_rereleases() -> None:
    h = History()
    a = h.compose(13)
    h.cut(h.at(14))
    b = h.compose(27)
    h.cut(h.at(28))
    assert h.state(h.at(29)).current.manifest.compose_id == b.compose_id  # type: ignore[union-attr]
    assert h.revoke("2015-09-29", h.at(29)) is not None
    assert h.revoke("2015-09-29", h.at(29)) is None  # twice: a no-op
    state = h.state(h.at(30))
    assert state.current.manifest.compose_id == a.compose_id  # type: ignore[union-attr]
    [withdrawn] = state.withdrawn
    assert withdrawn.release_id == "2015-09-29" and withdrawn.fallen == "withdrawn by op: bad image"
    late = h.cut(h.at(30))  # retry: the cycle has no standing release, but b may not return
    assert late is None
    chosen, considered = candidates(h.state(h.at(30)))
    assert chosen is None
    assert [(x.compose_id, x.reason) for x in considered] == [
        (b.compose_id, "withdrawn in release 2015-09-29")
    ]
    c = h.compose(31)
    again = h.cut(h.at(31, 12))
    assert (
        again is not None
        and again.compose_id == c.compose_id
        and again.release_id == "2015-09-29.2"
    )
    # Released after a withdrawal: said so, never called late after a stale decision.
    assert "(after the withdrawal of 2015-09-29)" in again.explanation
    assert "stale" not in again.explanation
    with pytest.raises(LookupError, match="no release 2015-01-01"):
        revocation(h.state(h.at(32)), "2015-01-01", "r", None, "op", h.at(32))


def test_withdrawing_the_only_release_means_no_image() -> None:
    h = History()
    h.compose(13)
    h.cut(h.at(14))
    h.revoke("2015-09-15", h.at(15))
    state = h.state(h.at(16))
    assert state.current is None
    assert state.freshness.reason == "no image has been released yet"


def test_a_stale_decision_cannot_be_revoked() -> None:
    h = History()
    h.compose(13, "fail")
    h.cut(h.at(14))
    with pytest.raises(ValueError, match="stale decision"):
        revocation(h.state(h.at(15)), "2015-09-15", "r", None, "op", h.at(15))


def test_operator_failing_a_released_compose_takes_it_down() -> None:
    h = History()
    a = h.compose(13)
    h.cut(h.at(14))
    h.verdict(a.compose_id, "fail", h.at(15))
    state = h.state(h.at(16))
    assert state.current is None
    assert state.withdrawn[0].fallen == f"compose {a.compose_id} is failed-manual since"


def test_stale_by_time_alone() -> None:
    h = History()
    h.compose(13)
    h.cut(h.at(14))
    assert not h.state(h.at(14 + 16)).freshness.stale  # within cadence + grace
    state = h.state(h.at(14 + 17))
    assert state.freshness.stale
    assert state.freshness.reason == (
        "no release decision since the cycle of 2015-09-15: is the pipeline running?"
    )


def test_before_the_first_release_day_nothing_is_due() -> None:
    h = History()
    h.compose(3)
    state = h.state(h.at(5))
    assert not state.freshness.stale
    assert state.freshness.reason == "the first release day is 2015-09-15"
    assert summary(state)["stale_reason"] is None and summary(state)["current"] is None


def test_summary_shape() -> None:
    h = History()
    h.compose(13)
    h.cut(h.at(14))
    h.compose(20, "pending")
    doc = summary(h.state(h.at(21)))
    assert doc == {
        "display_name": "Fedora Atomic Host",
        "current": {
            "release_id": "2015-09-15",
            "compose_id": "Fedora-Atomic-22-20150914.0",
            "released": "2015-09-15T06:00:00Z",
            "base": "Fedora 22",
        },
        "stale": False,
        "stale_reason": None,
        "open_bug": None,
        "withdrawn": [],
        "latest_compose": {"id": "Fedora-Atomic-22-20150921.0", "status": "pending"},
        "pending": ["Fedora-Atomic-22-20150921.0"],
        "next_release_day": "2015-09-29",
    }


# --- properties ---------------------------------------------------------------------------

KINDS = ["pass", "pass", "fail", "pending", "no-image", "manual", "waived"]
DAY = st.tuples(
    st.lists(st.sampled_from(KINDS), max_size=2),  # composes that night
    st.sampled_from([0, 1, 1, 1, 2]),  # release.cut runs that day (0 = missed)
    st.booleans(),  # an operator withdraws the current release
    st.sampled_from([None, None, None, None, None, None, "23", "24"]),  # a base switch
    st.booleans(),  # an operator fails a released compose
)


def reference_pick(state: State) -> str | None:
    """The newest eligible compose, computed independently of pipeline.core.release."""
    current = state.current
    floor = None
    if current is not None:
        view = state.compose(current.manifest.compose_id or "")
        floor = compose_order(view.compose) if view else None
    revoked = {r.manifest.compose_id for r in state.releases if r.revocation is not None}
    eligible = [
        v.compose_id
        for v in state.composes
        if v.status == "passed"
        and v.compose.release is not None
        and v.compose.release.version in state.product.base.eligible_versions()
        and v.compose_id not in revoked
        and (floor is None or compose_order(v.compose) > floor)
    ]
    return eligible[-1] if eligible else None


@settings(max_examples=60, deadline=None)
@given(st.lists(DAY, min_size=10, max_size=60), st.randoms(use_true_random=False))
def test_property_release_engine(days: list[Any], rnd: random.Random) -> None:
    h = History()
    version = "22"
    for day, (nightly, cuts, withdraw, switch, fail_released) in enumerate(days):
        if switch:
            version = switch
            if rnd.random() < 0.5:
                h.config = product(version=switch, prerelease=rnd.choice([None, "Beta"]))
        for kind in nightly:
            h.compose(day, kind, version)
        if withdraw or fail_released:
            current = h.state(h.at(day, 4)).current
            if current is not None and withdraw:
                h.revoke(current.release_id, h.at(day, 4))
            elif current is not None:
                h.verdict(current.manifest.compose_id or "", "fail", h.at(day, 4))
        for n in range(cuts):
            when = h.at(day, 6 + n)
            before = h.state(when)
            expected = reference_pick(before)
            decision = h.cut(when)
            if decision is None:
                continue
            # A release's compose is the newest eligible one at decision time.
            assert decision.compose_id == expected
            # A stale decision names the previous release and the open bug, when there is one.
            previous = before.current
            assert decision.previous == (previous.release_id if previous else None)
            if before.open_bugs:
                assert decision.open_bug is not None
            # Cutting twice equals cutting once.
            assert decide(h.state(when), when) is None
        state = h.state(h.at(day, 23))
        current = state.current
        if current is not None:  # never withdrawn, never failed
            assert current.revocation is None
            view = state.compose(current.manifest.compose_id or "")
            assert view is not None and not view.failing
    # Any order of the manifests gives the same state.
    when = h.at(len(days), 12)
    shuffled = list(h.log)
    rnd.shuffle(shuffled)
    assert derive(shuffled, h.config, when) == derive(h.log, h.config, when)
    assert summary(derive(shuffled, h.config, when)) == summary(h.state(when))
