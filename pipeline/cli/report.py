"""What the tasks print once the library has acted: one line per thing done."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pipeline.cli import console
from pipeline.errors import CloudError

# Types only: `invoke --list` loads neither pydantic's models, the log, botocore (the AWS
# adapter) nor the demo's image writers.
if TYPE_CHECKING:
    from pipeline.adapters.aws.ec2 import WithdrawAction
    from pipeline.core.config import ProductConfig
    from pipeline.core.models.manifests import CloudImagesManifest, ResultManifest
    from pipeline.core.state import State
    from pipeline.core.tracker import SyncReport
    from pipeline.demo.run import DemoResult
    from pipeline.log.stranded import Uncommitted
    from pipeline.log.writer import WriteResult


def report_write(write: WriteResult, paths: Sequence[PurePosixPath], extra: str = "") -> None:
    """One line per manifest: recorded, would record, or already recorded; then the
    manifests an earlier run left uncommitted, committed now (or still not)."""
    details = [d for d in (extra,) if d]
    if write.commit:
        details.append(f"commit {write.commit[:12]}")
    if write.pushed:
        details.append("pushed")
    tail = "".join(f", {d}" for d in details)
    for path in paths:
        if path in write.recovered or path in write.uncommitted:
            continue  # said below
        if write.dry_run:
            verb = "would record" if path in write.written else "already recorded"
        else:
            verb = "recorded" if path in write.written else "already recorded (no change)"
        console.out.print(f"{verb}: manifests/{path}{tail}")
    report_settled(write, tail)


def report_settled(write: WriteResult, tail: str = "") -> None:
    """The manifests that were not committed: committed now, would be, or left so."""
    for path in write.recovered:
        verb = "would commit" if write.dry_run else "committed"
        console.out.print(f"{verb} (left uncommitted by an earlier run): manifests/{path}{tail}")
    for path in write.uncommitted:
        console.out.print(
            f"written, not committed (--no-commit): manifests/{path}; "
            "re-run without --no-commit to commit it"
        )
    if not tail and write.pushed:
        console.out.print("pushed")


def report_uncommitted(found: Uncommitted, repo: Path) -> None:
    """``invoke verify``'s warnings: manifests git has not committed (exit code unchanged)."""
    for path in found.untracked:
        console.err.print(
            f"warning: manifests/{path}: not committed (untracked); re-run the task that "
            f"wrote it, or run: git -C {repo} add manifests/{path} && git -C {repo} commit"
        )
    for path in found.staged:
        console.err.print(
            f"warning: manifests/{path}: added but not committed; re-run the task that "
            f"wrote it, or run: git -C {repo} commit -- manifests/{path}"
        )
    for path in found.temp:
        console.err.print(
            f"warning: manifests/{path}: left by an interrupted write; the next task "
            "that records a manifest of its kind removes it"
        )


def report_sync(report: SyncReport, dry_run: bool) -> None:
    """What the tracker sync did: each action, else the open bug, else nothing to do."""
    for event in report.events:
        prefix = "would " if dry_run else ""
        console.out.print(
            f"tracker: {prefix}{event.action} {event.bug} ({event.url}) for {event.compose_id}"
        )
    if report.open_bug is not None and not report.events:
        console.out.print(
            f"tracker: bug {report.open_bug.id} open ({report.open_bug.url}); nothing new to report"
        )
    elif report.open_bug is None and not report.events:
        console.out.print("tracker: no open bug, nothing to do")


def report_nothing_to_cut(state: State, config: ProductConfig) -> None:
    """Why ``release.cut`` recorded nothing."""
    cycle = state.cycle
    if cycle is None:
        console.out.print(f"nothing to do: the first release day is {config.release.anchor}")
    else:
        console.out.print(
            f"nothing to do: the cycle of {cycle} is decided; next release "
            f"day {state.next_release_day}"
        )


def report_current_release(state: State) -> None:
    """The release the page offers now (after a withdrawal)."""
    current = state.current
    console.out.print(
        "current release now: "
        + (
            f"{current.release_id} ({current.manifest.compose_id})"
            if current
            else "none: no image available"
        )
    )


def report_withdraw(compose_id: str, actions: list[WithdrawAction], dry_run: bool) -> None:
    """Print the withdrawal table.

    Raises:
        CloudError: an AMI was not withdrawn (exit 8); re-running is safe.
    """
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


def report_results(manifests: Sequence[ResultManifest], write: WriteResult) -> None:
    """The results table, then one line per manifest written."""
    console.out.print(console.results_table(manifests))
    for m in manifests:
        if m.counts is not None and m.report is not None:
            c = m.counts
            console.out.print(
                f"{m.suite}: {c.total} test case(s): {c.passed} passed, {c.failed} failed, "
                f"{c.skipped} skipped; {c.recorded} recorded in the manifest; the report: "
                f"{m.report.path} (sha256 {m.report.sha256})"
            )
    report_write(write, [m.relpath() for m in manifests])


def report_discover(manifest: CloudImagesManifest, write: WriteResult | None) -> None:
    """The AMIs found, the regions missing, and whether a new run was recorded."""
    console.out.print(console.clouds_table(manifest))
    for m in manifest.missing:
        console.out.print(f"missing: {m.region}: {m.reason}")
    if write is None:
        console.out.print(
            f"unchanged since run {manifest.run}: manifests/{manifest.relpath()}; nothing recorded"
        )
        return
    report_write(write, [manifest.relpath()])


def report_demo(result: DemoResult, seconds: float) -> None:
    """The demo's totals and where its log, keys and site are."""
    t = result.totals
    console.out.print(console.counts_table(result.report.counts(), len(result.report.failures)))
    console.out.print(
        f"{t.composes} nights: {t.releases} releases, {t.stale_cycles} stale cycles, "
        f"{t.withdrawn} withdrawn; bugs {t.bugs_opened} opened, {t.bugs_closed} closed; "
        f"in {seconds:.0f} s"
    )
    shown = result.current or "no image"
    console.out.print(f"the page offers: {shown}{' (stale)' if result.stale else ''}")
    console.out.print(f"manifest log: {result.repo}  (git log --stat there)")
    console.out.print(f"keys:         {result.keys}  (generated for this run)")
    console.out.print(f"site:         {result.site}")
    if result.ostree:
        console.out.print(f"ostree:       {result.ostree}")
    if result.announcements is not None:
        console.out.print(f"announcements: {result.announcements}  (the mails, as previews)")
