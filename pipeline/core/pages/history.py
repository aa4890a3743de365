"""The history picture: the last 12 weeks at a glance, as a server-rendered SVG.

One mark per night, coloured by the status of that night's compose (the newest respin of
the day): passed, failed, no image, failed by hand, pending, or no compose at all. Release
days are marked below with what happened (released, stale, withdrawn), and a switch of the
base release (the composes' base version changing) above. Each mark links its compose page
and carries a title; a one-line text summary says the same for readers without the picture.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from pipeline.core.pages.links import Urls
from pipeline.core.state import ComposeView, State

WEEKS = 12
#: Width of one night, in SVG user units (the mark is a little narrower).
STEP = 8

STATUS_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "no-image": "no image",
    "failed-manual": "failed by hand",
    "pending": "pending",
}


@dataclass(frozen=True)
class NightMark:
    """One night: its compose (if any), status and title."""

    x: int
    day: str
    status: str  # a compose status, or "none"
    href: str | None
    title: str
    short: str  # the title without the compose id: "2018-05-14: passed"


@dataclass(frozen=True)
class DayEvent:
    """A release-day decision or a base switch, at ``x``."""

    x: int
    kind: str  # released, stale, withdrawn, base
    title: str


@dataclass(frozen=True)
class HistoryPicture:
    """The picture's marks, events and text summary."""

    width: int
    start: str
    end: str
    marks: list[NightMark]
    releases: list[DayEvent]
    switches: list[DayEvent]
    summary: str
    dashboard: str  # the nightly results page, where every mark links its compose

    @property
    def runs(self) -> list[tuple[str, list[NightMark]]]:
        """The nights with a compose, in order, in runs of one status (one SVG group each:
        the colour is said once per run)."""
        out: list[tuple[str, list[NightMark]]] = []
        for mark in self.marks:
            if mark.href is None:
                continue
            if out and out[-1][0] == mark.status:
                out[-1][1].append(mark)
            else:
                out.append((mark.status, [mark]))
        return out


def _night(views: list[ComposeView]) -> ComposeView:
    """The newest respin of a day."""
    return max(views, key=lambda v: (v.compose.respin, v.compose.created))


def history_picture(state: State, urls: Urls, weeks: int = WEEKS) -> HistoryPicture:
    """The last ``weeks`` weeks up to ``state.now``."""
    end = state.now.astimezone(UTC).date()
    start = end - timedelta(days=weeks * 7 - 1)
    by_day: dict[date, list[ComposeView]] = {}
    for view in state.composes:
        night = date(
            int(view.compose.date[:4]), int(view.compose.date[4:6]), int(view.compose.date[6:])
        )
        if start <= night <= end:
            by_day.setdefault(night, []).append(view)
    marks = [_mark(start, n, by_day.get(start + timedelta(days=n)), urls) for n in range(weeks * 7)]
    releases = _release_events(state, start, end)
    switches = _base_switches(start, by_day)
    return HistoryPicture(
        width=weeks * 7 * STEP,
        start=start.isoformat(),
        end=end.isoformat(),
        marks=marks,
        releases=releases,
        switches=switches,
        summary=_summary(marks, releases, switches, weeks),
        dashboard=urls.dashboard(),
    )


def _mark(start: date, n: int, views: list[ComposeView] | None, urls: Urls) -> NightMark:
    day = (start + timedelta(days=n)).isoformat()
    if not views:
        return NightMark(n * STEP, day, "none", None, f"{day}: no compose", f"{day}: no compose")
    view = _night(views)
    word = STATUS_WORDS.get(view.status, view.status)
    href = urls.compose(view.compose_id)
    return NightMark(
        n * STEP, day, view.status, href, f"{view.compose_id}: {word}", f"{day}: {word}"
    )


def _release_events(state: State, start: date, end: date) -> list[DayEvent]:
    out = []
    for r in state.releases:
        decided = r.manifest.created.astimezone(UTC).date()
        if not start <= decided <= end:
            continue
        if not r.is_release:
            kind, what = "stale", "stale, no new image"
        elif r.revocation is not None:
            kind, what = "withdrawn", f"released {r.manifest.compose_id}, since withdrawn"
        else:
            kind, what = "released", f"released {r.manifest.compose_id}"
        x = (decided - start).days * STEP
        out.append(DayEvent(x, kind, f"Release {r.release_id}: {what}"))
    return out


def _base_switches(start: date, by_day: dict[date, list[ComposeView]]) -> list[DayEvent]:
    out = []
    previous: str | None = None
    for night in sorted(by_day):
        release = _night(by_day[night]).compose.release
        if release is None:
            continue
        if previous is not None and release.version != previous:
            x = (night - start).days * STEP
            out.append(
                DayEvent(x, "base", f"{night}: base switched to {release.name} {release.version}")
            )
        previous = release.version
    return out


def _summary(
    marks: list[NightMark], releases: list[DayEvent], switches: list[DayEvent], weeks: int
) -> str:
    counts = Counter(m.status for m in marks)
    nights = [f"{counts[s]} {STATUS_WORDS[s]}" for s in STATUS_WORDS if counts[s]] + (
        [f"{counts['none']} without a compose"] if counts["none"] else []
    )
    made = Counter(e.kind for e in releases)
    days = [f"{made[k]} {k}" for k in ("released", "stale", "withdrawn") if made[k]]
    text = f"Last {weeks} weeks, one mark per night: {', '.join(nights)}."
    if days:
        text += f" Release days: {', '.join(days)}."
    if switches:
        text += " " + "; ".join(s.title for s in switches) + "."
    return text
