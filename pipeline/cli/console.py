"""Terminal output for the task layer: progress bars and summary tables (rich)."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from pipeline.core.units import human_size

# Types only: `invoke --list` loads neither pydantic's models nor botocore (the AWS adapter);
# rich's progress display loads when a task shows one (most print a table and exit).
if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from pipeline.adapters.aws.ec2 import WithdrawAction
    from pipeline.core.config import ProductConfig
    from pipeline.core.models.manifests import (
        CloudImagesManifest,
        ComposeManifest,
        ReleaseManifest,
        ResultManifest,
    )
    from pipeline.core.state import State
    from pipeline.log.trust import RootChain

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _progress(*columns: ProgressColumn) -> Iterator[Progress]:
    """A transient progress display on stderr; silent when stderr is not a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn  # noqa: PLC0415

    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        *columns,
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        yield progress


def byte_progress() -> contextlib.AbstractContextManager[Progress]:
    """A progress display for streaming bytes; silent when stderr is not a terminal."""
    from rich.progress import (  # noqa: PLC0415
        DownloadColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return _progress(DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())


def day_progress() -> contextlib.AbstractContextManager[Progress]:
    """A progress display for day-by-day work; silent when stderr is not a terminal."""
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn  # noqa: PLC0415

    return _progress(MofNCompleteColumn(), TimeElapsedColumn())


def compose_table(manifest: ComposeManifest) -> Table:
    """The images of a compose manifest, a row each."""
    table = Table(title=f"{manifest.compose_id} ({manifest.outcome})", title_justify="left")
    for col in ("arch", "type", "format", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for img in sorted(manifest.images, key=lambda i: (i.arch, i.type)):
        table.add_row(
            img.arch, img.type, img.format, human_size(img.size), img.checksums.sha256[:16] + "…"
        )
    return table


def counts_table(counts: Counter[str], failures: int) -> Table:
    """Verified manifests per kind, and the number rejected."""
    table = Table(title="manifest log", title_justify="left")
    table.add_column("kind")
    table.add_column("verified", justify="right")
    for kind in sorted(counts):
        table.add_row(kind, str(counts[kind]))
    table.add_row("[bold]rejected[/bold]" if failures else "rejected", str(failures))
    return table


def root_chain_table(chain: RootChain, dates: Mapping[int, str | None]) -> Table:
    """Each root version: when it was committed, its expiry, root keys and roles."""
    from pipeline.core.models.common import format_timestamp  # noqa: PLC0415

    table = Table(title="root of trust", title_justify="left")
    for col in ("version", "created", "expires", "root keys", "threshold", "roles"):
        table.add_column(col)
    for v in chain.versions:
        signed = v.signed
        root = signed.roles["root"]
        roles = ", ".join(
            f"{name} {r.threshold}/{len(r.keyids)}"
            for name, r in sorted(signed.roles.items())
            if name != "root"
        )
        table.add_row(
            str(signed.version),
            dates.get(signed.version) or "uncommitted",
            format_timestamp(signed.expires) if signed.expires else "never",
            " ".join(k[:12] for k in root.keyids),
            str(root.threshold),
            roles,
        )
    return table


OUTCOME_STYLE = {"PASSED": "green", "WARNED": "yellow", "FAILED": "red", "SKIPPED": "dim"}
STATUS_STYLE = {
    "passed": "green",
    "pending": "cyan",
    "failed": "red",
    "failed-manual": "red",
    "no-image": "red",
}


#: Rows of an imported report shown before only its failures are (up to this many).
IMPORTED_ROWS = 50


def results_table(manifests: Sequence[ResultManifest]) -> Table:
    """One row per test and image of the given runs."""
    table = Table(title="test results", title_justify="left")
    for col in ("suite", "image", "test", "blocking", "outcome", "time", "why"):
        table.add_column(col, justify="right" if col == "time" else "left")
    for m in manifests:
        cases = m.tests
        if m.counts is not None and len(cases) > IMPORTED_ROWS:  # a large report: failures
            cases = [c for c in cases if c.outcome == "FAILED"][:IMPORTED_ROWS]
        for case in cases:
            image = f"{case.image.arch} {case.image.type}" if case.image else "all"
            style = OUTCOME_STYLE.get(case.outcome, "")
            outcome: str = case.outcome
            if case.outcome == "FAILED" and not case.blocking:
                outcome, style = "FAILED (advisory)", "yellow"
            table.add_row(
                m.suite,
                image,
                case.name,
                "yes" if case.blocking else "no",
                f"[{style}]{outcome}[/{style}]" if style else outcome,
                f"{case.duration_ms / 1000:.1f} s",
                case.reason or "",
            )
        if len(cases) < len(m.tests):
            table.add_row(m.suite, "", f"... {len(m.tests) - len(cases)} more not shown", "", "")
    return table


def status_table(state: State, limit: int) -> Table:
    """The newest composes, newest first, with their derived status and why."""
    table = Table(title=f"{state.product.display_name}: composes", title_justify="left")
    shown = list(reversed(state.composes))[:limit]
    # A compose id is never cut or wrapped, whatever the terminal's width: the other
    # columns wrap instead.
    widest = max((len(v.compose_id) for v in shown), default=7)
    table.add_column("compose", no_wrap=True, min_width=widest)
    for col in ("status", "suites", "why"):
        table.add_column(col)
    for view in shown:
        style = STATUS_STYLE.get(view.status, "")
        suites = ", ".join(f"{s.name} {s.verdict}" for s in view.suites.values())
        table.add_row(
            view.compose_id,
            f"[{style}]{view.status}[/{style}]",
            suites,
            "; ".join(view.reasons),
        )
    return table


@contextmanager
def count_progress(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[], None]]]:
    """A counting progress bar: yields (set the total, advance by one); silent off a terminal."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(label, total=None)
        yield (lambda total: progress.update(task, total=total), lambda: progress.advance(task))


def _age(state: State, when: datetime) -> str:
    days = (state.now - when).days
    return "today" if days <= 0 else f"{days} day{'s' if days != 1 else ''} ago"


def release_panel(state: State) -> Table:
    """The product at a glance: current release, freshness, bug, withdrawals, next release."""
    table = Table(title=f"{state.product.display_name}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    current = state.current
    if current is None:
        table.add_row("current release", "none: no image available")
    else:
        m = current.manifest
        table.add_row(
            "current release",
            f"{m.release_id}: {m.compose_id}, based on "
            f"{m.base.label()}, released {m.created:%Y-%m-%d} "
            f"({_age(state, m.created)})",
        )
    fresh = state.freshness
    if fresh.stale:
        freshness = f"[red]stale[/red]: {fresh.reason}"
    elif fresh.reason:
        freshness = f"not yet due: {fresh.reason}"
    else:
        freshness = "[green]fresh[/green]"
    table.add_row("freshness", freshness)
    bugs = state.open_bugs
    table.add_row("open bug", ", ".join(f"{b.bug} {b.url}" for b in bugs) or "none")
    for r in state.withdrawn:
        table.add_row("withdrawn", f"{r.release_id} ({r.manifest.compose_id}): {r.fallen}")
    latest = state.composes[-1] if state.composes else None
    table.add_row("latest compose", f"{latest.compose_id}: {latest.status}" if latest else "none")
    pending = [c.compose_id for c in state.composes if c.status == "pending"]
    if pending:
        table.add_row("pending", ", ".join(pending))
    table.add_row("next release day", state.next_release_day.isoformat())
    return table


def decision_table(manifest: ReleaseManifest) -> Table:
    """What a release decision considered, newest first, and why."""
    title = (
        f"release {manifest.release_id}: {manifest.compose_id}"
        if manifest.decision == "release"
        else f"release {manifest.release_id}: stale"
    )
    table = Table(title=title, title_justify="left")
    for col in ("compose", "status", "verdict", "why"):
        table.add_column(col)
    for c in manifest.considered:
        table.add_row(c.compose_id, c.status, c.verdict, c.reason)
    return table


def clouds_table(manifest: CloudImagesManifest) -> Table:
    """The AMIs of a cloud-images manifest, a row each, then the missing regions."""
    table = Table(
        title=f"{manifest.compose_id} on {manifest.provider} (run {manifest.run})",
        title_justify="left",
    )
    for column in ("arch", "region", "AMI", "virtualization", "volume", "public"):
        table.add_column(column)
    for i in manifest.images:
        table.add_row(
            i.arch,
            i.region,
            i.ami_id,
            i.virtualization_type,
            i.volume_type,
            "yes" if i.public else "no",
        )
    for m in manifest.missing:
        table.add_row("-", m.region, "missing", m.reason, "", "")
    return table


def withdraw_table(compose_id: str, actions: Sequence[WithdrawAction], dry_run: bool) -> Table:
    """What withdrawing a compose's AMIs did (or would do), a row per AMI."""
    table = Table(
        title=f"{'plan: ' if dry_run else ''}withdraw the AMIs of {compose_id}",
        title_justify="left",
    )
    for column in ("region", "AMI", "arch", "was public", "action", "error"):
        table.add_column(column)
    for a in actions:
        table.add_row(
            a.region, a.ami_id, a.arch, "yes" if a.was_public else "no", a.describe(), a.error or ""
        )
    return table


def products_table(configs: Sequence[ProductConfig], default: str | None) -> Table:
    """One row per product of a log; the default product is marked."""
    table = Table(title="products", title_justify="left")
    for col in ("product", "display name", "base", "images", "default"):
        table.add_column(col, no_wrap=col == "product")
    for c in configs:
        images = f"{', '.join(c.images.types)} ({', '.join(c.images.arches)})"
        mark = "yes" if c.name == default else ""
        table.add_row(c.name, c.display_name, c.base.label(), images, mark)
    return table


def explain_product(c: ProductConfig) -> list[str]:
    """What a product.toml configures, in sentences (``product.check``)."""
    sel = c.images
    chosen = [f"variant {v}" for v in sel.variants] + [f"subvariant {s}" for s in sel.subvariants]
    where = sel.download_url or "the compose's own http(s) location"
    lines = [
        f"ok: {c.name} ({c.display_name}) is valid",
        f"base: {c.base.label()}; composes of base {', '.join(c.base.eligible_versions())} "
        "may be released",
        f"release days: {c.release.anchor} and every {c.release.cadence_days} days; stale "
        f"{c.release.grace_days} day(s) after a missed one; no candidate: {c.release.policy}",
        f"images: {', '.join(sel.types)} for {', '.join(sel.arches)}, of "
        f"{' or '.join(chosen) or 'no variant (nothing is selected: list one)'}",
        f"downloads: {where}",
    ]
    for name, suite in c.battery.suites.items():
        if suite.external:
            lines.append(f"suite {name}: imported from JUnit (test.import)")
        elif suite.tunir:
            lines.append(f"suite {name}: tunir job file {suite.tunir}")
        for t in suite.tests:
            kind = "blocking" if t.blocking else "advisory"
            lines.append(f"suite {name}: test {t.name} ({kind}, {t.timeout} s): {t.command}")
    lines.append(f"tracker: {c.tracker.backend}, tag {c.tracker.tag}")
    if c.clouds.aws is not None:
        lines.append(f"clouds: AWS in {', '.join(c.clouds.aws.regions)}")
    return lines
