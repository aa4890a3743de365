"""The tracker lifecycle: one open bug per product, never a duplicate comment, whatever fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import (
    ComposeManifest,
    TrackerBackendName,
    TrackerEventManifest,
    VerdictManifest,
)
from pipeline.core.state import derive
from pipeline.core.tracker import Bug, LocalTracker, marker, sync, sync_state
from pipeline.errors import TrackerError
from tests.conftest import NOW, compose_on, doomed_on, make_result, product_config

PRODUCT = product_config()
TAG = PRODUCT.tracker.tag


@dataclass
class FakeTracker:
    """An in-memory tracker with injected faults: call number ``k`` fails before acting
    ("down") or after acting with its answer lost ("lost")."""

    name: TrackerBackendName = "bugzilla"
    bugs: dict[str, Bug] = field(default_factory=dict)
    calls: int = 0
    faults: dict[int, str] = field(default_factory=dict)

    def _call(self) -> str | None:
        self.calls += 1
        fault = self.faults.pop(self.calls, None)
        if fault == "down":
            raise TrackerError("bugzilla: 503")
        return fault

    def _lost(self, fault: str | None) -> None:
        if fault == "lost":
            raise TrackerError("bugzilla: read timed out")

    def find_open(self, tag: str) -> list[Bug]:
        fault = self._call()
        self._lost(fault)
        return [b for b in self.bugs.values() if b.is_open]

    def get(self, bug_id: str) -> Bug:
        fault = self._call()
        self._lost(fault)
        return self.bugs[bug_id]

    def create(self, tag: str, summary: str, description: str) -> Bug:
        fault = self._call()
        bug_id = str(100 + len(self.bugs))
        bug = Bug(
            bug_id,
            f"https://bugzilla.invalid/show_bug.cgi?id={bug_id}",
            True,
            summary,
            (description,),
        )
        self.bugs[bug_id] = bug
        self._lost(fault)
        return bug

    def comment(self, bug_id: str, text: str) -> None:
        fault = self._call()
        b = self.bugs[bug_id]
        self.bugs[bug_id] = Bug(b.id, b.url, b.is_open, b.summary, (*b.comments, text))
        self._lost(fault)

    def close(self, bug_id: str, comment: str) -> None:
        fault = self._call()
        b = self.bugs[bug_id]
        self.bugs[bug_id] = Bug(b.id, b.url, False, b.summary, (*b.comments, comment))
        self._lost(fault)


@dataclass
class Simulation:
    """A log (a list of manifests) and a tracker, advanced compose by compose.

    With ``local``, the tracker is the log itself (:class:`LocalTracker`, as the tasks build
    it for each sync). Recording works as the log writer does: the same identity again is a
    no-op when only ``created`` differs, and a collision (the task's exit 5) otherwise.
    """

    tracker: FakeTracker = field(default_factory=FakeTracker)
    log: list[Manifest] = field(default_factory=list)
    day: int = 0
    local: bool = False

    @property
    def now(self):  # type: ignore[no-untyped-def]
        return NOW + timedelta(days=self.day, hours=1)

    def compose(self, kind: str) -> ComposeManifest:
        self.day += 1
        when = NOW + timedelta(days=self.day)
        cid = f"Fedora-Atomic-22-{when:%Y%m%d}.0"
        if kind == "no-image":
            c = doomed_on(1).model_copy(
                update={"compose_id": cid, "date": f"{when:%Y%m%d}", "created": when}
            )
        else:
            c = compose_on(1).model_copy(
                update={"compose_id": cid, "date": f"{when:%Y%m%d}", "created": when}
            )
        self.log.append(c)
        if kind in ("pass", "fail"):
            self.log.append(make_result(c, fail=["format"] if kind == "fail" else [], started=when))
        if kind == "manual":
            self.log.append(make_result(c, started=when))
            self.log.append(
                VerdictManifest(
                    product="atomic-host",
                    created=when,
                    compose_id=cid,
                    number=1,
                    action="fail",
                    reason="bad",
                    operator="op",
                )
            )
        return c

    def record(self, event: TrackerEventManifest) -> None:
        same = [e for e in self.events() if e.event_id == event.event_id]
        if same:
            old, new = same[0].signed_dict(), event.signed_dict()
            old.pop("created")
            new.pop("created")
            assert old == new, f"trackers/{event.event_id}.json: already recorded differently"
            return
        self.log.append(event)

    def sync(self, faults: dict[int, str] | None = None, behind: int = 0) -> bool:
        """One ``tracker.sync`` whose clock is ``behind`` minutes behind the log's (another
        runner's clock: the log holds manifests stamped later than its "now")."""
        now = self.now - timedelta(minutes=behind)
        state = sync_state(self.log, PRODUCT, now)
        if self.local:
            sync(state, LocalTracker(state), self.record, now)
            return True
        self.tracker.calls = 0
        self.tracker.faults = dict(faults or {})
        try:
            sync(state, self.tracker, self.record, now)
        except TrackerError:
            return False
        return True

    def bugs(self) -> list[Bug]:
        if self.local:
            return list(LocalTracker(sync_state(self.log, PRODUCT, self.now)).bugs.values())
        return list(self.tracker.bugs.values())

    def fail_newest_by_hand(self, behind: int = 0) -> None:
        """``compose.fail`` on the newest compose with images (a no-op when failed already),
        by an operator whose clock is ``behind`` minutes behind the log's."""
        now = self.now - timedelta(minutes=behind)
        state = derive(self.log, PRODUCT, now)
        views = [c for c in state.composes if c.compose.outcome == "images"]
        if not views or views[-1].status == "failed-manual":
            return
        view = views[-1]
        self.log.append(
            VerdictManifest(
                product="atomic-host",
                created=now,
                compose_id=view.compose_id,
                number=len(view.verdicts) + 1,
                action="fail",
                reason="breaks upgrades",
                operator="op",
            )
        )

    def events(self) -> list[TrackerEventManifest]:
        return [m for m in self.log if isinstance(m, TrackerEventManifest)]

    def check_invariants(self) -> None:
        open_bugs = [b for b in self.bugs() if b.is_open]
        assert len(open_bugs) <= 1, "more than one open bug"
        for bug in self.bugs():
            markers = [
                line
                for c in bug.comments
                for line in c.splitlines()
                if line.startswith("[fortnight:")
            ]
            assert len(markers) == len(set(markers)), f"duplicate comment on bug {bug.id}"
        ids = [e.event_id for e in self.events()]
        assert len(ids) == len(set(ids))

    def check_settled(self) -> None:
        state = derive(self.log, PRODUCT, self.now)
        open_bugs = [b for b in self.bugs() if b.is_open]
        if not state.decided:
            return
        newest = state.decided[-1]
        if newest.failing:
            assert len(open_bugs) == 1
            assert any(marker("atomic-host", newest.compose_id) in c for c in open_bugs[0].comments)
        else:
            assert open_bugs == []
        assert sorted(b.bug_id for b in state.open_bugs) == sorted(b.id for b in open_bugs)


def test_lifecycle_open_comment_close_reopen() -> None:
    sim = Simulation()
    sim.compose("pass")
    assert sim.sync() and sim.tracker.bugs == {}
    f1 = sim.compose("fail")
    assert sim.sync()
    [bug] = sim.tracker.bugs.values()
    assert bug.is_open and marker("atomic-host", f1.compose_id) in bug.comments[0]
    assert bug.summary == f"Fedora Atomic Host: compose {f1.compose_id} failed"
    assert "blocking test format failed" in bug.comments[0]
    f2 = sim.compose("no-image")
    assert sim.sync()
    assert len(sim.tracker.bugs[bug.id].comments) == 2
    assert sim.sync()  # nothing new: no duplicate
    assert len(sim.tracker.bugs[bug.id].comments) == 2
    p3 = sim.compose("pass")
    assert sim.sync()
    closed = sim.tracker.bugs[bug.id]
    assert not closed.is_open and p3.compose_id in closed.comments[-1]
    assert [(e.action, e.compose_id) for e in sim.events()] == [
        ("opened", f1.compose_id),
        ("commented", f2.compose_id),
        ("closed", p3.compose_id),
    ]
    assert {e.url for e in sim.events()} == {bug.url}
    sim.compose("manual")
    assert sim.sync()
    assert len([b for b in sim.tracker.bugs.values() if b.is_open]) == 1
    assert len(sim.tracker.bugs) == 2
    sim.check_invariants()
    sim.check_settled()


def test_a_waived_failure_closes_the_bug_it_was_reported_on() -> None:
    sim = Simulation()
    failed = sim.compose("fail")
    assert sim.sync()
    sim.log.append(
        VerdictManifest(
            product="atomic-host",
            created=sim.now,
            compose_id=failed.compose_id,
            number=1,
            action="waive",
            test="format",
            reason="false negative",
            operator="op",
        )
    )
    sim.day += 1
    assert sim.sync()
    [bug] = sim.tracker.bugs.values()
    assert not bug.is_open
    assert [e.action for e in sim.events()] == ["opened", "closed"]
    sim.check_settled()


def test_pending_compose_is_not_judged() -> None:
    sim = Simulation()
    sim.compose("fail")
    sim.compose("pending")
    assert sim.sync()
    assert len(sim.tracker.bugs) == 1  # the newest *decided* compose failed


def test_lost_create_response_is_adopted_not_repeated() -> None:
    sim = Simulation()
    sim.compose("fail")
    assert not sim.sync({2: "lost"})  # call 1 find_open, call 2 create (done, answer lost)
    assert len(sim.tracker.bugs) == 1 and sim.events() == []
    assert sim.sync()
    assert len(sim.tracker.bugs) == 1
    assert [e.action for e in sim.events()] == ["opened"]


def test_lost_comment_and_close_are_recorded_not_repeated() -> None:
    sim = Simulation()
    sim.compose("fail")
    assert sim.sync()
    sim.compose("fail")
    assert not sim.sync({2: "lost"})  # find_open, comment (lost)
    assert sim.sync()
    [bug] = sim.tracker.bugs.values()
    assert len(bug.comments) == 2
    sim.compose("pass")
    assert not sim.sync({2: "lost"})  # find_open, close (lost)
    assert sim.sync()  # the log learns the bug is closed
    assert [e.action for e in sim.events()] == ["opened", "commented", "closed"]
    sim.check_settled()


def test_a_bug_closed_by_hand_is_noticed_and_a_new_failure_reopens() -> None:
    sim = Simulation()
    sim.compose("fail")
    assert sim.sync()
    [bug] = sim.tracker.bugs.values()
    sim.tracker.bugs[bug.id] = Bug(bug.id, bug.url, False, bug.summary, bug.comments)
    sim.compose("fail")
    assert sim.sync()
    assert len([b for b in sim.tracker.bugs.values() if b.is_open]) == 1
    assert len(sim.tracker.bugs) == 2
    assert [e.action for e in sim.events()] == ["opened", "closed", "opened"]
    sim.check_settled()


def test_tracker_down_then_back_files_once_and_reports_every_compose() -> None:
    sim = Simulation()
    first = sim.compose("fail")
    assert not sim.sync({1: "down"})
    second = sim.compose("fail")
    assert sim.sync()
    [bug] = sim.tracker.bugs.values()
    assert marker("atomic-host", first.compose_id) in bug.comments[0]
    assert marker("atomic-host", second.compose_id) in bug.comments[1]


def test_local_tracker_events_are_the_bugs() -> None:
    log: list[Manifest] = [compose_on(15)]
    log.append(make_result(log[0], fail=["checksum"]))  # type: ignore[arg-type]
    state = derive(log, PRODUCT, NOW.replace(day=20))
    report = sync(state, LocalTracker(state), log.append, NOW.replace(day=20))
    [event] = report.events
    assert (event.bug, event.backend, event.url) == (
        "local1",
        "local",
        "atomic-host/bugs/local1.html",
    )
    state = derive(log, PRODUCT, NOW.replace(day=21))
    assert [b.bug for b in state.open_bugs] == ["local1"]
    assert sync(state, LocalTracker(state), log.append, NOW.replace(day=21)).events == []


STEP = st.one_of(
    st.just(("close-by-hand", None)),
    st.just(("waive-newest", None)),
    st.tuples(st.just("fail-newest-by-hand"), st.sampled_from([0, 0, 30])),
    st.tuples(
        st.just("compose"), st.sampled_from(["pass", "fail", "no-image", "manual", "pending"])
    ),
    st.tuples(
        st.just("sync"),
        st.tuples(
            st.dictionaries(st.integers(1, 6), st.sampled_from(["down", "lost"]), max_size=2),
            st.sampled_from([0, 0, 30]),
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=30), st.booleans())
def test_property_one_open_bug_and_no_duplicate_comment(
    steps: list[tuple[str, object]], local: bool
) -> None:
    """Any sequence of composes, verdicts, hand-closed bugs, tracker faults and syncs (some
    with a clock behind the log's), on Bugzilla or the local tracker: at most one open bug,
    no comment twice, and never two different events under one identity."""
    sim = Simulation(local=local)
    for kind, arg in steps:
        if kind == "compose":
            sim.compose(str(arg))
        elif kind == "waive-newest":  # an operator waives the newest compose's failure
            newest = [m for m in sim.log if isinstance(m, ComposeManifest)]
            if newest:
                sim.log.append(
                    VerdictManifest(
                        product="atomic-host",
                        created=sim.now,
                        compose_id=newest[-1].compose_id,
                        number=1
                        + sum(
                            1
                            for m in sim.log
                            if isinstance(m, VerdictManifest)
                            and m.compose_id == newest[-1].compose_id
                        ),
                        action="waive",
                        test="format",
                        reason="false negative",
                        operator="op",
                    )
                )
        elif kind == "fail-newest-by-hand":  # compose.fail, e.g. after its tests failed
            sim.fail_newest_by_hand(int(arg))  # type: ignore[call-overload]
        elif kind == "close-by-hand":  # a human closes the open bug on the tracker
            for b in list(sim.tracker.bugs.values()):
                sim.tracker.bugs[b.id] = Bug(b.id, b.url, False, b.summary, b.comments)
        else:
            faults, behind = cast(tuple[dict[int, str], int], arg)
            sim.sync(faults, behind)
        sim.check_invariants()
    assert sim.sync()  # the tracker is back: the next sync finishes the job
    sim.check_invariants()
    sim.check_settled()
    assert sim.sync()
    assert sim.tracker.calls <= 2  # settled: nothing left to do but look


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("behind", [0, 30])
def test_failed_then_failed_by_hand_keeps_one_bug(local: bool, behind: int) -> None:
    """Issue 17: a compose fails its tests (its bug is opened), then an operator fails it by
    hand (``compose.fail``, which syncs again), also from a machine whose clock is behind the
    runner's that opened the bug: one bug, one "opened" event, no collision."""
    sim = Simulation(local=local)
    failed = sim.compose("fail")
    assert sim.sync()
    sim.fail_newest_by_hand(behind)
    assert sim.sync(behind=behind)
    assert sim.sync()
    assert derive(sim.log, PRODUCT, sim.now).compose(failed.compose_id).status == "failed-manual"  # type: ignore[union-attr]
    [opened] = sim.events()
    assert (opened.action, opened.compose_id, opened.compose_status) == (
        "opened",
        failed.compose_id,
        "failed",
    )
    [bug] = sim.bugs()
    assert bug.is_open
    sim.check_invariants()
    sim.check_settled()


def test_bug_closed_by_hand_then_older_compose_failed_by_hand_reports_the_newest() -> None:
    """Found by the property test: a pass, then a compose with no image (its bug is opened),
    the bug closed by hand, then the passed compose failed by hand (``compose.fail``). No
    compose passes any more; the sync files a bug for the compose failed by hand and the
    open bug must also carry the newest failure, not leave it on the bug closed by hand."""
    sim = Simulation()
    passed = sim.compose("pass")
    doomed = sim.compose("no-image")
    assert sim.sync()
    for b in list(sim.tracker.bugs.values()):
        sim.tracker.bugs[b.id] = Bug(b.id, b.url, False, b.summary, b.comments)
    sim.fail_newest_by_hand()
    assert sim.sync()
    [closed, open_bug] = sim.tracker.bugs.values()
    assert not closed.is_open and open_bug.is_open
    assert marker("atomic-host", passed.compose_id) in open_bug.comments[0]
    assert marker("atomic-host", doomed.compose_id) in open_bug.comments[1]
    sim.check_invariants()
    sim.check_settled()
    events = sim.events()
    assert sim.sync()  # settled: nothing more is filed or recorded
    assert sim.events() == events and len(sim.tracker.bugs) == 2


@pytest.mark.parametrize("bad", ["bz", "local", "gh12"])
def test_bug_refs_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="bug"):
        TrackerEventManifest(
            product="atomic-host",
            created=NOW,
            event_id=f"{bad}-opened-x",
            backend="local",
            bug=bad,
            bug_id="1",
            url="u",
            action="opened",
            compose_id="Fedora-Atomic-22-20150915.0",
            compose_status="failed",
            comment="c",
        )
