"""A local tracker bug's page."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.core.pages.formatting import iso
from pipeline.core.pages.links import Urls
from pipeline.core.state import BugView, State


@dataclass(frozen=True)
class BugEvent:
    """One event of a local bug."""

    when: str
    action: str
    compose_id: str
    compose_href: str | None
    comment: str


@dataclass(frozen=True)
class BugPage:
    """A local tracker bug."""

    bug: str
    summary: str
    is_open: bool
    events: list[BugEvent]


def bug_page(bug: BugView, urls: Urls, known: set[str]) -> BugPage:
    """A local bug's page: its summary and every event, linking the composes."""
    return BugPage(
        bug=bug.bug,
        summary=bug.summary,
        is_open=bug.is_open,
        events=[
            BugEvent(
                when=iso(e.created),
                action=e.action,
                compose_id=e.compose_id,
                compose_href=urls.compose(e.compose_id) if e.compose_id in known else None,
                comment=e.comment,
            )
            for e in bug.events
        ],
    )


def local_bugs(state: State) -> Iterable[BugView]:
    """The bugs rendered as pages of the site (the local tracker's)."""
    return (b for b in state.bugs.values() if b.backend == "local")
