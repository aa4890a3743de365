"""What the tasks print once the library has acted: one line per thing done."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pipeline.cli import console
from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import CloudImagesManifest, ResultManifest
from pipeline.core.state import State
from pipeline.core.tracker import SyncReport
from pipeline.demo.run import DemoResult
from pipeline.errors import CloudError
from pipeline.log.writer import WriteResult

if TYPE_CHECKING:  # importing the AWS adapter loads botocore; only its type is needed
    from pipeline.adapters.aws.ec2 import WithdrawAction


def report_write(write: WriteResult, paths: Sequence[PurePosixPath], extra: str = "") -> None:
    """One line per manifest: recorded, would record, or already recorded."""
    for path in paths:
        if write.dry_run:
            verb = "would record" if path in write.written else "already recorded"
        else:
            verb = "recorded" if path in write.written else "already recorded (no change)"
        details = [d for d in (extra,) if d]
        if write.commit:
            details.append(f"commit {write.commit[:12]}")
        if write.pushed:
            details.append("pushed")
        console.out.print(f"{verb}: manifests/{path}" + "".join(f", {d}" for d in details))


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
    if result.announcements is not None:
        console.out.print(f"announcements: {result.announcements}  (the mails, as previews)")
