"""The tracker stage on a real log with the local tracker: file, record, dry run."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.core.tracker import LocalTracker
from pipeline.log.writer import WriteOptions
from pipeline.stages.load import load_state
from pipeline.stages.tracking import DryRunTracker, make_tracker, sync_tracker
from pipeline.stages.verdict import record_verdict
from tests.sitekit import History, day


def _sync(h: History, options: WriteOptions) -> list[str]:
    product = h.product
    report = sync_tracker(
        h.log.log,
        product,
        signers=[h.log.signers["release"]],
        options=options,
        now=day(1, 6),
        backend_for=lambda state: make_tracker(product, state, {}),
    )
    return [f"{e.action} {e.bug} {e.compose_id}" for e in report.events]


def test_sync_files_a_bug_once(make_history: Callable[..., History]) -> None:
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    assert _sync(h, WriteOptions()) == [f"opened local1 {cid}"]
    assert h.log.commits()[0] == f"tracker: opened local1 for {cid}"
    assert _sync(h, WriteOptions()) == []


def test_dry_run_sync_files_and_records_nothing(make_history: Callable[..., History]) -> None:
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    before = h.log.commits()
    assert _sync(h, WriteOptions(dry_run=True)) == [f"opened local0 {cid}"]
    assert h.log.commits() == before


def test_make_tracker_is_local_by_default(make_history: Callable[..., History]) -> None:
    h = make_history()
    h.compose(day(1))
    assert h.product.tracker.backend == "local"
    state, _ = load_state(h.log.log, h.product, day(2))
    tracker = make_tracker(h.product, state, {})
    assert isinstance(tracker, LocalTracker)
    dry = DryRunTracker(tracker)
    assert dry.name == "local" and dry.create("t", "s", "d").id == "0"


def test_a_compose_failed_by_hand_after_its_bug_was_opened_keeps_one_event(
    make_history: Callable[..., History],
) -> None:
    """Issue 17: tests fail (local1 opened), then ``compose.fail`` from a machine whose clock
    is behind the runner's, and its sync: no "already recorded with different content"."""
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    h.sync(day(1, 6))
    behind = day(1, 5)  # after the tests (day 1, 04:00), before the bug was opened (06:00)
    record_verdict(
        h.log.log, h.product, cid, action="fail", reason="breaks upgrades", operator="dusty",
        test=None, suite=None, reason_url=None, signers=[h.log.signers["release"]],
        options=WriteOptions(), now=behind,
    )  # fmt: skip
    h.sync(behind)
    h.sync(day(2))
    state, _ = load_state(h.log.log, h.product, day(2))
    assert state.compose(cid).status == "failed-manual"  # type: ignore[union-attr]
    assert [b.bug for b in state.bugs.values()] == ["local1"]
    assert [e.event_id for e in state.bugs["local1"].events] == [f"local1-opened-{cid}"]
    assert [c for c in h.log.commits() if c.startswith("tracker:")] == [
        f"tracker: opened local1 for {cid}"
    ]
