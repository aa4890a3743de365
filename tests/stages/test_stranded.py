"""Each task that finds its own verified manifest uncommitted commits it (issue 17, item 5):
release.cut with nothing to decide, compose.fail of a compose failed already, tracker.sync
with nothing new, and test.import recording its next run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pipeline.core.tracker import LocalTracker
from pipeline.log.signing import load_signer
from pipeline.log.writer import WriteOptions, WriteResult
from pipeline.stages.isolation import redactor_for
from pipeline.stages.release import cut_release
from pipeline.stages.results import import_results
from pipeline.stages.testing import LogStore
from pipeline.stages.tracking import sync_tracker
from pipeline.stages.verdict import record_verdict
from tests.conftest import NOW, ComposeTree, Log
from tests.sitekit import History, day
from tests.stages.test_testing import JUNIT, recorded

LEAVE = WriteOptions(commit=False)


def clean(log: Log) -> bool:
    return log.git("status", "--porcelain", "--untracked-files=all") == ""


def test_release_cut_commits_a_decision_left_uncommitted(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    h.compose(day(-1))
    signers = [h.log.signers["release"]]
    manifest, first, _ = cut_release(
        h.log.log, h.product, day(0, 12), signers=signers, options=LEAVE
    )
    assert manifest is not None and first is not None and first.commit is None
    assert not clean(h.log)
    head = h.log.git("rev-parse", "HEAD")
    plan = cut_release(
        h.log.log, h.product, day(0, 13), signers=signers, options=WriteOptions(dry_run=True)
    )
    assert plan[0] is None and plan[1] is not None and plan[1].recovered == [manifest.relpath()]
    assert h.log.git("rev-parse", "HEAD") == head
    again, write, _ = cut_release(
        h.log.log, h.product, day(0, 13), signers=signers, options=WriteOptions()
    )
    assert again is None  # "nothing to do": the cycle is decided ...
    assert write is not None and write.recovered == [manifest.relpath()]  # ... and committed
    assert clean(h.log)
    assert h.log.commits()[0] == "log: commit manifests left uncommitted"
    assert cut_release(h.log.log, h.product, day(1), signers=signers, options=WriteOptions())[
        :2
    ] == (None, None)


def _fail(h: History, cid: str, options: WriteOptions) -> tuple[object, WriteResult | None]:
    return record_verdict(
        h.log.log, h.product, cid, action="fail", reason="breaks upgrades", operator="dusty",
        test=None, suite=None, reason_url=None, signers=[h.log.signers["release"]],
        options=options, now=day(2),
    )  # fmt: skip


def test_compose_fail_again_commits_the_verdict_left_uncommitted(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    cid = h.compose(day(1)).compose_id
    verdict, _ = _fail(h, cid, LEAVE)
    assert verdict is not None and not clean(h.log)
    again, write = _fail(h, cid, WriteOptions())
    assert again is None  # failed already (no change) ...
    assert write is not None and write.recovered == [verdict.relpath()]  # type: ignore[attr-defined]
    assert clean(h.log)
    assert _fail(h, cid, WriteOptions()) == (None, None)


def test_tracker_sync_commits_events_left_uncommitted(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    cid = h.compose(day(1), fail=["checksum"]).compose_id
    settled: list[WriteResult] = []

    def sync(options: WriteOptions) -> list[str]:
        report = sync_tracker(
            h.log.log, h.product, signers=[h.log.signers["release"]], options=options,
            now=day(1, 6), backend_for=LocalTracker, on_settled=settled.append,
        )  # fmt: skip
        return [e.event_id for e in report.events]

    assert sync(LEAVE) == [f"local1-opened-{cid}"] and not clean(h.log)
    assert sync(WriteOptions()) == []  # nothing new on the tracker ...
    [write] = settled
    assert [p.name for p in write.recovered] == [f"local1-opened-{cid}.json"]  # ... committed
    assert clean(h.log)


def test_test_import_commits_an_earlier_run_left_uncommitted(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    product = recorded(log, make_compose_tree())
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)

    def imported(options: WriteOptions, minute: int) -> tuple[PurePosixPath, WriteResult]:
        outcome = import_results(
            log.log, product, "Fedora-28-20180425.0", "openqa", report, advisory=[],
            arches=[], logs=LogStore(tmp_path / "logs", redactor_for(log.env)),
            signers=[load_signer("test", log.env, log.log.load_trust())], options=options,
            clock=lambda: NOW.replace(minute=minute), runner="openqa.example",
        )  # fmt: skip
        return outcome.manifests[0].relpath(), outcome.write

    first, _ = imported(LEAVE, 1)  # a run killed before its commit (or --no-commit)
    second, write = imported(WriteOptions(), 2)
    assert first != second
    assert write.recovered == [first] and write.written == [second]
    assert clean(log)
    shown = log.git("show", "--format=", "--name-only", "HEAD").split()
    manifests = [n for n in shown if n.startswith("manifests/atomic-host/")]
    assert manifests == sorted(f"manifests/{p}" for p in (first, second))
    # the index and the checkpoints of both runs go in the same commit
    assert "manifests/log.idx" in shown and any(
        n.startswith("manifests/checkpoints/") for n in shown
    )
