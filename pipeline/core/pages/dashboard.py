"""The dashboard: the nightly history of composes, newest first, a page per chunk."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from pipeline.core.pages.formatting import compose_date
from pipeline.core.pages.history import HistoryPicture, history_picture
from pipeline.core.pages.links import Link, Urls, bug_link
from pipeline.core.state import ComposeView, State

#: Rows per dashboard page.
DASHBOARD_PAGE = 50


@dataclass(frozen=True)
class SuiteCell:
    """One suite's result on one compose, blocking and advisory kept apart."""

    name: str
    verdict: str
    blocking_failed: int
    advisory_failed: int
    waived: int


@dataclass(frozen=True)
class ComposeRow:
    """One row of the dashboard."""

    compose_id: str
    href: str
    date: str
    status: str
    suites: list[SuiteCell]
    notes: list[str]
    bugs: list[Link]


@dataclass(frozen=True)
class DashboardPage:
    """One page of the nightly history, newest first.

    ``first`` and ``last`` are the dates of its oldest and newest composes;
    ``prev_href`` links newer composes, ``next_href`` older ones.
    """

    front: bool
    first: str
    last: str
    rows: list[ComposeRow]
    href: str
    prev_href: str | None
    next_href: str | None
    #: The last weeks at a glance (front page only).
    history: HistoryPicture | None = None


def compose_bugs(state: State, urls: Urls) -> dict[str, list[Link]]:
    """Per compose id, the bugs that reported it."""
    out: dict[str, list[Link]] = defaultdict(list)
    for bug in state.bugs.values():
        for cid in sorted(bug.composes):
            out[cid].append(bug_link(bug, urls))
    return out


def suite_cells(view: ComposeView) -> list[SuiteCell]:
    """The suites of a compose, by name."""
    return [
        SuiteCell(
            s.name,
            s.verdict,
            len(s.blocking_failures),
            len(s.advisory_failures),
            len(s.waived),
        )
        for s in view.suites.values()
    ]


def compose_notes(view: ComposeView) -> list[str]:
    """Manual fails, waivers, and a no-image reason: what a reader must not miss."""
    notes = [f"failed by {v.operator}: {v.reason}" for v in view.verdicts if v.action == "fail"]
    notes += [
        f"{v.test or 'all tests'} waived by {v.operator}: {v.reason}"
        for v in view.verdicts
        if v.action == "waive"
    ]
    if view.status == "no-image":
        notes.append(f"no image: {view.compose.reason}")
    return notes


def dashboard_pages(
    state: State, urls: Urls, per_page: int = DASHBOARD_PAGE
) -> list[DashboardPage]:
    """The nightly history, newest first: the front page, then older pages (at least one page).

    The history is cut into chunks of ``per_page`` composes counted from the oldest, so a
    chunk never changes once full: older pages are the full chunks (``page-1.html`` the
    oldest), and the front page holds the newest chunk and the one before it (between
    ``per_page`` + 1 and 2 x ``per_page`` rows once there are that many). A new compose
    changes the front page, and once every ``per_page`` composes the page that comes out
    of it and the one that links it: not every page, as counting from the newest would.
    """
    bugs = compose_bugs(state, urls)
    composes = state.composes  # oldest first
    count = max(1, math.ceil(len(composes) / per_page))
    chunks = [composes[i * per_page : (i + 1) * per_page] for i in range(count)]
    # Newest first: (chunk number of the page, or None for the front page; its composes).
    plan: list[tuple[int | None, list[ComposeView]]] = [
        (None, [v for chunk in chunks[-2:] for v in chunk])
    ]
    plan += [(n, chunks[n - 1]) for n in range(count - 2, 0, -1)]
    hrefs = [urls.dashboard(n) for n, _ in plan]
    pages = []
    for i, (n, views) in enumerate(plan):
        rows = [
            ComposeRow(
                compose_id=v.compose_id,
                href=urls.compose(v.compose_id),
                date=compose_date(v.compose.date),
                status=v.status,
                suites=suite_cells(v),
                notes=compose_notes(v),
                bugs=bugs.get(v.compose_id, []),
            )
            for v in reversed(views)
        ]
        pages.append(
            DashboardPage(
                front=n is None,
                first=rows[-1].date if rows else "",
                last=rows[0].date if rows else "",
                rows=rows,
                href=hrefs[i],
                prev_href=hrefs[i - 1] if i > 0 else None,
                next_href=hrefs[i + 1] if i + 1 < len(hrefs) else None,
                history=history_picture(state, urls) if n is None else None,
            )
        )
    return pages
