"""Tracker reconciliation: one open failure bug per product while its newest compose fails.

``sync`` compares the derived state with the tracker and acts:

- newest decided compose failing (failed, no image, failed by an operator):
  make sure one bug is open, filing it if there is none, and add one comment
  per newly failed compose since the last good one;
- newest decided compose passed: close the open bug, naming that compose.

Every action is recorded at once as a signed tracker-event manifest (its own
commit), so a crash loses at most the record of one action. Each comment and
description carries a marker, ``[fortnight:<product>:<compose-id>]``; before
acting, ``sync`` looks for the marker on the tracker, so an action whose
response was lost is recorded, never repeated. Safe to run any number of times.

The failure-tracker interface every backend implements (:class:`TrackerBackend`) lives
here too: a backend talks to one tracker (Bugzilla, or the log itself for the local
backend); ``sync`` decides what to do, a backend only does it. Every backend method may
raise :class:`pipeline.errors.TrackerError`; backends retry transient faults (timeouts,
refused connections, 5xx) with backoff themselves before raising.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import TrackerAction, TrackerBackendName, TrackerEventManifest
from pipeline.core.state import BugView, ComposeView, State, derive

# --- the backend interface --------------------------------------------------------------


@dataclass(frozen=True)
class Bug:
    """A tracker bug as the tracker reports it.

    ``comments`` holds the text of every comment, the description first.
    """

    id: str
    url: str
    is_open: bool
    summary: str = ""
    comments: tuple[str, ...] = field(default_factory=tuple)


class TrackerBackend(Protocol):
    """What the tracker stage needs from a tracker."""

    #: "bugzilla" or "local"; recorded in tracker-event manifests.
    name: TrackerBackendName

    def find_open(self, tag: str) -> list[Bug]:
        """Open bugs carrying ``tag`` (whiteboard word or keyword), oldest first, with comments."""
        ...

    def get(self, bug_id: str) -> Bug:
        """One bug, with its comments."""
        ...

    def create(self, tag: str, summary: str, description: str) -> Bug:
        """File a new bug carrying ``tag``; ``description`` is its first comment."""
        ...

    def comment(self, bug_id: str, text: str) -> None:
        """Add a comment to an open bug."""
        ...

    def close(self, bug_id: str, comment: str) -> None:
        """Close a bug (resolution fixed) with a comment."""
        ...


# --- reconciliation ---------------------------------------------------------------------

Recorder = Callable[[TrackerEventManifest], None]


def marker(product: str, compose_id: str, *, closing: bool = False) -> str:
    """The text that marks a comment as Fortnight's report of one compose (or its closing)."""
    return f"[fortnight:{product}:{compose_id}{':closed' if closing else ''}]"


def bug_ref(backend: str, bug_id: str) -> str:
    """A bug's short reference in the log: ``bz1234`` or ``local3``."""
    return f"{'bz' if backend == 'bugzilla' else 'local'}{bug_id}"


def local_bug_url(product: str, bug_id: str, site_url: str = "") -> str:
    """Where the site serves a local bug's page: ``<product>/bugs/local<id>.html`` from the
    site's root (absolute with ``site_url``), the URL recorded in its tracker events."""
    path = f"{product}/bugs/{bug_ref('local', bug_id)}.html"
    return f"{site_url.rstrip('/')}/{path}" if site_url else path


@dataclass
class SyncReport:
    """What a sync did, for the summary."""

    events: list[TrackerEventManifest] = field(default_factory=list)
    open_bug: Bug | None = None


def _describe(c: ComposeView) -> str:
    reasons = "\n".join(f"- {r}" for r in c.reasons) or "- (no reason recorded)"
    return f"Compose {c.compose_id} {c.status.replace('-', ' ')}.\n\n{reasons}"


class _Syncer:
    """One sync run: the backend, the recorder, and the bugs the log knows of."""

    def __init__(
        self, state: State, backend: TrackerBackend, record: Recorder, now: datetime
    ) -> None:
        self.product = state.product
        self.backend = backend
        self.record = record
        self.now = now
        self.report = SyncReport()
        self.known = {b.bug_id: b for b in state.bugs.values() if b.backend == backend.name}

    def emit(
        self,
        bug: Bug,
        action: TrackerAction,
        compose: ComposeView,
        comment: str,
        summary: str | None = None,
    ) -> None:
        """Record one action on ``bug`` for ``compose``, unless the log already has it."""
        backend = self.backend.name
        ref = bug_ref(backend, bug.id)
        view = self.known.get(bug.id)
        if view is not None and _already_reported(view, action, compose.compose_id):
            return  # already recorded (a compose is reported once per bug, in one way)
        event = TrackerEventManifest(
            product=self.product.name,
            created=self.now,
            event_id=f"{ref}-{action}-{compose.compose_id}",
            backend=backend,
            bug=ref,
            bug_id=bug.id,
            url=bug.url,
            action=action,
            compose_id=compose.compose_id,
            compose_status=compose.status,
            summary=summary,
            comment=comment,
        )
        self.record(event)
        self.report.events.append(event)
        view = self.known.setdefault(bug.id, BugView(ref, backend, bug.id, bug.url))
        view.events.append(event)

    def close_lost(self, newest: ComposeView, open_ids: set[str]) -> None:
        """Record bugs the log thinks open but the tracker closed (by us, answer lost; by hand)."""
        for view in [v for v in self.known.values() if v.is_open and v.bug_id not in open_ids]:
            remote = self.backend.get(view.bug_id)
            if not remote.is_open:
                self.emit(remote, "closed", newest, "closed on the tracker")

    def close_passed(self, bug: Bug, newest: ComposeView) -> None:
        """Close the open bug: ``newest`` passed its tests."""
        text = (
            f"Compose {newest.compose_id} passed its tests; closing.\n"
            f"{marker(self.product.name, newest.compose_id, closing=True)}"
        )
        self.backend.close(bug.id, text)  # one request: a lost answer leaves it closed
        self.emit(bug, "closed", newest, text)

    def report_failures(
        self, bug: Bug | None, decided: Sequence[ComposeView], open_ids: set[str]
    ) -> Bug | None:
        """File or comment for each failure since the last pass; the bug left open."""
        last_pass = max((i for i, c in enumerate(decided) if not c.failing), default=-1)
        newest = decided[-1]
        reported_elsewhere = {
            cid for v in self.known.values() if v.bug_id not in open_ids for cid in v.composes
        }
        for compose in decided[last_pass + 1 :]:
            mark = marker(self.product.name, compose.compose_id)
            text = f"{_describe(compose)}\n{mark}"
            if bug is not None and any(mark in c for c in bug.comments):
                # Already on the open bug (maybe with the answer lost): record, never repeat.
                self.emit(bug, "opened" if mark in bug.comments[0] else "commented", compose, text)
            elif compose.compose_id in reported_elsewhere and compose is not newest:
                # Reported on a bug closed since: not again. The newest failure is always
                # on the open bug, also when an older one (failed by hand since) filed it.
                continue
            elif bug is None:
                title = self.product.display_name
                summary = f"{title}: compose {compose.compose_id} {compose.status}"
                bug = self.backend.create(self.product.tracker.tag, summary, text)
                self.emit(bug, "opened", compose, text, summary)
            else:
                self.backend.comment(bug.id, text)
                bug = Bug(bug.id, bug.url, True, bug.summary, (*bug.comments, text))
                self.emit(bug, "commented", compose, text)
        return bug


def _already_reported(view: BugView, action: TrackerAction, compose_id: str) -> bool:
    reported = ("opened", "commented")
    return any(
        e.compose_id == compose_id
        and (e.action == action or (action in reported and e.action in reported))
        for e in view.events
    )


def sync_state(manifests: Iterable[Manifest], product: ProductConfig, now: datetime) -> State:
    """The state a sync acts on: the whole log, also what is stamped later than ``now``.

    Runners' clocks disagree: a sync whose clock is behind the one that recorded a bug's
    events would not see them in the state at ``now``, and would file or adopt the bug
    again (an event under an identity already recorded with other content). The tracker
    reflects everything the log says was done, so the state is derived at ``now`` or at
    the newest manifest's ``created``, whichever is later.
    """
    kept = [m for m in manifests if m.product == product.name]
    return derive(kept, product, max([now, *(m.created for m in kept)]))


def sync(state: State, backend: TrackerBackend, record: Recorder, now: datetime) -> SyncReport:
    """Reconcile the tracker with the state; record each action as it happens.

    Raises:
        TrackerError: the tracker failed; actions done and recorded so far stand.
    """
    syncer = _Syncer(state, backend, record, now)
    report = syncer.report
    open_bugs = backend.find_open(state.product.tracker.tag)
    bug = open_bugs[0] if open_bugs else None
    decided = state.decided
    if not decided:
        report.open_bug = bug
        return report
    newest = decided[-1]
    open_ids = {b.id for b in open_bugs}
    syncer.close_lost(newest, open_ids)
    if not newest.failing:
        if bug is not None:
            syncer.close_passed(bug, newest)
        return report
    report.open_bug = syncer.report_failures(bug, decided, open_ids)
    return report


class LocalTracker:
    """The embedded tracker: bugs are the tracker-event records in the log itself.

    Filing, commenting and closing cannot fail; the recorded events are the bugs.
    Bug URLs are the pages the site renders for them (:func:`local_bug_url`), absolute
    when the site's URL (``base_url`` in the log's site.toml) is known.
    """

    name: TrackerBackendName = "local"

    def __init__(self, state: State, site_url: str = "") -> None:
        self.product = state.product.name
        self.site_url = site_url
        self.bugs: dict[str, Bug] = {}
        for view in state.bugs.values():
            if view.backend != "local":
                continue
            texts = tuple(e.comment for e in view.events if e.action != "closed")
            self.bugs[view.bug_id] = Bug(view.bug_id, view.url, view.is_open, view.summary, texts)

    def _url(self, bug_id: str) -> str:
        return local_bug_url(self.product, bug_id, self.site_url)

    def find_open(self, tag: str) -> list[Bug]:
        """Open local bugs (the tag is the product's own)."""
        return sorted((b for b in self.bugs.values() if b.is_open), key=lambda b: int(b.id))

    def get(self, bug_id: str) -> Bug:
        """One local bug."""
        return self.bugs[bug_id]

    def create(self, tag: str, summary: str, description: str) -> Bug:
        """A new local bug, numbered after the last."""
        bug_id = str(max((int(i) for i in self.bugs), default=0) + 1)
        bug = Bug(bug_id, self._url(bug_id), True, summary, (description,))
        self.bugs[bug_id] = bug
        return bug

    def comment(self, bug_id: str, text: str) -> None:
        """Add a comment."""
        b = self.bugs[bug_id]
        self.bugs[bug_id] = Bug(b.id, b.url, b.is_open, b.summary, (*b.comments, text))

    def close(self, bug_id: str, comment: str) -> None:
        """Close the bug."""
        b = self.bugs[bug_id]
        self.bugs[bug_id] = Bug(b.id, b.url, False, b.summary, (*b.comments, comment))
